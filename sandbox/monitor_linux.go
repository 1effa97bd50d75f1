package sandbox

// berthd's side of the monitors: starting one, watching it, adopting it
// again after a restart, and asking it to reopen the log.
//
// berthd watches each monitor through a pidfd registered with Go's
// netpoller: a hundred containers cost a hundred parked goroutines, not a
// hundred threads blocked in wait.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runState is status.json: what berthd needs to find a container's
// monitor and process again after a restart.
type runState struct {
	MonitorPid   int       `json:"monitor_pid"`
	MonitorStart uint64    `json:"monitor_start"`
	Pid          int       `json:"pid,omitempty"`
	StartedAt    time.Time `json:"started_at,omitzero"`
}

func readRunState(dir string) (runState, error) {
	var rs runState
	err := readJSON(filepath.Join(dir, statusFile), &rs)
	return rs, err
}

// monitorHandle is a live monitor as berthd sees it.
type monitorHandle struct {
	pid    int
	start  uint64
	pidfd  *os.File
	exited chan struct{} // closed once the monitor has exited (and is reaped)
}

// startMonitor starts the container's monitor, which creates the
// container, and returns once the container exists (with its PID) or
// creating it failed, within createTimeout whatever the caller's deadline
// (see below). The monitor outlives berthd.
func (m *Manager) startMonitor(c *Container, mc monitorConfig) (_ *monitorHandle, pid int, retErr error) {
	if err := writeJSONAtomic(filepath.Join(c.stateDir, monitorConfigFile), mc); err != nil {
		return nil, 0, err
	}
	sp, err := m.spare.take(m.state)
	if err != nil {
		return nil, 0, err
	}
	cmd, syncR := sp.cmd, sp.syncR
	defer syncR.Close()
	_, err = sp.assign.Write([]byte(c.stateDir + "\n"))
	sp.assign.Close()
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, 0, fmt.Errorf("hand the container to %s: %w", monitorRole, err)
	}
	h, err := watchChild(cmd, func() {
		st, ok, _ := readExitStatus(c.stateDir)
		c.setExited(st, ok)
		m.containerExited(c)
	})
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, 0, err
	}
	defer func() {
		if retErr != nil {
			h.kill()
			<-h.exited
			h.release()
		}
	}()
	if err := writeJSONAtomic(filepath.Join(c.stateDir, statusFile), runState{MonitorPid: h.pid, MonitorStart: h.start}); err != nil {
		return nil, 0, err
	}

	// The monitor gets createTimeout whatever the caller's deadline: a
	// create cut short half-way would leave a container nobody tracks.
	// If the caller has gone when it is done, the container is there under
	// its name for kubelet to find and remove, as in containerd.
	_ = syncR.SetReadDeadline(time.Now().Add(createTimeout))
	var msg syncMessage
	if err := json.NewDecoder(syncR).Decode(&msg); err != nil {
		h.kill() // it may be stuck; the caller deletes what it made
		<-h.exited
		out, _ := os.ReadFile(filepath.Join(c.stateDir, monitorLogFile))
		return nil, 0, fmt.Errorf("%s reported nothing (%v): %s", monitorRole, err, strings.TrimSpace(string(out)))
	}
	if msg.Error != "" {
		<-h.exited
		return nil, 0, msg.syncError()
	}
	return h, msg.Pid, nil
}

// watchChild watches berthd's own child monitor and reaps it on exit;
// onExit runs before exited is closed.
func watchChild(cmd *exec.Cmd, onExit func()) (*monitorHandle, error) {
	pid := cmd.Process.Pid
	h, err := openMonitor(pid)
	if err != nil {
		return nil, err
	}
	go func() {
		waitReadable(h.pidfd)
		_ = cmd.Wait() // the child is a zombie now: this does not block
		onExit()
		close(h.exited)
	}()
	return h, nil
}

// adoptMonitor finds a monitor again after a berthd restart; it fails if
// the process is gone or the pid now belongs to another process.
func adoptMonitor(pid int, start uint64, onExit func()) (*monitorHandle, error) {
	h, err := openMonitor(pid)
	if err != nil {
		return nil, err
	}
	if h.start != start {
		h.pidfd.Close()
		return nil, fmt.Errorf("%s %d has exited (its pid was reused)", monitorRole, pid)
	}
	go func() {
		waitReadable(h.pidfd)
		onExit()
		close(h.exited)
	}()
	return h, nil
}

func openMonitor(pid int) (*monitorHandle, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd of %s %d: %w", monitorRole, pid, err)
	}
	start, err := processStartTime(pid)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking fd given to os.NewFile joins the netpoller.
	return &monitorHandle{pid: pid, start: start, pidfd: os.NewFile(uintptr(fd), "pidfd"), exited: make(chan struct{})}, nil
}

// waitReadable parks the goroutine until the pidfd is readable, which is
// when its process has exited.
func waitReadable(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	})
}

// kill sends SIGKILL through the pidfd: once the monitor is reaped its pid
// may name another process, its pidfd never does.
func (h *monitorHandle) kill() {
	_ = unix.PidfdSendSignal(int(h.pidfd.Fd()), unix.SIGKILL, nil, 0)
}

// release closes the pidfd of an exited monitor.
func (h *monitorHandle) release() { h.pidfd.Close() }

// alive says whether the monitor is still running.
func (h *monitorHandle) alive() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// askMonitor sends one request line to the monitor's control socket and
// returns its answer. The socket is reached through /proc/self/fd so that
// long state paths stay within the 108-byte limit of unix socket names.
func askMonitor(ctx context.Context, stateDir, req string) error {
	dir, err := os.OpenFile(stateDir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("monitor state: %w", err)
	}
	defer dir.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), monitorSocket))
	if err != nil {
		return fmt.Errorf("reach the container's monitor: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte(req + "\n")); err != nil {
		return fmt.Errorf("ask the container's monitor: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the container's monitor did not answer: %w", err)
	}
	line = strings.TrimSpace(line)
	if line != "ok" {
		return errors.New(strings.TrimPrefix(line, "error: "))
	}
	return nil
}
