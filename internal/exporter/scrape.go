package exporter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sources of a server's data.
const (
	SourceAdmin      = "admin"
	SourceFourLetter = "fourletter"
)

// CommandResult is the outcome of one command sent to one server.
type CommandResult struct {
	Command  string
	Source   string
	Err      error // nil when answered (a refusal or "not serving" is an answer)
	Refused  bool  // refused by 4lw.commands.whitelist
	Duration time.Duration
}

// ServerResult is everything learnt about one server in one scrape.
// Pointers and empty strings are unknown facts: they become no series.
type ServerResult struct {
	Server   string
	Source   string // SourceAdmin, SourceFourLetter, "" when nothing answered
	Up       bool
	Serving  *bool
	ReadOnly *bool
	State    string // leader, follower, observer, standalone, looking, other; "" unknown
	Version  string
	Zxid     uint64
	HasZxid  bool
	Voters   []string // ids of the voting members, from voting_view
	Stats    *Stats
	Wchs     *Wchs
	Conns    []Connection
	HasConns bool
	Commands []CommandResult
	Duration time.Duration
	chosen   int // Commands[chosen:] are those of the source used
}

// Success says whether every command of the chosen source was answered.
func (r *ServerResult) Success() bool {
	if r.Source == "" {
		return false
	}
	for _, c := range r.Commands[r.chosen:] {
		if c.Err != nil {
			return false
		}
	}
	return true
}

// Refused lists the commands the whitelist refused.
func (r *ServerResult) Refused() []string {
	var out []string
	for _, c := range r.Commands {
		if c.Refused {
			out = append(out, c.Command)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// errorReason classifies a command's failure for the scrape error counter.
func errorReason(err error) string {
	var (
		netErr   net.Error
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		alertErr tls.AlertError
		recErr   tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &alertErr), errors.As(err, &recErr),
		strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "TLS handshake"):
		return "tls"
	case errors.Is(err, errHTTPStatus):
		return "http_status"
	case errors.Is(err, errParse):
		return "parse"
	case errors.Is(err, errTooLarge):
		return "too_large"
	case isReset(err):
		return "connection_reset"
	}
	return "other"
}

func wrapf(base error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", base, fmt.Sprintf(format, args...))
}

var (
	errHTTPStatus = errors.New("unexpected HTTP status")
	errParse      = errors.New("unparsable answer")
)

// target is one server to scrape and how.
type target struct {
	server   string
	adminURL string
	ens      *ensemble
}

// scrapeServer asks one server everything, within the ensemble's timeout
// (and ctx's deadline): the AdminServer when it answers, else four-letter
// words.
func scrapeServer(ctx context.Context, t target) *ServerResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, t.ens.cfg.Timeout)
	defer cancel()
	r := &ServerResult{Server: t.server}
	if t.adminURL != "" && !t.ens.held(t.ens.adminSkip, t.server, start) {
		if scrapeAdmin(ctx, t, r) {
			r.Source = SourceAdmin
		} else if allRefusedConnections(r.Commands) {
			t.ens.hold(t.ens.adminSkip, t.server, start.Add(adminRetry))
		}
	}
	if r.Source == "" && ctx.Err() == nil {
		r.chosen = len(r.Commands)
		if scrapeFourLetter(ctx, t, r) {
			r.Source = SourceFourLetter
		}
	}
	r.Up = r.Source != ""
	if r.State == "" && r.Up && r.Serving != nil && !*r.Serving {
		r.State = "looking"
	}
	r.Duration = time.Since(start)
	return r
}

// allRefusedConnections says whether the AdminServer refused every
// connection.
func allRefusedConnections(cmds []CommandResult) bool {
	n := 0
	for _, c := range cmds {
		if c.Source != SourceAdmin {
			continue
		}
		if c.Err == nil || !errors.Is(c.Err, syscall.ECONNREFUSED) {
			return false
		}
		n++
	}
	return n > 0
}

func normState(s string) string {
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "leader", "follower", "observer", "standalone", "looking":
		return s
	case "":
		return ""
	}
	return "other"
}

// parallel runs fns at once and waits for all. The first runs on the
// caller's goroutine: a scrape nests this four deep (ensembles, servers,
// commands), and each goroutine spared is a wake-up spared.
func parallel(fns ...func()) {
	if len(fns) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, f := range fns[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	fns[0]()
	wg.Wait()
}

// scrapeAdmin asks the AdminServer, and srvr as a four-letter word; it
// reports whether the AdminServer answered at all.
func scrapeAdmin(ctx context.Context, t target, r *ServerResult) bool {
	// monitor carries mntr's keys, srvr the zxid, state and read-only
	// mode; the voters change rarely and are asked once a minute. ruok
	// and is_read_only are not asked: ZooKeeper answers ruok whenever it
	// answers at all, and srvr carries read-only mode. srvr is asked on
	// the client port, where ZooKeeper allows it by default: it costs the
	// server far less than an AdminServer request (a scrape takes 1.2
	// instead of 2 times the time of monitor alone). Where the four-letter
	// word fails, the AdminServer's srvr is used for a while.
	cmds := []string{"monitor", "srvr"}
	srvrWord := !t.ens.held(t.ens.srvrAdmin, t.server, time.Now())
	voters, fresh := t.ens.cachedVoters(t.server, time.Now())
	if fresh {
		r.Voters = voters
	} else {
		cmds = append(cmds, "voting_view")
	}
	if t.ens.cfg.Cons {
		cmds = append(cmds, "connections")
	}
	answers := make([]adminAnswer, len(cmds))
	defer func() {
		for _, a := range answers {
			a.release() // every parser copies what it keeps
		}
	}()
	results := make([]CommandResult, len(cmds))
	var word string
	fns := make([]func(), len(cmds))
	for i, name := range cmds {
		fns[i] = func() {
			s := time.Now()
			if name == "srvr" && srvrWord {
				// Half the deadline at most: a client port that never
				// answers leaves time for the AdminServer's srvr.
				wctx, cancel := context.WithTimeout(ctx, t.ens.cfg.Timeout/2)
				defer cancel()
				a, err := fourLetterWord(wctx, t.server, name, t.ens.tls)
				word = a
				results[i] = CommandResult{Command: name, Source: SourceFourLetter, Err: err, Duration: time.Since(s)}
				return
			}
			a, err := adminCommand(ctx, t.ens.http, t.adminURL, name)
			answers[i] = a
			results[i] = CommandResult{Command: name, Source: SourceAdmin, Err: err, Duration: time.Since(s)}
		}
	}
	parallel(fns...)
	var st ServerStatus
	notServing := false // srvr said so
	if srvrWord {
		i := slices.Index(cmds, "srvr")
		var err error
		if results[i].Err == nil {
			st, err = ParseSrvr(word)
		}
		switch {
		case errors.Is(err, ErrNotServing):
			notServing = true
		case (results[i].Err != nil || err != nil) && results[0].Err == nil:
			// The AdminServer answers but the client port gave no srvr
			// (refused, unreachable, silent): the AdminServer's srvr, in
			// the time left and for a while.
			t.ens.hold(t.ens.srvrAdmin, t.server, time.Now().Add(srvrRetry))
			s := time.Now()
			a, err := adminCommand(ctx, t.ens.http, t.adminURL, "srvr")
			answers[i], results[i] = a, CommandResult{Command: "srvr", Source: SourceAdmin, Err: err, Duration: time.Since(s)}
		case err != nil:
			results[i].Err = wrapf(errParse, "%v", err)
		}
	}
	answered := false
	for i, name := range cmds {
		res := &results[i]
		a := answers[i]
		if res.Err != nil || res.Source != SourceAdmin {
			continue
		}
		if name == "monitor" && a.Status == http.StatusInternalServerError {
			// ZooKeeper's monitor fails with 500 while not serving.
			answered, r.Serving = true, ptr(false)
			continue
		}
		if a.Status != http.StatusOK {
			res.Err = wrapf(errHTTPStatus, "AdminServer %s at %s: HTTP %d", name, t.adminURL, a.Status)
			continue
		}
		var err error
		switch name {
		case "monitor":
			var s Stats
			if s, err = ParseMonitor(a.Body); err == nil {
				r.Stats, r.Serving = &s, ptr(true)
			}
		case "srvr":
			st, err = ParseAdminSrvr(a.Body)
		case "voting_view":
			if r.Voters, err = ParseVotingView(a.Body); err == nil {
				t.ens.cacheVoters(t.server, r.Voters, time.Now())
			}
		case "connections":
			if r.Conns, err = ParseAdminConnections(a.Body); err == nil {
				r.HasConns = true
			}
		}
		// Only a ZooKeeper answer counts: something else on the port (an
		// HTTP 404, a page that is not JSON) leaves the four-letter words.
		switch {
		case errors.Is(err, ErrNotServing):
			answered, r.Serving = true, ptr(false)
		case err != nil:
			res.Err = wrapf(errParse, "%v", err)
		default:
			answered = true
		}
	}
	if !answered {
		// The four-letter words are asked next, srvr again among them.
		for _, res := range results {
			if res.Source == SourceAdmin {
				r.Commands = append(r.Commands, res)
			}
		}
		return false
	}
	r.Commands = append(r.Commands, results...)
	if notServing {
		r.Serving = ptr(false)
	}
	if r.Serving != nil && !*r.Serving {
		// Not serving: what srvr said before the quorum went is not trusted.
		st = ServerStatus{Version: st.Version}
	}
	applyStatus(r, st)
	return true
}

// applyStatus merges what srvr said with what mntr/monitor said.
func applyStatus(r *ServerResult, st ServerStatus) {
	if r.Stats != nil {
		r.State = normState(r.Stats.Strings["server_state"])
		r.Version = r.Stats.Strings["version"]
	}
	if r.State == "" {
		r.State = normState(st.Mode)
	}
	if r.Version == "" {
		r.Version = st.Version
	}
	if st.HasZxid {
		r.Zxid, r.HasZxid = st.Zxid, true
	}
	mode := st.Mode
	if r.Stats != nil && r.Stats.Strings["server_state"] != "" {
		mode = r.Stats.Strings["server_state"]
	}
	switch {
	case st.ReadOnly != nil:
		r.ReadOnly = st.ReadOnly
	case mode != "":
		r.ReadOnly = ptr(strings.EqualFold(mode, "read-only"))
	}
	if r.Stats == nil && len(st.Numbers) > 0 {
		// mntr refused: srvr still gives packets, connections, latency.
		r.Stats = &Stats{Numbers: st.Numbers, Strings: map[string]string{}}
	}
}

// scrapeFourLetter asks with four-letter words; it reports whether the
// server answered at all (a refusal is an answer). mntr and srvr say all
// that ruok and isro would: ZooKeeper answers ruok with imok whenever it
// answers at all, and a read-only server's state (mntr's server_state,
// srvr's Mode) is "read-only", which is all isro tells.
func scrapeFourLetter(ctx context.Context, t target, r *ServerResult) bool {
	cmds := []string{"mntr", "srvr"}
	if t.ens.cfg.Cons {
		cmds = append(cmds, "cons")
	}
	if t.ens.cfg.Wchs {
		cmds = append(cmds, "wchs")
	}
	answers := make([]string, len(cmds))
	results := make([]CommandResult, len(cmds))
	fns := make([]func(), len(cmds))
	for i, name := range cmds {
		fns[i] = func() {
			s := time.Now()
			a, err := fourLetterWord(ctx, t.server, name, t.ens.tls)
			answers[i] = a
			results[i] = CommandResult{Command: name, Source: SourceFourLetter, Err: err, Duration: time.Since(s)}
		}
	}
	parallel(fns...)
	answered := false
	var st ServerStatus
	for i, name := range cmds {
		res := &results[i]
		if res.Err != nil {
			continue
		}
		answered = true
		a := answers[i]
		var err error
		switch name {
		case "mntr":
			var s Stats
			if s, err = ParseMntr(a); err == nil {
				r.Stats, r.Serving = &s, ptr(true)
			}
		case "srvr":
			if st, err = ParseSrvr(a); err == nil && r.Serving == nil {
				r.Serving = ptr(true)
			}
		case "cons":
			if r.Conns, err = ParseCons(a); err == nil {
				r.HasConns = true
			}
		case "wchs":
			var w Wchs
			if w, err = ParseWchs(a); err == nil {
				r.Wchs = &w
			}
		}
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			res.Refused = true
		case errors.Is(err, ErrNotServing):
			r.Serving = ptr(false)
		case err != nil:
			res.Err = wrapf(errParse, "%v", err)
		}
	}
	r.Commands = append(r.Commands, results...)
	if !answered {
		return false
	}
	if r.Serving != nil && !*r.Serving {
		// One of mntr/srvr said "not serving": whatever the other said
		// before the quorum went is not trusted.
		r.Stats, st = nil, ServerStatus{Version: st.Version}
	}
	applyStatus(r, st)
	return true
}
