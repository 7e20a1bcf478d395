package zktest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Ports for servers that tests stop and start again come from below the
// kernel's ephemeral range: a port from there (what listening on :0 gives)
// may be taken as the source port of any outgoing connection while its
// server is down, and the restarted server then fails to bind it (ZooKeeper
// even runs on without its AdminServer). A lock file per port, held until
// the test process exits, keeps the packages that go test runs side by side
// from handing out the same port.
const lowestPort = 10000

var (
	portsMu  sync.Mutex
	reserved = map[int]*os.File{} // held open until the process exits
)

// FreePorts returns n distinct free TCP ports on 127.0.0.1 outside the
// ephemeral range, reserved for this test process.
func FreePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	top := ephemeralLow()
	dir := filepath.Join(os.TempDir(), "zktest-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("no free port in %d-%d after %d tries", lowestPort, top-1, tries)
		}
		p := lowestPort + rand.IntN(top-lowestPort)
		if reserved[p] != nil || !reserve(dir, p) {
			continue
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// reserve locks port p's file and checks that nothing listens on p.
func reserve(dir string, p int) bool {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return false
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		f.Close()
		return false
	}
	l.Close()
	reserved[p] = f
	return true
}

// ephemeralLow is the lowest port the kernel hands out on its own.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if low, err := strconv.Atoi(f[0]); err == nil && low > lowestPort+1000 {
				return low
			}
		}
	}
	return 32768
}
