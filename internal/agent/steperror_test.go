package agent

import (
	"errors"
	"testing"
)

func TestStepErrorNamesTheStepOnce(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"reload: prometheus unreachable", "reload: prometheus unreachable"},
		{"prometheus unreachable", "reload: prometheus unreachable"},
	} {
		if got := (&stepError{step: stepReload, err: errors.New(tc.err)}).Error(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.err, got, tc.want)
		}
	}
}
