package discovery

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
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
