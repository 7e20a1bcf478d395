package agent

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
)

func p50(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2].Microseconds()) / 1000
}

// benchRollout measures push -> all three agents applied and verified,
// with its breakdown, beside Prometheus's own reload time alone (POST
// /-/reload of the same configuration) in the same run.
func benchRollout(b *testing.B, rounds int, mk func(salt string) *bundle.Bundle) {
	if testing.Short() {
		b.Skip("integration benchmark")
	}
	reset(b)
	cluster := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	agents := startAgents(b, cluster, nil)
	s := newStore(b, connect(b), cluster)
	ctx := context.Background()
	var total, pushValidate, zkWrite, propagate, fetchStage, agentValidate, reload, verify, baseline, baselineAll []time.Duration
	for n := 0; n < b.N; n++ {
		for r := 0; r < rounds; r++ {
			bun := mk(fmt.Sprint(n, "-", r))
			t0 := time.Now()
			if _, err := bundle.Validate(ctx, bun, bundle.ValidateOptions{}); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			res, err := s.Push(ctx, bun, configstore.PushMeta{Author: "bench", Message: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			for {
				done := 0
				for _, a := range agents {
					if st := a.a.Status(); st.State == configstore.StateApplied && st.Revision == res.Meta.Revision {
						done++
					} else if st.State == configstore.StateFailed && st.FailedRevision == res.Meta.Revision {
						b.Fatalf("%s failed: %s", st.Member, st.Error)
					}
				}
				if done == len(agents) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			total = append(total, time.Since(t0))
			pushValidate = append(pushValidate, t1.Sub(t0))
			zkWrite = append(zkWrite, res.Committed.Sub(t1))
			for _, a := range agents {
				rep := a.a.lastReport()
				propagate = append(propagate, rep.Noticed.Sub(res.Committed))
				fetchStage = append(fetchStage, rep.Steps[stepFetch]+rep.Steps[stepStage])
				agentValidate = append(agentValidate, rep.Steps[stepValidate])
				reload = append(reload, rep.Steps[stepReload])
				verify = append(verify, rep.Steps[stepVerify])
			}
			// Baseline: Prometheus reloading the same files alone.
			pc := promClient(b, 0)
			t3 := time.Now()
			if err := pc.Reload(ctx); err != nil {
				b.Fatal(err)
			}
			baseline = append(baseline, time.Since(t3))
			// Baseline: the three Prometheus servers reloading the same
			// files at once (the load an agent rollout puts on the host).
			t4 := time.Now()
			errs := make(chan error, len(env.proms))
			for i := range env.proms {
				go func() { errs <- promClient(b, i).Reload(ctx) }()
			}
			for range env.proms {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			baselineAll = append(baselineAll, time.Since(t4))
		}
	}
	b.ReportMetric(p50(total), "push_to_all_applied_p50_ms")
	b.ReportMetric(p50(pushValidate), "push_validate_p50_ms")
	b.ReportMetric(p50(zkWrite), "zk_write_p50_ms")
	b.ReportMetric(p50(propagate), "zk_propagation_p50_ms")
	b.ReportMetric(p50(fetchStage), "agent_fetch_stage_p50_ms")
	b.ReportMetric(p50(agentValidate), "agent_validate_p50_ms")
	b.ReportMetric(p50(reload), "agent_reload_p50_ms")
	b.ReportMetric(p50(verify), "agent_verify_p50_ms")
	b.ReportMetric(p50(baseline), "baseline_prometheus_reload_alone_p50_ms")
	b.ReportMetric(p50(baselineAll), "baseline_3_prometheus_reload_at_once_p50_ms")
}

func BenchmarkRolloutSmall(b *testing.B) {
	benchRollout(b, 9, func(salt string) *bundle.Bundle {
		return testBundle([]string{"job_a", "job_" + fmt.Sprint(len(salt))}, []string{"group_a"}, "", map[string]string{"salt.txt": salt})
	})
}

func BenchmarkRolloutLarge(b *testing.B) {
	benchRollout(b, 3, func(salt string) *bundle.Bundle { return largeBundle(1000, 5000, salt) })
}
