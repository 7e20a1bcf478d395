package zktest

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestFreePortsOutsideEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 3 {
		ports, err := FreePorts(20)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if p < lowestPort || p >= low {
				t.Errorf("port %d outside %d-%d", p, lowestPort, low-1)
			}
			if seen[p] {
				t.Errorf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
}

func TestFreePortsSkipsAPortLockedElsewhere(t *testing.T) {
	dir := t.TempDir()
	p := lowestPort + 1
	// Another test process holds p's lock.
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if reserve(dir, p) {
		t.Fatalf("port %d reserved although another process holds its lock", p)
	}
	f.Close()
	if !reserve(dir, p) {
		t.Fatalf("port %d not reserved once its lock was released", p)
	}
	portsMu.Lock()
	reserved[p].Close()
	delete(reserved, p)
	portsMu.Unlock()
}
