package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/berth-runtime/berth/oci"
)

// spareMonitor is a started monitor waiting for a container.
type spareMonitor struct {
	cmd    *exec.Cmd
	syncR  *os.File // the monitor's reports (its fd 3)
	assign *os.File // the container's state dir goes here (its fd 4)
}

// monitorSpares keeps one spare monitor started ahead of need, so that
// creating a container does not wait for a process to start. The first
// CreateContainer after berthd starts pays for its own; each take starts
// the next spare in the background.
type monitorSpares struct {
	// mu guards the fields below.
	mu     sync.Mutex
	next   *spareMonitor
	closed bool
}

// take returns the spare, or a new monitor if there is none, and starts
// the next spare.
func (s *monitorSpares) take(state string) (*spareMonitor, error) {
	s.mu.Lock()
	sp := s.next
	s.next = nil
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		go s.refill(state)
	}
	if sp != nil {
		return sp, nil
	}
	return startSpare(state)
}

// refill starts a spare unless one is there (or the Manager closed).
func (s *monitorSpares) refill(state string) {
	sp, err := startSpare(state)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.next == nil && !s.closed {
		s.next, sp = sp, nil
	}
	s.mu.Unlock()
	if sp != nil {
		sp.release()
	}
}

// close lets the spare go; it exits at once.
func (s *monitorSpares) close() {
	s.mu.Lock()
	sp := s.next
	s.next, s.closed = nil, true
	s.mu.Unlock()
	if sp != nil {
		sp.release()
	}
}

// release ends an unused spare: end of file on its fd 4 makes it exit.
func (sp *spareMonitor) release() {
	sp.assign.Close()
	sp.syncR.Close()
	_ = sp.cmd.Wait()
}

// startSpare starts a monitor waiting for a container. state (berthd's
// state dir) is in its command line only so that it can be told apart.
func startSpare(state string) (_ *spareMonitor, retErr error) {
	// Started from berthd's sealed copy, which the monitor's runtime
	// then reuses: one copy of the binary per host, not one per monitor.
	exe, err := oci.SealedExe("")
	if err != nil {
		return nil, err
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	assignR, assignW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		syncW.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{monitorRole, "--spare", state},
		Env:         []string{"GOMAXPROCS=1", "GOGC=20", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Dir:         "/",
		ExtraFiles:  []*os.File{syncW, assignR},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	syncW.Close()
	assignR.Close()
	if err != nil {
		syncR.Close()
		assignW.Close()
		return nil, fmt.Errorf("start %s: %w", monitorRole, err)
	}
	return &spareMonitor{cmd: cmd, syncR: syncR, assign: assignW}, nil
}
