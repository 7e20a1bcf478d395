package exporter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseMntr(t *testing.T) {
	for _, tc := range []struct {
		file    string
		keys    int
		state   string
		checks  map[string]float64
		missing []string
	}{
		{"leader_mntr.txt", 554, "leader", map[string]float64{"packets_received": 285, "learners": 2, "quorum_size": 3, "p99_readlatency": 6, "cnt_demo0_write_per_namespace": -1}, []string{"followers"}},
		{"follower_mntr.txt", 512, "follower", map[string]float64{"znode_count": 83}, []string{"learners", "pending_syncs"}},
		{"mntr_3.4_leader.txt", 19, "leader", map[string]float64{"followers": 2, "pending_syncs": 0, "max_file_descriptor_count": 1048576}, []string{"learners"}},
		{"mntr_3.5_leader.txt", 23, "leader", map[string]float64{"followers": 2, "last_proposal_size": 92, "some_future_key": 7}, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s, err := ParseMntr(fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(s.Numbers) + len(s.Strings); n != tc.keys {
				t.Errorf("keys = %d, want %d", n, tc.keys)
			}
			if s.Strings["server_state"] != tc.state {
				t.Errorf("server_state = %q, want %q", s.Strings["server_state"], tc.state)
			}
			for k, want := range tc.checks {
				got, ok := s.Numbers[k]
				if want == -1 {
					if !ok {
						t.Errorf("%s missing", k)
					}
					continue
				}
				if !ok || got != want {
					t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
				}
			}
			for _, k := range tc.missing {
				if _, ok := s.Numbers[k]; ok {
					t.Errorf("%s present, want missing", k)
				}
			}
		})
	}
}

func TestParseMntrErrors(t *testing.T) {
	var refused *RefusedError
	if _, err := ParseMntr(fixture(t, "mntr_refused.txt")); !errors.As(err, &refused) || refused.Command != "mntr" {
		t.Errorf("refused: err = %v, want RefusedError for mntr", err)
	}
	if _, err := ParseMntr(fixture(t, "mntr_not_serving.txt")); !errors.Is(err, ErrNotServing) {
		t.Errorf("not serving: err = %v, want ErrNotServing", err)
	}
	if _, err := ParseMntr("garbage line\n"); err == nil {
		t.Error("garbage: no error")
	}
	if _, err := ParseMntr(""); err == nil {
		t.Error("empty: no error")
	}
}

func TestParseMonitor(t *testing.T) {
	s, err := ParseMonitor([]byte(fixture(t, "leader_admin_monitor.json")))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ParseMntr(fixture(t, "leader_mntr.txt"))
	for k := range m.Numbers {
		if _, ok := s.Numbers[k]; !ok {
			t.Errorf("monitor lacks mntr key %s", k)
		}
	}
	if s.Strings["server_state"] != "leader" || s.Strings["version"] == "" {
		t.Errorf("strings = %v", s.Strings)
	}
	if _, err := ParseMonitor([]byte(`{"command":"monitor","error":"This ZooKeeper instance is not currently serving requests"}`)); !errors.Is(err, ErrNotServing) {
		t.Errorf("not serving: err = %v", err)
	}
	if _, err := ParseMonitor([]byte(`{`)); err == nil {
		t.Error("bad JSON: no error")
	}
	if _, err := ParseMonitor([]byte(`{"command":"monitor","error":null}`)); err == nil {
		t.Error("no keys: no error")
	}
}

func TestParseSrvr(t *testing.T) {
	for _, tc := range []struct {
		file string
		mode string
		zxid uint64
	}{
		{"leader_srvr.txt", "leader", 0x100000180},
		{"follower_srvr.txt", "follower", 0x1000000db},
		{"srvr_3.4_follower.txt", "follower", 0x50000002a},
	} {
		st, err := ParseSrvr(fixture(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if st.Mode != tc.mode || !st.HasZxid || st.Zxid != tc.zxid {
			t.Errorf("%s: mode %q zxid %x, want %q %x", tc.file, st.Mode, st.Zxid, tc.mode, tc.zxid)
		}
		if st.Numbers["packets_received"] == 0 || st.Numbers["znode_count"] == 0 {
			t.Errorf("%s: numbers %v", tc.file, st.Numbers)
		}
	}
	if _, err := ParseSrvr("Zxid: 0xzz\nMode: leader\n"); err == nil {
		t.Error("bad zxid: no error")
	}
	if _, err := ParseSrvr("hello\n"); err == nil {
		t.Error("no mode: no error")
	}
	if _, err := ParseSrvr("Mode: leader\nLatency min/avg/max: 1/2\n"); err == nil {
		t.Error("bad latency: no error")
	}
}

func TestParseAdmin(t *testing.T) {
	st, err := ParseAdminSrvr([]byte(fixture(t, "leader_admin_srvr.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "leader" || st.Zxid != 4294967827 || st.ReadOnly == nil || *st.ReadOnly {
		t.Errorf("admin srvr = %+v", st)
	}
	voters, err := ParseVotingView([]byte(fixture(t, "leader_admin_voting_view.json")))
	if err != nil || len(voters) != 3 {
		t.Errorf("voting view = %v, %v", voters, err)
	}
	conns, err := ParseAdminConnections([]byte(fixture(t, "follower_admin_connections.json")))
	if err != nil || len(conns) != 1 || conns[0].PacketsReceived != 354 {
		t.Errorf("connections = %+v, %v", conns, err)
	}
	for name, f := range map[string]func([]byte) error{
		"srvr":        func(b []byte) error { _, err := ParseAdminSrvr(b); return err },
		"voting_view": func(b []byte) error { _, err := ParseVotingView(b); return err },
		"connections": func(b []byte) error { _, err := ParseAdminConnections(b); return err },
	} {
		if err := f([]byte(`{"error":"This ZooKeeper instance is not currently serving requests"}`)); !errors.Is(err, ErrNotServing) {
			t.Errorf("%s not serving: err = %v", name, err)
		}
		if err := f([]byte(`[`)); err == nil {
			t.Errorf("%s bad JSON: no error", name)
		}
	}
}

func TestParseWchs(t *testing.T) {
	w, err := ParseWchs(fixture(t, "follower_wchs.txt"))
	if err != nil || w.Connections != 1 || w.Paths != 20 || w.Watches != 20 {
		t.Errorf("wchs = %+v, %v", w, err)
	}
	if _, err := ParseWchs("x"); err == nil {
		t.Error("wchs garbage: no error")
	}
	conns, err := ParseCons(fixture(t, "follower_cons.txt"))
	if err != nil || len(conns) != 2 || conns[1].PacketsReceived != 174 || conns[1].Client != "127.0.0.1:48660" {
		t.Errorf("cons = %+v, %v", conns, err)
	}
	if _, err := ParseCons("nonsense\n"); err == nil {
		t.Error("cons garbage: no error")
	}
	var refused *RefusedError
	if _, err := ParseCons("cons is not executed because it is not in the whitelist.\n"); !errors.As(err, &refused) {
		t.Errorf("cons refused: err = %v", err)
	}
}

func TestSplitKey(t *testing.T) {
	for key, want := range map[string][3]string{
		"demo0_read_per_namespace":      {"read_per_namespace", "namespace", "demo0"},
		"my_app_write_per_namespace":    {"write_per_namespace", "namespace", "my_app"},
		"1_learner_handler_qp_size":     {"learner_handler_qp_size", "peer_id", "1"},
		"12_learner_handler_qp_time_ms": {"learner_handler_qp_time_ms", "peer_id", "12"},
		"packets_received":              {"packets_received", "", ""},
	} {
		n, l, v := splitKey(key)
		if [3]string{n, l, v} != want {
			t.Errorf("splitKey(%q) = %q %q %q, want %v", key, n, l, v, want)
		}
	}
}

// TestNoStateChangingWords: the exporter refuses to send anything but the
// read-only four-letter words (srst would wipe the server's statistics).
func TestNoStateChangingWords(t *testing.T) {
	for _, w := range []string{"srst", "crst", "kill", "stmk", "dump", "envi"} {
		if _, err := fourLetterWord(context.Background(), "127.0.0.1:1", w, nil); err == nil || !strings.Contains(err.Error(), "not one the exporter sends") {
			t.Errorf("%s: err = %v", w, err)
		}
	}
}
