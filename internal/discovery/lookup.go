package discovery

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strings"
)

// Verdicts of a lookup: what a job makes of an address or a znode.
const (
	VerdictTarget    = "target"       // it is a target (Targets says which)
	VerdictRefused   = "refused"      // the znode is refused (Refused says why)
	VerdictFiltered  = "filtered"     // the member parses but the job's filter leaves it out
	VerdictOutside   = "outside"      // the znode is under none of the job's paths
	VerdictNotMember = "not_a_member" // the znode is no member itself; members below it are counted
	VerdictNotSeen   = "not_seen"     // the job's cache has no such znode
	VerdictNoTarget  = "no_target"    // no target of the job has the address
)

// maxLookupMatches bounds the targets one answer lists, and
// lookupPathsPreview the refused znodes it names.
const (
	maxLookupMatches   = 20
	lookupPathsPreview = 5
)

// Lookup is the answer to "why is this address or this znode not a
// target?", from the jobs' caches.
type Lookup struct {
	Query   string         `json:"query"`
	Job     string         `json:"job,omitempty"` // "" asks every job
	Answers []LookupAnswer `json:"answers"`
}

// LookupAnswer is one job's answer.
type LookupAnswer struct {
	Job     string   `json:"job"`
	Verdict string   `json:"verdict"`
	Text    string   `json:"text"`
	Targets []Target `json:"targets,omitempty"`
	// Refused are refused znodes the answer names (with why when the job
	// kept it: the first few per reason).
	Refused []Refusal `json:"refused,omitempty"`
}

// maxLookupQuery bounds a lookup's query (ZooKeeper paths and addresses
// are far shorter).
const maxLookupQuery = 1024

// Lookup asks job (every job when "") about q: a znode path (starting
// with /) or a scrape address (host:port).
func (m *Manager) Lookup(job, q string) Lookup {
	q = strings.TrimSpace(q)
	l := Lookup{Query: q, Job: job, Answers: []LookupAnswer{}}
	if q == "" {
		return l
	}
	for _, v := range m.runningJobs() {
		if job != "" && v.j.cfg.Name != job {
			continue
		}
		j := v.j
		j.mu.Lock()
		var a LookupAnswer
		if strings.HasPrefix(q, "/") {
			a = j.lookupPath(q)
		} else {
			a = j.lookupAddress(q)
		}
		j.mu.Unlock()
		a.Job = j.cfg.Name
		l.Answers = append(l.Answers, a)
	}
	return l
}

// refusal is what the job knows of why path is refused (j.mu held).
func (j *job) refusal(path string) Refusal {
	if f, ok := j.refused.of(path); ok {
		return f
	}
	return Refusal{Path: path, Reason: j.invalid[path],
		Error: fmt.Sprintf("(the details are kept for the first %d refused znodes per reason; see the log)", maxRefusalsPerReason)}
}

// lookupPath says what the job makes of the znode p (j.mu held).
func (j *job) lookupPath(p string) LookupAnswer {
	inside := false
	for _, root := range j.cfg.Paths {
		inside = inside || p == root || under(p, root)
	}
	if !inside {
		return LookupAnswer{Verdict: VerdictOutside, Text: fmt.Sprintf("%s is under none of the job's paths (%s)", p, strings.Join(j.cfg.Paths, ", "))}
	}
	if _, ok := j.invalid[p]; ok {
		f := j.refusal(p)
		return LookupAnswer{Verdict: VerdictRefused, Text: fmt.Sprintf("refused (%s)", f.Reason), Refused: []Refusal{f}}
	}
	if ids, ok := j.znodeTargets(p); ok {
		var ts []Target
		for _, id := range ids[:min(len(ids), maxLookupMatches)] {
			if t, ok := j.target(id); ok {
				ts = append(ts, t)
			}
		}
		if len(ts) == 0 {
			return LookupAnswer{Verdict: VerdictFiltered, Text: "the member parses, but the job's filter (filter.status, filter.enabled_only) leaves it out"}
		}
		return LookupAnswer{Verdict: VerdictTarget, Text: fmt.Sprintf("a target: %d target(s) come from this znode", len(ts)), Targets: ts}
	}
	members, refused := 0, []string{}
	j.eachMember(func(q string) {
		if under(q, p) {
			members++
		}
	})
	for q := range j.invalid {
		if under(q, p) {
			refused = append(refused, q)
		}
	}
	if members == 0 && len(refused) == 0 {
		return LookupAnswer{Verdict: VerdictNotSeen, Text: "the job's cache has no member at or below this znode: it is not registered (or is deeper than the format reads)"}
	}
	a := LookupAnswer{Verdict: VerdictNotMember, Text: fmt.Sprintf("not a member itself; below it %d member znode(s) and %d refused", members, len(refused))}
	sort.Strings(refused)
	for _, q := range refused[:min(len(refused), lookupPathsPreview)] {
		a.Refused = append(a.Refused, j.refusal(q))
	}
	return a
}

// lookupAddress says what the job makes of the scrape address addr
// (j.mu held): its targets with it, else those on the same host, and the
// refused znodes that name it.
func (j *job) lookupAddress(addr string) LookupAnswer {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	var exact, sameHost []Target
	// Only the entries that name the host are decoded.
	j.eachTarget(func(entry []byte) bool { return bytes.Contains(entry, []byte(host)) }, func(t Target) bool {
		th, _, _ := net.SplitHostPort(t.Address)
		switch {
		case t.Address == addr:
			exact = append(exact, t)
		case th == host && len(sameHost) < maxLookupMatches:
			sameHost = append(sameHost, t)
		}
		return len(exact) < maxLookupMatches
	})
	if len(exact) > 0 {
		return LookupAnswer{Verdict: VerdictTarget, Text: fmt.Sprintf("a target (%d)", len(exact)), Targets: exact}
	}
	a := LookupAnswer{Verdict: VerdictNoTarget, Targets: sameHost}
	var named []string
	for p := range j.invalid {
		if strings.Contains(p, host) {
			named = append(named, p)
		}
	}
	// The kept refusals whose why names the host (no_address, bad ports).
	for _, list := range j.refused {
		for _, f := range list {
			if strings.Contains(f.Error, host) && !strings.Contains(f.Path, host) {
				named = append(named, f.Path)
			}
		}
	}
	sort.Strings(named)
	for _, p := range named[:min(len(named), lookupPathsPreview)] {
		a.Refused = append(a.Refused, j.refusal(p))
	}
	a.Text = fmt.Sprintf("no target of this job has the address %s", addr)
	if len(sameHost) > 0 {
		a.Text += fmt.Sprintf("; %d target(s) on the same host with another port are listed", len(sameHost))
	}
	if len(named) > 0 {
		a.Text += fmt.Sprintf("; %d refused znode(s) name the host", len(named))
	} else if n := len(j.invalid); n > 0 {
		a.Text += fmt.Sprintf("; %d refused znode(s) (their data is not kept: look one up by its path; the job page lists the first few per reason)", n)
	}
	return a
}
