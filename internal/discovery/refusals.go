package discovery

import (
	"strings"
	"time"
)

// maxRefusalsPerReason bounds the refused znodes a job keeps the why of,
// per reason: the status page shows them; the counts are in the metrics.
const maxRefusalsPerReason = 5

// maxRefusalText bounds the error text kept of one refusal.
const maxRefusalText = 512

// Refusal is a znode that a job refuses now, and why.
type Refusal struct {
	Path   string    `json:"path"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	Since  time.Time `json:"since"`
}

// refusals keeps the first few refused znodes per reason (under the
// job's lock); a znode that parses again or goes leaves room for the next.
type refusals map[string][]Refusal

func (r *refusals) note(path, reason string, err error, now time.Time) {
	if *r == nil {
		*r = map[string][]Refusal{}
	}
	text := strings.ToValidUTF8(err.Error(), "?")
	if len(text) > maxRefusalText {
		text = strings.ToValidUTF8(text[:maxRefusalText], "") + "..."
	}
	for i, f := range (*r)[reason] {
		if f.Path == path {
			(*r)[reason][i].Error = text
			return
		}
	}
	r.forget(path) // refused before for another reason
	if len((*r)[reason]) < maxRefusalsPerReason {
		(*r)[reason] = append((*r)[reason], Refusal{Path: path, Reason: reason, Error: text, Since: now})
	}
}

func (r refusals) forget(path string) {
	for reason, list := range r {
		for i, f := range list {
			if f.Path == path {
				r[reason] = append(list[:i:i], list[i+1:]...)
				return
			}
		}
	}
}

// of returns the refusal of path when it is kept.
func (r refusals) of(path string) (Refusal, bool) {
	for _, list := range r {
		for _, f := range list {
			if f.Path == path {
				return f, true
			}
		}
	}
	return Refusal{}, false
}
