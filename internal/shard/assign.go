// Package shard splits targets among the live members of a Prometheus
// cluster by rendezvous (highest-random-weight) hashing: every member
// computes the same assignment from the same view, and a join or a leave
// moves only the targets that must move.
package shard

import (
	"math"
	"sort"
)

// Member is one live member with its weight (default 1).
type Member struct {
	Name   string
	Weight float64
}

// Assignment maps each target key to the members that scrape it.
type Assignment map[string][]string

// TargetKey is the identity of a target for assignment: job, address and
// what selects the metrics (path and params), never the full label set, so
// that relabeling or a label change never moves a target.
func TargetKey(job, address, metricsPath, params string) string {
	return job + "\x00" + address + "\x00" + metricsPath + "\x00" + params
}

// Assign gives every target to the replicas members with the highest
// weighted score. Members with a weight <= 0 get nothing. The result does
// not depend on the order of members or targets.
func Assign(targets []string, members []Member, replicas int) Assignment {
	ms := prepare(members)
	out := make(Assignment, len(targets))
	if len(ms) == 0 {
		return out
	}
	replicas = max(1, min(replicas, len(ms)))
	top := make([]scored, 0, replicas)
	uniform := true
	for _, m := range ms {
		uniform = uniform && m.weight == ms[0].weight
	}
	for _, t := range targets {
		top = topMembers(hashString(t), ms, replicas, uniform, top[:0])
		owners := make([]string, len(top))
		for i, s := range top {
			owners[i] = ms[s.idx].name
		}
		out[t] = owners
	}
	return out
}

// Owners returns the members that scrape one target.
func Owners(target string, members []Member, replicas int) []string {
	return Assign([]string{target}, members, replicas)[target]
}

type prepared struct {
	name   string
	seed   uint64
	weight float64
}

type scored struct {
	idx   int
	score float64
}

func prepare(members []Member) []prepared {
	ms := make([]prepared, 0, len(members))
	for _, m := range members {
		w := m.Weight
		if w == 0 {
			w = 1
		}
		if w < 0 || math.IsNaN(w) {
			continue
		}
		ms = append(ms, prepared{name: m.Name, seed: hashString(m.Name), weight: w})
	}
	// A fixed order makes ties (practically impossible) break the same way
	// everywhere.
	sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
	return ms
}

// topMembers keeps the n best scores for one target (n is small: 1–3).
func topMembers(th uint64, ms []prepared, n int, uniform bool, top []scored) []scored {
	for i, m := range ms {
		var s float64
		if uniform {
			s = float64(mix(th ^ m.seed)) // same order as the weighted score, without a logarithm
		} else {
			s = score(th, m)
		}
		if len(top) < n {
			top = append(top, scored{i, s})
			for j := len(top) - 1; j > 0 && top[j].score > top[j-1].score; j-- {
				top[j], top[j-1] = top[j-1], top[j]
			}
			continue
		}
		if s <= top[n-1].score {
			continue
		}
		top[n-1] = scored{i, s}
		for j := n - 1; j > 0 && top[j].score > top[j-1].score; j-- {
			top[j], top[j-1] = top[j-1], top[j]
		}
	}
	return top
}

// score is weighted rendezvous hashing: -w / ln(u) with u uniform in (0,1)
// from the pair's hash, so a member's share is proportional to its weight.
func score(targetHash uint64, m prepared) float64 {
	h := mix(targetHash ^ m.seed)
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -m.weight / math.Log(u)
}

// hashString is FNV-1a, then mixed.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// mix is the splitmix64 finalizer: it spreads every input bit over the
// whole word.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Moved returns the fraction of targets whose owner set changed between
// two assignments.
func Moved(before, after Assignment) float64 {
	if len(before) == 0 {
		return 0
	}
	moved := 0
	for t, b := range before {
		a := after[t]
		if !sameSet(a, b) {
			moved++
		}
	}
	return float64(moved) / float64(len(before))
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Counts returns how many targets each member scrapes.
func Counts(a Assignment) map[string]int {
	c := map[string]int{}
	for _, owners := range a {
		for _, o := range owners {
			c[o]++
		}
	}
	return c
}
