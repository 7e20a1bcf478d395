package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/zkprom/zkprom/internal/configstore"
)

// When several agents change within one poll, each progress line's count
// is the one after that line: [1/2] then [2/2], never [2/2] on the first
// agent to apply.
func TestProgressPrinterCount(t *testing.T) {
	member := func(name, state string, rev int) configstore.Member {
		return configstore.Member{Name: name, Status: configstore.Status{Member: name, State: state, Revision: rev, Target: 2}}
	}
	var out bytes.Buffer
	p := progressPrinter(&out)
	p(configstore.Rollout{Target: 2, Members: []configstore.Member{member("prom-a", configstore.StateApplying, 1), member("prom-b", configstore.StateApplying, 1)}, Pending: 2})
	p(configstore.Rollout{Target: 2, Members: []configstore.Member{member("prom-a", configstore.StateApplied, 2), member("prom-b", configstore.StateApplied, 2)}, Applied: 2})
	// An unchanged agent prints nothing; the count still includes it.
	p(configstore.Rollout{Target: 2, Members: []configstore.Member{member("prom-a", configstore.StateApplied, 2), member("prom-b", configstore.StateApplied, 2), member("prom-c", configstore.StateApplied, 2)}, Applied: 3})
	want := []string{
		"[0/2] agent prom-a: applying (revision 1, target 2)",
		"[0/2] agent prom-b: applying (revision 1, target 2)",
		"[1/2] agent prom-a: applied (revision 2)",
		"[2/2] agent prom-b: applied (revision 2)",
		"[3/3] agent prom-c: applied (revision 2)",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress lines:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}
