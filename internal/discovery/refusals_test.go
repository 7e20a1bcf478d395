package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The record keeps the first few refused znodes per reason, moves a znode
// whose reason changes, and frees a place when a znode is no longer refused.
func TestRefusalsBounded(t *testing.T) {
	var r refusals
	now := time.Unix(0, 0)
	for i := range maxRefusalsPerReason + 2 {
		r.note(fmt.Sprintf("/a/%d", i), ReasonMalformed, errors.New("bad"), now)
	}
	r.note("/a/x", ReasonBadLabel, errors.New(strings.Repeat("x", 2*maxRefusalText)), now)
	if n := len(r[ReasonMalformed]); n != maxRefusalsPerReason {
		t.Fatalf("%d malformed kept, want %d", n, maxRefusalsPerReason)
	}
	if f, _ := r.of("/a/x"); len(f.Error) > maxRefusalText+3 {
		t.Errorf("error text of %d bytes kept", len(f.Error))
	}
	r.note("/a/0", ReasonBadLabel, errors.New("now a bad label"), now)
	if f, ok := r.of("/a/0"); !ok || f.Reason != ReasonBadLabel || len(r[ReasonMalformed]) != maxRefusalsPerReason-1 {
		t.Errorf("a changed reason: %+v %v, %d malformed", f, ok, len(r[ReasonMalformed]))
	}
	r.forget("/a/1")
	r.note("/a/6", ReasonMalformed, errors.New("bad"), now)
	if _, ok := r.of("/a/6"); !ok {
		t.Error("a freed place is not taken by the next refusal")
	}
}

// Every reason a znode is refused for is exported, too_large included.
func TestEveryReasonExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewManager(context.Background(), Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	j := newJob(JobConfig{Name: "a", Format: "serverset", Paths: []string{"/a"}}, slog.New(slog.DiscardHandler))
	m.jobs["a"] = &runningJob{j: j, done: make(chan struct{})}
	j.markSynced()
	j.markInvalid("/a/big", invalid(ReasonTooLarge, "too many"))
	n, err := testutil.GatherAndCount(reg, "zkprom_sd_invalid_members_total", "zkprom_sd_invalid_members")
	if err != nil || n != 2*len(reasons) {
		t.Fatalf("%d series (%v), want %d", n, err, 2*len(reasons))
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if mf.GetName() == "zkprom_sd_invalid_members_total" && l.GetName() == "reason" && l.GetValue() == ReasonTooLarge {
					if v := mt.GetCounter().GetValue(); v != 1 {
						t.Errorf("too_large refusals counted %v, want 1", v)
					}
					return
				}
			}
		}
	}
	t.Error("no too_large series")
}
