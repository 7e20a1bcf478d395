package zktest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Freeze sends SIGSTOP to process pid and returns once every thread of
// it has stopped. kill(2) returns when the signal is queued; each thread stops
// only when it next runs, and on a busy machine some threads of a JVM
// were seen to answer requests for a few milliseconds after kill had
// returned, so a test that paused a server could still get its answers.
func Freeze(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		running, err := runningThreads(pid)
		if err != nil || running == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d: %d threads still running 10s after SIGSTOP", pid, running)
		}
		time.Sleep(time.Millisecond)
	}
}

// runningThreads counts the threads of process pid that are not stopped,
// from the state field of /proc/pid/task/*/stat.
func runningThreads(pid int) (int, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		return 0, err
	}
	if len(stats) == 0 {
		return 0, fmt.Errorf("process %d: no threads in /proc", pid)
	}
	running := 0
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		// "pid (comm) S ...": comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			return 0, fmt.Errorf("%s: unexpected %q", f, s)
		}
		if state := s[i+2]; state != 'T' && state != 't' && state != 'Z' && state != 'X' {
			running++
		}
	}
	return running, nil
}
