package configstore

import (
	"crypto/rand"
	"testing"
)

func TestParseRevisionAndNames(t *testing.T) {
	for in, want := range map[string]int{"12": 12, "r12": 12, "r-0000000012": 12} {
		if got, err := ParseRevision(in); err != nil || got != want {
			t.Errorf("ParseRevision(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "r-x"} {
		if _, err := ParseRevision(bad); err == nil {
			t.Errorf("ParseRevision(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "a/b", ".x", "a b"} {
		if err := ValidateName("cluster", bad); err == nil {
			t.Errorf("cluster name %q accepted", bad)
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
