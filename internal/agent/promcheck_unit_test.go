package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/configstore"
)

// A Prometheus with --config.auto-reload whose poll reloads the switched
// files before the agent asks: the agent does not ask again, and reads
// the outcome of that reload, a success or a failure (rolled back).
func TestUnitAutoReload(t *testing.T) {
	u := newUnitAgent(t)
	u.prom.setAutoReload(true)
	u.push(1, ymlOne)
	u.step()
	if st := u.expect(configstore.StateApplied, 1, ymlOne); !st.AutoReload {
		t.Fatalf("status does not say Prometheus reloads by itself: %+v", st)
	}
	if _, n := u.prom.state(); n != 1 || u.prom.autoReloaded() != 1 {
		t.Fatalf("%d reloads (%d by Prometheus itself), want one, its own", n, u.prom.autoReloaded())
	}
	u.push(2, ymlTwo+"# fake: fail after reload\n")
	u.step()
	st := u.expect(configstore.StateFailed, 1, ymlOne)
	if st.FailedRevision != 2 || st.FailedStep != stepVerify || !strings.Contains(st.Error, "refused") {
		t.Fatalf("the failed reload Prometheus did by itself was not read as a refusal: %+v", st)
	}
}

// The agent compares its promtool's version with Prometheus's: a
// promtool of another minor release is named in the status and the
// metric, the same release is not.
func TestUnitPromtoolVersion(t *testing.T) {
	for _, tc := range []struct {
		promtool string
		mismatch bool
	}{{"2.42.0+ds", true}, {"3.16.2", false}, {"", false}} {
		t.Run("promtool-"+tc.promtool, func(t *testing.T) {
			tool := filepath.Join(t.TempDir(), "promtool")
			script := "#!/bin/sh\n[ \"$1\" = --version ] && echo 'promtool, version " + tc.promtool + " (branch: x, revision: y)'\nexit 0\n"
			if err := os.WriteFile(tool, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			u := newUnitAgentWith(t, func(c *Config) { c.Promtool = tool })
			u.push(1, ymlOne)
			u.step()
			st := u.expect(configstore.StateApplied, 1, ymlOne)
			want := tc.promtool
			if want == "" {
				want = "unknown"
			}
			if st.PrometheusVersion != "3.16.0" || st.PromtoolVersion != want || (st.VersionWarning != "") != tc.mismatch {
				t.Fatalf("status: Prometheus %q promtool %q warning %q", st.PrometheusVersion, st.PromtoolVersion, st.VersionWarning)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(stateCollector{u.a})
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, mf := range mfs {
				if mf.GetName() == "zkprom_agent_promtool_version_mismatch" {
					for _, m := range mf.GetMetric() {
						got = append(got, fmt.Sprint(m.GetLabel(), m.GetGauge().GetValue()))
					}
				}
			}
			if len(got) != 1 || !strings.Contains(got[0], `"`+want+`"`) || !strings.HasSuffix(got[0], fmt.Sprint(" ", b2f(tc.mismatch))) {
				t.Fatalf("zkprom_agent_promtool_version_mismatch: %v, want one series for promtool %s with %v", got, want, b2f(tc.mismatch))
			}
		})
	}
}
