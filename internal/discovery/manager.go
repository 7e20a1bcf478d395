package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/atomicfile"
	"github.com/zkprom/zkprom/internal/zk"
)

// Options configure a Manager.
type Options struct {
	// FileSDDir, when set, gets one <job>.json file_sd file per job.
	FileSDDir string
	// DefaultZooKeeper is the top-level zookeeper block of a config file
	// that has none (from the --zookeeper.* flags).
	DefaultZooKeeper zk.Config
	Logger           *slog.Logger
	// Registerer gets the discovery metrics and the ZooKeeper session
	// metrics of every connect string (nil: none).
	Registerer prometheus.Registerer
}

// Manager runs the jobs of a config, shares one ZooKeeper session per
// connect string between them, serves http_sd, writes file_sd files and
// applies new configs.
type Manager struct {
	ctx    context.Context
	opts   Options
	logger *slog.Logger

	mu         sync.Mutex
	jobs       map[string]*runningJob
	clients    map[string]*clientEntry
	reloadOK   bool
	reloadTime time.Time
	wg         sync.WaitGroup

	fmu       sync.Mutex // file counters; never held while taking mu
	writes    map[string]float64
	writeErrs map[string]float64
}

type runningJob struct {
	j      *job
	key    string // connect string
	cancel context.CancelFunc
	done   chan struct{}
}

type clientEntry struct {
	cfg    zk.Config
	ready  chan struct{}
	client *zk.Client
	cancel context.CancelFunc
	done   chan struct{}
	refs   int
}

// NewManager makes a manager whose jobs run until ctx ends or Close.
func NewManager(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		ctx:       ctx,
		opts:      opts,
		logger:    opts.Logger.With("component", "discovery"),
		jobs:      map[string]*runningJob{},
		clients:   map[string]*clientEntry{},
		writes:    map[string]float64{},
		writeErrs: map[string]float64{},
	}
	if opts.FileSDDir != "" {
		st, err := os.Stat(opts.FileSDDir)
		if err != nil {
			return nil, fmt.Errorf("file_sd directory: %w (create it first)", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("file_sd directory %s is not a directory", opts.FileSDDir)
		}
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(&collector{m: m}); err != nil {
			return nil, fmt.Errorf("register discovery metrics: %w", err)
		}
	}
	return m, nil
}

// ApplyConfig starts new and changed jobs, stops removed ones and keeps
// unchanged ones running. cfg must be validated (LoadConfig does it).
func (m *Manager) ApplyConfig(cfg *Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]JobConfig{}
	for _, jc := range cfg.Jobs {
		want[jc.Name] = jc
	}
	for name, rj := range m.jobs {
		jc, keep := want[name]
		if keep && reflect.DeepEqual(jc, rj.j.cfg) {
			continue
		}
		m.stopJob(name, rj)
		if !keep {
			m.removeFile(name)
		}
	}
	for _, jc := range cfg.Jobs {
		if _, running := m.jobs[jc.Name]; !running {
			m.startJob(jc)
		}
	}
}

// Close stops every job and closes every session.
func (m *Manager) Close() {
	m.mu.Lock()
	for name, rj := range m.jobs {
		m.stopJob(name, rj)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Ready reports whether every job has completed its first sync, and the
// names of those that have not.
func (m *Manager) Ready() (bool, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var waiting []string
	for name, rj := range m.jobs {
		select {
		case <-rj.j.syncedCh:
		default:
			waiting = append(waiting, name)
		}
	}
	sort.Strings(waiting)
	return len(waiting) == 0, waiting
}

// synced is closed when the job has completed its first sync.
func (m *Manager) synced(name string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rj, ok := m.jobs[name]; ok {
		return rj.j.syncedCh
	}
	return nil
}

func (m *Manager) startJob(jc JobConfig) {
	key := jc.ZooKeeper.Servers
	ce := m.clients[key]
	if ce == nil {
		ce = m.connect(*jc.ZooKeeper)
		m.clients[key] = ce
	}
	ce.refs++
	ctx, cancel := context.WithCancel(m.ctx)
	rj := &runningJob{j: newJob(jc, m.logger), key: key, cancel: cancel, done: make(chan struct{})}
	m.jobs[jc.Name] = rj
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(rj.done)
		select {
		case <-ce.ready:
		case <-ctx.Done():
			return
		}
		var wg sync.WaitGroup
		if m.opts.FileSDDir != "" {
			wg.Add(1)
			go func() { defer wg.Done(); m.writeLoop(ctx, rj.j) }()
		}
		rj.j.run(ctx, ce.client)
		wg.Wait()
	}()
}

// stopJob stops a job and, when it was the last user, its session. The
// caller holds m.mu.
func (m *Manager) stopJob(name string, rj *runningJob) {
	rj.cancel()
	<-rj.done
	delete(m.jobs, name)
	ce := m.clients[rj.key]
	if ce == nil {
		return
	}
	if ce.refs--; ce.refs == 0 {
		ce.cancel()
		<-ce.done
		delete(m.clients, rj.key)
	}
}

// connect opens a session in the background, retrying until it works.
func (m *Manager) connect(cfg zk.Config) *clientEntry {
	ctx, cancel := context.WithCancel(m.ctx)
	ce := &clientEntry{cfg: cfg, ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	logger := m.logger.With("zookeeper", cfg.Servers)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(ce.done)
		backoff := time.Second
		for {
			reg := &trackingRegisterer{reg: m.opts.Registerer}
			c, err := zk.Connect(ctx, cfg, logger, reg.orNil())
			if err == nil {
				ce.client = c
				close(ce.ready)
				<-ctx.Done()
				c.Close()
				reg.unregisterAll()
				return
			}
			reg.unregisterAll()
			if ctx.Err() != nil {
				return
			}
			logger.Error("cannot connect to ZooKeeper; retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}()
	return ce
}

// trackingRegisterer remembers what it registered, so that a closed
// session's metrics can go.
type trackingRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func (t *trackingRegisterer) orNil() prometheus.Registerer {
	if t.reg == nil {
		return nil
	}
	return t
}

func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := t.reg.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *trackingRegisterer) Unregister(c prometheus.Collector) bool { return t.reg.Unregister(c) }

func (t *trackingRegisterer) unregisterAll() {
	if t.reg == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.reg.Unregister(c)
	}
	t.cs = nil
}

// ServeHTTP serves http_sd at /sd/<job>: the full list, or 503 until the
// job's first complete sync.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/sd/")
	m.mu.Lock()
	rj, ok := m.jobs[name]
	m.mu.Unlock()
	if !ok || name == "" {
		http.Error(w, fmt.Sprintf("no discovery job %q", name), http.StatusNotFound)
		return
	}
	body, gen, ready := rj.j.outputGen()
	if !ready {
		http.Error(w, fmt.Sprintf("discovery job %q has not completed its first sync with ZooKeeper yet", name), http.StatusServiceUnavailable)
		return
	}
	rj.j.mu.Lock()
	stale := rj.j.stale
	rj.j.mu.Unlock()
	// The ETag lets pollers that send If-None-Match skip unchanged lists.
	etag := fmt.Sprintf(`"%x-%x"`, rj.j.started.UnixNano(), gen)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.FormatInt(body.Size(), 10))
	if stale {
		w.Header().Set("X-Zkprom-Stale", "true")
	}
	if r.Method != http.MethodHead {
		body.WriteTo(w)
	}
}

// fileWriteEvery is the least time between two writes of a job's file.
// A change after a quiet spell is written at once; while changes keep
// coming, the file (the whole list, fsynced) is rewritten at most this
// often, always ending with the last state. Writing every change of a
// large list competes for the disk with ZooKeeper's own log, and
// Prometheus's discovery applies updates only every 5 s anyway.
const fileWriteEvery = time.Second

// writeLoop writes the job's file when its output changes, at most once
// per fileWriteEvery.
func (m *Manager) writeLoop(ctx context.Context, j *job) {
	throttle(ctx, j.changed, fileWriteEvery, func() bool {
		body, _, ready := j.outputGen()
		if !ready {
			return true
		}
		if err := m.writeFile(j.cfg.Name, body); err != nil {
			j.logger.Error("cannot write file_sd file; retrying", "err", err)
			return false
		}
		return true
	})
}

// throttle calls write on every signal of changed, at most once per
// every: a signal that comes sooner is held until then, and any number
// of them held give one call. A write that fails (returns false) is tried
// again after every, changed or not.
func throttle(ctx context.Context, changed <-chan struct{}, every time.Duration, write func() bool) {
	var last time.Time
	var due <-chan time.Time // a held signal or a retry
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			if due != nil {
				continue // already held
			}
			if wait := every - time.Since(last); wait > 0 {
				due = time.After(wait)
				continue
			}
		case <-due:
		}
		due = nil
		last = time.Now()
		if !write() {
			due = time.After(every)
		}
	}
}

func (m *Manager) filePath(name string) string {
	return filepath.Join(m.opts.FileSDDir, name+".json")
}

// writeFile writes a job's file atomically, when its content changes.
func (m *Manager) writeFile(name string, body *list) error {
	changed, err := atomicfile.Write(m.filePath(name), body, 0o644)
	m.fmu.Lock()
	defer m.fmu.Unlock()
	switch {
	case err != nil:
		m.writeErrs[name]++
	case changed:
		m.writes[name]++
	}
	return err
}

// removeFile deletes the file of a job that is gone. The caller holds
// m.mu.
func (m *Manager) removeFile(name string) {
	if m.opts.FileSDDir == "" {
		return
	}
	if err := os.Remove(m.filePath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.logger.Error("cannot remove the file of a removed job", "job", name, "err", err)
	}
}

// Reload reads the config file and applies it; a bad file leaves the
// running jobs alone. It sets the reload metrics.
func (m *Manager) Reload(path string) error {
	cfg, err := LoadConfigDefault(path, m.opts.DefaultZooKeeper)
	m.mu.Lock()
	m.reloadOK = err == nil
	if err == nil {
		m.reloadTime = time.Now()
	}
	m.mu.Unlock()
	if err != nil {
		m.logger.Error("config reload failed; keeping the running config", "err", err)
		return err
	}
	m.ApplyConfig(cfg)
	m.logger.Info("config loaded", "file", path, "jobs", len(cfg.Jobs))
	return nil
}
