package sandbox

// A stop signal that is never lost.
//
// StartContainer returns as soon as the runtime has released the
// container's init, before the program it execs has installed its signal
// handlers. Two things can then swallow a stop signal sent at once:
//
//   - Before the execve, the process is still the runtime's init (Berth's
//     berth-init or runc init, Go programs whose runtime catches every
//     signal): a SIGTERM then ends the init (exit 2) and the program never
//     sees it.
//   - After the execve, a PID namespace's init gets from outside only the
//     signals it has a handler for: the kernel drops the rest (SIGKILL
//     aside), so a SIGTERM sent before the program's handler exists is
//     lost, and only the SIGKILL at the deadline ends the container.
//
// So before sending a stop signal other than SIGKILL, stopLocked waits,
// polling /proc/<pid>, until the init runs the program (its executable is
// no longer the one StartContainer saw) and, if it is its namespace's init,
// until /proc/<pid>/status SigCgt holds the signal; or until the stop's
// deadline, where the SIGKILL follows as always. A process that never
// installs a handler is thus killed at the deadline, as on containerd and
// CRI-O; one that does gets its signal however soon the stop follows the
// start. inotify and pidfds give no event for either change, hence the
// poll: every millisecond at first, backing off to 5 ms, then 20 ms after
// the first second, so a program that never installs a handler costs one
// small read every 20 ms for the rest of its grace.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fileID identifies an executable: the device and inode behind
// /proc/<pid>/exe. The zero value means unknown.
type fileID struct{ dev, ino uint64 }

// exeOf is the identity of pid's executable.
func exeOf(pid int) fileID {
	var st unix.Stat_t
	if pid <= 0 || unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st) != nil {
		return fileID{}
	}
	return fileID{dev: st.Dev, ino: st.Ino}
}

// signalReady reports whether sig sent to pid now reaches the program:
// pid no longer runs preExec (the runtime's init, zero when unknown), and
// if pid is its PID namespace's init, it catches sig.
func signalReady(pid int, preExec fileID, sig syscall.Signal) (bool, error) {
	if preExec != (fileID{}) && exeOf(pid) == preExec {
		return false, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err
	}
	nsInit, caught := parseSignalStatus(b, sig)
	return !nsInit || caught, nil
}

// parseSignalStatus reads from a /proc/<pid>/status whether the process
// is the init of a PID namespace below the reader's (NSpid ends in 1 after
// another field) and whether SigCgt holds sig.
func parseSignalStatus(status []byte, sig syscall.Signal) (nsInit, caught bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte("NSpid:")); ok {
			f := bytes.Fields(v)
			nsInit = len(f) > 1 && string(f[len(f)-1]) == "1"
		} else if v, ok := bytes.CutPrefix(line, []byte("SigCgt:")); ok {
			mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
			caught = err == nil && sig > 0 && sig <= 64 && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return nsInit, caught
}

// awaitSignalReady waits until sig sent to pid reaches the program (see
// the file comment). It returns false when deadline fires, ctx ends or
// exited closes first; the caller then kills or returns.
func awaitSignalReady(ctx context.Context, pid int, preExec fileID, sig syscall.Signal, exited <-chan struct{}, deadline <-chan time.Time) bool {
	if sig == unix.SIGKILL || pid <= 0 {
		return true
	}
	start := time.Now()
	interval := time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-exited:
			return false
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		ready, err := signalReady(pid, preExec, sig)
		if err != nil || ready {
			// A process gone from /proc is reaped or about to be: let the
			// signal (an ESRCH at worst) and the wait for its exit say so.
			return true
		}
		if time.Since(start) > time.Second {
			interval = 20 * time.Millisecond
		} else {
			interval = min(2*interval, 5*time.Millisecond)
		}
		t.Reset(interval)
	}
}
