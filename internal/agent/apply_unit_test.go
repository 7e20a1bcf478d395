package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
)

// unitAgent is an agent on a fakeZK and a promDouble, driven step by step
// as Run's loop drives it.
type unitAgent struct {
	t     *testing.T
	a     *Agent
	zk    *fakeZK
	store *fakeStore
	prom  *promDouble
	dir   string
	w     watches
}

func newUnitAgent(t *testing.T) *unitAgent {
	t.Helper()
	return newUnitAgentWith(t, func(*Config) {})
}

// newUnitAgentWith is newUnitAgent with its configuration changed by mod.
func newUnitAgentWith(t *testing.T, mod func(*Config)) *unitAgent {
	t.Helper()
	dir := t.TempDir()
	p := newPromDouble(t, dir)
	cfg := Config{Cluster: "c", Member: "m1", ConfigDir: dir, Prometheus: prom.Config{URL: p.srv.URL},
		Promtool: "none", VerifyTimeout: time.Second, RetryInterval: 50 * time.Millisecond}
	mod(&cfg)
	a, err := New(nil, cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	z, st := newFakeZK(), &fakeStore{revs: map[int]*bundle.Bundle{}}
	a.revisions, a.admission, a.pointers = st, st, z.session()
	if err := a.disk.init(); err != nil {
		t.Fatal(err)
	}
	saved, err := a.disk.readState()
	if err != nil {
		t.Fatal(err)
	}
	a.state = saved
	return &unitAgent{t: t, a: a, zk: z, store: st, prom: p, dir: dir}
}

// push stores rev and points current at it, as zkprom config push does.
func (u *unitAgent) push(rev int, prometheusYML string) {
	u.pushFiles(rev, map[string]string{bundle.MainFile: prometheusYML})
}

// pushFiles is push with a bundle of several files.
func (u *unitAgent) pushFiles(rev int, files map[string]string) {
	b := &bundle.Bundle{Files: map[string][]byte{}}
	for name, data := range files {
		b.Files[name] = []byte(data)
	}
	u.store.mu.Lock()
	u.store.revs[rev] = b
	u.store.mu.Unlock()
	data, _ := json.Marshal(configstore.Pointer{Revision: rev, Checksum: b.Checksum(), Time: time.Now()})
	u.zk.set(u.a.store.CurrentPath(), data)
}

// step is one turn of Run's loop; it returns whether it asks for a retry.
func (u *unitAgent) step() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return u.a.step(ctx, &u.w)
}

// live returns the revision DIR/current points at and its prometheus.yml.
func (u *unitAgent) live() (int, string) {
	u.t.Helper()
	rev, err := u.a.disk.linked()
	if err != nil {
		u.t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(u.dir, currentLink, bundle.MainFile))
	if err != nil {
		u.t.Fatal(err)
	}
	return rev, string(data)
}

// expect checks the status, the link and what Prometheus runs.
func (u *unitAgent) expect(state string, applied int, liveYML string) configstore.Status {
	u.t.Helper()
	st := u.a.Status()
	if st.State != state || st.Revision != applied {
		u.t.Fatalf("status %s revision %d (error %q), want %s revision %d", st.State, st.Revision, st.Error, state, applied)
	}
	if rev, data := u.live(); rev != applied || data != liveYML {
		u.t.Fatalf("DIR/current is revision %d with %q, want %d with %q", rev, data, applied, liveYML)
	}
	if loaded, _ := u.prom.state(); loaded != liveYML {
		u.t.Fatalf("Prometheus runs %q, want %q", loaded, liveYML)
	}
	saved, err := u.a.disk.readState()
	if err != nil || saved.Applied != applied {
		u.t.Fatalf("state.json: applied %d (%v), want %d", saved.Applied, err, applied)
	}
	return st
}

const (
	ymlOne = "global:\n  scrape_interval: 15s\n"
	ymlTwo = "global:\n  scrape_interval: 30s\n"
)

func TestUnitApplySucceeds(t *testing.T) {
	u := newUnitAgent(t)
	if u.step() {
		t.Fatal("nothing pushed yet: no retry wanted")
	}
	if st := u.a.Status(); st.Target != 0 || st.Revision != 0 {
		t.Fatalf("before any push: %+v", st)
	}
	u.push(1, ymlOne)
	select { // the watch armed by the first step fires, once
	case ev := <-u.w.current:
		if ev.Type != zk.NodeCreated {
			t.Fatalf("current watch: %+v", ev)
		}
		u.w.current = nil
	case <-time.After(time.Second):
		t.Fatal("pushing did not fire the watch on current")
	}
	if u.step() {
		t.Fatal("apply asked for a retry")
	}
	st := u.expect(configstore.StateApplied, 1, ymlOne)
	if st.Target != 1 || st.Error != "" || !st.ReloadSuccessful {
		t.Fatalf("status after the apply: %+v", st)
	}
	if r := u.a.lastReport(); r.Revision != 1 || r.Err != nil || r.Steps[stepVerify] == 0 {
		t.Fatalf("report: %+v", r)
	}
	if _, n := u.prom.state(); n != 1 {
		t.Fatalf("%d reloads, want 1", n)
	}

	u.push(2, ymlTwo)
	if ev := <-u.w.current; ev.Type != zk.NodeDataChanged {
		t.Fatalf("current watch: %+v", ev)
	}
	u.w.current = nil
	u.step()
	u.expect(configstore.StateApplied, 2, ymlTwo)
	if _, n := u.prom.state(); n != 2 {
		t.Fatalf("%d reloads, want 2", n)
	}
	// A step without a change reloads nothing.
	u.step()
	if _, n := u.prom.state(); n != 2 {
		t.Fatalf("%d reloads after an idle step, want 2", n)
	}
}

// failed applies rev 1, then pushes rev 2 with yml and takes one step:
// the agent must refuse it at step and stay on (or return to) rev 1.
func failed(t *testing.T, yml, step string, reloads int) configstore.Status {
	u := newUnitAgent(t)
	u.push(1, ymlOne)
	u.step()
	u.expect(configstore.StateApplied, 1, ymlOne)
	u.push(2, yml)
	if u.step() {
		t.Fatal("a refused revision asked for a retry")
	}
	st := u.expect(configstore.StateFailed, 1, ymlOne)
	if st.Target != 2 || st.FailedRevision != 2 || st.FailedStep != step || st.Error == "" {
		t.Fatalf("status: target %d failed %d at %q (%q), want target 2 failed 2 at %q", st.Target, st.FailedRevision, st.FailedStep, st.Error, step)
	}
	if r := u.a.lastReport(); r.Revision != 2 || r.Err == nil {
		t.Fatalf("report: %+v", r)
	}
	if _, n := u.prom.state(); n != reloads {
		t.Fatalf("%d reloads, want %d", n, reloads)
	}
	saved, _ := u.a.disk.readState()
	if saved.FailedRevision != 2 || saved.FailedStep != step {
		t.Fatalf("state.json: %+v", saved)
	}
	// The refused revision is not tried again until another is pushed.
	u.step()
	if _, n := u.prom.state(); n != reloads {
		t.Fatalf("the failed revision was tried again: %d reloads", n)
	}
	return st
}

func TestUnitApplyValidationFails(t *testing.T) {
	// Refused before the swap: Prometheus is never asked.
	failed(t, "global:\n  scrape_interval: [\n", stepValidate, 1)
}

func TestUnitApplyReloadFails(t *testing.T) {
	// The refused reload, then the switch back and its reload.
	st := failed(t, ymlTwo+"# fake: refuse reload\n", stepReload, 3)
	if !strings.Contains(st.Error, "refused by the fake") {
		t.Fatalf("error %q does not carry Prometheus's text", st.Error)
	}
}

func TestUnitApplyVerifyFails(t *testing.T) {
	st := failed(t, ymlTwo+"# fake: fail after reload\n", stepVerify, 3)
	if !st.ReloadSuccessful {
		t.Fatalf("after the rollback Prometheus reloads fine, the status says %+v", st)
	}
}

func TestUnitApplyWaitsForPrometheus(t *testing.T) {
	u := newUnitAgent(t)
	u.push(1, ymlOne)
	u.step()
	u.expect(configstore.StateApplied, 1, ymlOne)

	u.prom.setAway(true)
	u.push(2, ymlTwo)
	if !u.step() {
		t.Fatal("Prometheus away: the agent wants to look again")
	}
	st := u.a.Status()
	if st.State != configstore.StateWaiting || st.Target != 2 || st.Revision != 1 || st.Error != "" {
		t.Fatalf("status while Prometheus is away: %+v", st)
	}
	if rev, data := u.live(); rev != 2 || data != ymlTwo {
		t.Fatalf("the files are laid down while Prometheus is away: revision %d %q", rev, data)
	}
	if !u.step() { // still away: still pending
		t.Fatal("still away: the agent wants to look again")
	}

	u.prom.setAway(false)
	if u.step() {
		t.Fatal("Prometheus answers: the pending attempt is finished")
	}
	st = u.expect(configstore.StateApplied, 2, ymlTwo)
	if st.Target != 2 || st.Error != "" {
		t.Fatalf("status: %+v", st)
	}
	if r := u.a.lastReport(); r.Revision != 2 || r.Err != nil {
		t.Fatalf("report: %+v", r)
	}
	u.a.mu.Lock()
	pending := u.a.pending
	u.a.mu.Unlock()
	if pending != nil {
		t.Fatal("the pending attempt stays after it was finished")
	}
}
