package exporter

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
)

// adminRetry is how long a server whose AdminServer refused connections is
// asked with four-letter words only, before the AdminServer is tried again.
const adminRetry = time.Minute

// ensemble is a configured ensemble with what its scrapes share: the
// keep-alive AdminServer client, the TLS config, and a ZooKeeper session
// for znode child counts.
type ensemble struct {
	cfg     EnsembleConfig
	servers []string
	tls     *tls.Config
	http    *http.Client
	ownHTTP bool // close idle connections on close
	logger  *slog.Logger

	mu        sync.Mutex // guards adminSkip, srvrAdmin and voters
	adminSkip map[string]time.Time
	srvrAdmin map[string]time.Time // until then, srvr is asked of the AdminServer
	voters    map[string]cachedVoters
	zkMu      sync.Mutex // guards zk; held while connecting
	zk        *zk.Client
}

func newEnsemble(cfg EnsembleConfig, logger *slog.Logger) (*ensemble, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	servers, _ := cfg.ServerList()
	tlsConf, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("ensemble %q: %w", cfg.Name, err)
	}
	return &ensemble{
		cfg: cfg, servers: servers, tls: tlsConf, http: newAdminClient(tlsConf), ownHTTP: true,
		logger:    logger.With("ensemble", cfg.Name),
		adminSkip: map[string]time.Time{}, srvrAdmin: map[string]time.Time{}, voters: map[string]cachedVoters{},
	}, nil
}

func (e *ensemble) close() {
	if e.ownHTTP {
		e.http.CloseIdleConnections()
	}
	e.zkMu.Lock()
	defer e.zkMu.Unlock()
	if e.zk != nil {
		e.zk.Close()
		e.zk = nil
	}
}

// held says whether server is in hold (adminSkip, srvrAdmin) at now.
func (e *ensemble) held(hold map[string]time.Time, server string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := hold[server]
	return ok && now.Before(until)
}

// hold puts server in hold until then.
func (e *ensemble) hold(hold map[string]time.Time, server string, until time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	hold[server] = until
}

// srvrRetry is how long a server whose client port did not answer srvr
// (refused by its whitelist, or unreachable) is asked srvr over the
// AdminServer, before the four-letter word is tried again.
const srvrRetry = 10 * time.Minute

// votersTTL is how long a server's voting view is reused.
const votersTTL = time.Minute

type cachedVoters struct {
	ids []string
	at  time.Time
}

func (e *ensemble) cachedVoters(server string, now time.Time) ([]string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.voters[server]
	return c.ids, ok && now.Sub(c.at) < votersTTL
}

func (e *ensemble) cacheVoters(server string, ids []string, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.voters[server] = cachedVoters{ids: ids, at: now}
}

func (e *ensemble) target(server string) target {
	return target{server: server, adminURL: e.cfg.AdminURL(server), ens: e}
}

// scrape asks every server at once and waits for all (each bounded by its
// own deadline).
func (e *ensemble) scrape(ctx context.Context) []*ServerResult {
	out := make([]*ServerResult, len(e.servers))
	fns := make([]func(), len(e.servers))
	for i, s := range e.servers {
		fns[i] = func() { out[i] = scrapeServer(ctx, e.target(s)) }
	}
	parallel(fns...)
	return out
}

// ZnodeCount is the number of children of a configured znode.
type ZnodeCount struct {
	Path     string
	Children int
	Err      error
}

// znodeCounts reads the child counts of the configured paths through a
// ZooKeeper session kept between scrapes.
func (e *ensemble) znodeCounts(ctx context.Context) []ZnodeCount {
	if len(e.cfg.ZnodePaths) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	out := make([]ZnodeCount, len(e.cfg.ZnodePaths))
	c, err := e.session(ctx)
	for i, p := range e.cfg.ZnodePaths {
		out[i].Path = p
		if err != nil {
			out[i].Err = err
			continue
		}
		kids, _, err := c.Children(ctx, p)
		if err != nil {
			out[i].Err = fmt.Errorf("count children of %s: %w", p, err)
			continue
		}
		out[i].Children = len(kids)
	}
	return out
}

func (e *ensemble) session(ctx context.Context) (*zk.Client, error) {
	e.zkMu.Lock()
	defer e.zkMu.Unlock()
	if e.zk != nil {
		return e.zk, nil
	}
	c, err := zk.Connect(ctx, e.cfg.Config, e.logger.With("component", "zk"), nil)
	if err != nil {
		return nil, fmt.Errorf("connect to ensemble %q for znode counts: %w", e.cfg.Name, err)
	}
	e.zk = c
	return c, nil
}

// View is the ensemble as a whole, computed from its servers' results.
type View struct {
	Servers           int
	ServersUp         int
	ServersServing    int
	Leaders           int
	Voters            int
	QuorumSize        int
	FailuresTolerated int
	ZxidLag           map[string]float64 // by server; only servers in the leader's epoch
	Versions          []string
	// ServingKnown and StateKnown are false when a server answered but its
	// serving state (or its role) could not be read (every command that
	// tells refused): the counts built on them are then not reported.
	ServingKnown, StateKnown bool
}

// ensembleView computes the quorum picture. Voters come from the
// AdminServer's voting_view, else from mntr's zk_quorum_size, else from the
// configured servers that are not observers. A standalone server counts
// as the leader of its one-server ensemble.
func ensembleView(results []*ServerResult) View {
	v := View{Servers: len(results), ZxidLag: map[string]float64{}, ServingKnown: true, StateKnown: true}
	versions := map[string]bool{}
	var leader *ServerResult
	observers := 0
	servingVoters := 0
	for _, r := range results {
		if len(r.Voters) > v.Voters {
			v.Voters = len(r.Voters)
		}
		if r.Stats != nil {
			if q := int(r.Stats.Numbers["quorum_size"]); q > v.Voters && len(r.Voters) == 0 {
				v.Voters = q
			}
		}
		if r.State == "observer" {
			observers++
		}
		if !r.Up {
			continue
		}
		v.ServersUp++
		if r.Version != "" {
			versions[r.Version] = true
		}
		if r.Serving == nil {
			v.ServingKnown = false
		}
		if r.State == "" {
			v.StateKnown = false
		}
		serving := r.Serving != nil && *r.Serving
		if serving {
			v.ServersServing++
			if r.State != "observer" {
				servingVoters++
			}
		}
		if r.State == "leader" || r.State == "standalone" {
			v.Leaders++
			if leader == nil || (r.HasZxid && r.Zxid > leader.Zxid) {
				leader = r
			}
		}
	}
	if v.Voters == 0 {
		v.Voters = len(results) - observers
	}
	v.QuorumSize = v.Voters/2 + 1
	v.FailuresTolerated = servingVoters - v.QuorumSize
	if leader != nil && leader.HasZxid {
		epoch, counter := leader.Zxid>>32, leader.Zxid&0xffffffff
		for _, r := range results {
			if r.Up && r.HasZxid && r.Zxid>>32 == epoch {
				v.ZxidLag[r.Server] = float64(int64(counter) - int64(r.Zxid&0xffffffff))
			}
		}
	}
	for ver := range versions {
		v.Versions = append(v.Versions, ver)
	}
	sort.Strings(v.Versions)
	return v
}

func emitView(e *emitter, v View) {
	e.gauge("zookeeper_ensemble_servers", "Servers configured for the ensemble.", float64(v.Servers))
	e.gauge("zookeeper_ensemble_servers_up", "Servers that answered.", float64(v.ServersUp))
	if v.ServingKnown {
		e.gauge("zookeeper_ensemble_servers_serving", "Servers that serve requests.", float64(v.ServersServing))
	}
	if v.StateKnown {
		e.gauge("zookeeper_ensemble_leaders", "Servers that say they lead (must be 1: 0 is no leader, 2 or more a split brain; a standalone server counts).", float64(v.Leaders))
	}
	e.gauge("zookeeper_ensemble_voters", "Voting members of the ensemble (voting_view, else zk_quorum_size, else the configured non-observers).", float64(v.Voters))
	e.gauge("zookeeper_ensemble_quorum_size", "Voters needed for a quorum (a majority of the voters).", float64(v.QuorumSize))
	if v.ServingKnown && v.StateKnown {
		e.gauge("zookeeper_ensemble_failures_tolerated", "How many more voters can fail before the quorum is lost (serving voters minus the quorum; negative when lost).", float64(v.FailuresTolerated))
	}
	servers := make([]string, 0, len(v.ZxidLag))
	for s := range v.ZxidLag {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	for _, s := range servers {
		e.gauge("zookeeper_ensemble_zxid_lag", "The leader's zxid counter minus the server's (same epoch only).", v.ZxidLag[s], "server", s)
	}
	e.gauge("zookeeper_ensemble_versions", "Distinct ZooKeeper versions running in the ensemble.", float64(len(v.Versions)))
}

func emitZnodes(e *emitter, counts []ZnodeCount) {
	for _, z := range counts {
		e.gauge("zookeeper_exporter_znode_read_success", "Whether the children of a configured znode could be counted.", boolValue(z.Err == nil), "path", z.Path)
		if z.Err == nil {
			e.gauge("zookeeper_znode_children", "Children of a configured znode.", float64(z.Children), "path", z.Path)
		}
	}
}
