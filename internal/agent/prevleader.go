package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
)

// prevLeader asks the Prometheus of the member named in the HA group's
// leader record (the previous leader, for a newly elected member) whether
// it still runs the leader overlay, and, while this member does not lead,
// whether it answers at all. It knows nothing of the election: the
// candidacy hands it the record and asks it before taking over.
type prevLeader struct {
	member    string        // this agent's member name
	advertise string        // this agent's Prometheus as the record names it
	ownURL    string        // this agent's --prometheus.url (its user info is used for peers)
	timeout   time.Duration // per request to the other Prometheus
	logger    *slog.Logger

	mu      sync.Mutex
	silence silence
}

// silence counts the probes in a row that found nothing serving at one
// record holder's Prometheus.
type silence struct {
	holder    string // holderKey of the record
	failures  int
	since     time.Time // start of the first failed probe
	lastProbe time.Time
}

// runsOverlay asks the Prometheus of the member in the leader
// record whether it still runs the overlay. It returns why this member
// must wait, or "" when it may take over.
func (p *prevLeader) runsOverlay(ctx context.Context, prev configstore.HALeader) string {
	if prev.Member == "" {
		return "" // no leader before
	}
	if prev.Member == p.member && prev.Prometheus == p.advertise && prev.Host == hostname() {
		return "" // this agent's own Prometheus: its own apply decides
	}
	if prev.Prometheus == "" {
		p.logger.Warn("taking over without checking the previous leader's Prometheus: the leader record does not name it (written by an older agent)", "previous", prev.Member)
		return ""
	}
	if !reachable(prev) {
		p.logger.Warn("taking over without checking the previous leader's Prometheus: its URL is a loopback address on another host (set --ha.advertise-url there)",
			"previous", prev.Member, "url", prev.Prometheus, "host", prev.Host)
		return ""
	}
	if silent, since := p.silentFor(prev); silent {
		p.logger.Warn("taking over: the previous leader's Prometheus has not answered for a while (host down or frozen)",
			"previous", prev.Member, "url", prev.Prometheus, "silent_for", since.Round(time.Millisecond))
		return ""
	}
	pc, err := prom.New(prom.Config{URL: peerURL(p.ownURL, prev.Prometheus), HTTPClient: &http.Client{Timeout: p.timeout}})
	if err != nil {
		p.logger.Warn("taking over without checking the previous leader's Prometheus: its URL is unusable", "previous", prev.Member, "err", err)
		return ""
	}
	// Two tries: one lost packet or slow answer must not count as a
	// Prometheus that runs nothing.
	var loaded string
	for try := 0; try < 2; try++ {
		if loaded, err = pc.LoadedConfig(ctx); err == nil || !notServing(err) {
			break
		}
	}
	if err != nil && notServing(err) {
		p.logger.Warn("taking over: the previous leader's Prometheus does not answer (host down or frozen)", "previous", prev.Member, "err", err)
		return ""
	}
	if err == nil {
		var on bool
		if on, err = runsOverlay(loaded); err == nil && !on {
			return ""
		} else if err == nil {
			return fmt.Sprintf("waiting for %s's Prometheus (%s on %s) to drop the leader overlay: its agent is frozen or dead; restart that agent, or stop that Prometheus",
				prev.Member, prev.Prometheus, prev.Host)
		}
	}
	return fmt.Sprintf("cannot tell whether %s's Prometheus (%s on %s) still runs the leader overlay: %v", prev.Member, prev.Prometheus, prev.Host, err)
}

// notServing reports whether err says that nothing serves at the address:
// refused, unreachable, reset, or no answer in time. Any other error (TLS,
// a name that does not resolve, an HTTP error) proves nothing either way.
func notServing(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// silentProbes is how many probes in a row must find nothing serving at
// the record holder's Prometheus before a new leader takes over without
// asking it again.
const silentProbes = 3

// silentFor reports whether the Prometheus of prev has not answered the
// last silentProbes probes, the latest one recent, and for how long.
func (p *prevLeader) silentFor(prev configstore.HALeader) (bool, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recent := time.Since(p.silence.lastProbe) <= p.timeout+2*takeoverRetry
	if p.silence.holder != holderKey(prev) || p.silence.failures < silentProbes || !recent {
		return false, 0
	}
	return true, time.Since(p.silence.since)
}

func holderKey(r configstore.HALeader) string {
	return fmt.Sprintf("%s %d %s", r.Member, r.Term, r.Prometheus)
}

// watch asks, while this member does not lead, whether the Prometheus of
// the member in the leader record answers at all (/-/ready). A new leader
// whose predecessor's Prometheus has been silent since before the
// election (a frozen or dead host) then takes over without asking it
// again. holder returns the record as last read, whether only the
// cluster's agents can have written it, and whether this member leads.
func (p *prevLeader) watch(ctx context.Context, holder func() (rec configstore.HALeader, trusted, leading bool)) {
	hc := &http.Client{Timeout: p.timeout}
	for {
		rec, trusted, leading := holder()
		url := rec.Prometheus
		// Only a URL an agent of the cluster recorded is probed: a record
		// anyone could write must not send the followers anywhere.
		if leading || !trusted || rec.Member == "" || rec.Member == p.member || url == "" || !reachable(rec) {
			url = ""
		}
		var failed bool
		if url != "" {
			start := time.Now()
			pc, err := prom.New(prom.Config{URL: peerURL(p.ownURL, url), HTTPClient: hc})
			if err == nil {
				err = pc.Ready(ctx) // any HTTP answer (even "starting up") is an answer
			}
			failed = err != nil && notServing(err)
			p.mu.Lock()
			key := holderKey(rec)
			if p.silence.holder != key || !failed {
				p.silence = silence{holder: key}
			}
			if failed {
				if p.silence.failures == 0 {
					p.silence.since = start
				}
				p.silence.failures++
			}
			p.silence.lastProbe = time.Now()
			p.mu.Unlock()
		} else {
			p.mu.Lock()
			p.silence = silence{}
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(takeoverRetry):
		}
	}
}

// peerURL is a recorded Prometheus URL (stored without credentials) with
// the user info of this agent's own --prometheus.url (own): the members
// of a group reach each other's Prometheus as they reach their own.
func peerURL(ownURL, recorded string) string {
	own, err1 := url.Parse(ownURL)
	u, err2 := url.Parse(recorded)
	if err1 != nil || err2 != nil || own.User == nil || u.User != nil {
		return recorded
	}
	u.User = own.User
	return u.String()
}

// reachable reports whether the Prometheus URL of a record can mean the
// same server from here: not a loopback address recorded on another host.
func reachable(r configstore.HALeader) bool {
	return !loopbackURL(r.Prometheus) || r.Host == hostname()
}

func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
