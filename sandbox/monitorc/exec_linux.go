package monitorc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Handoff is what the C monitor takes over from the Go one. Nil files are
// absent.
type Handoff struct {
	// Dir is the container's state directory, the monitor's working
	// directory.
	Dir string
	// Pid is the container's process, a child of the monitor.
	Pid                     int
	Stdout, Stderr, Console *os.File
	Stdin                   *os.File // the write end, kept open
	Log                     *os.File // the open CRI log, or nil for none
	LogDir                  string   // the pod's log directory
	LogPath                 string   // the log path beneath LogDir
	Control                 *os.File // m.sock, listening
	OOMFile                 string   // "" when the cgroup is not known
	Drain                   time.Duration
}

// Exec replaces the process with the C monitor. It returns only if that
// failed, with the files as they were, so the Go monitor can carry on.
func Exec(h Handoff) error {
	if !Available {
		return errors.New("this berthd is built without cgo")
	}
	if h.Pid <= 0 {
		return fmt.Errorf("no container pid")
	}
	spec := []string{"pid=" + strconv.Itoa(h.Pid), "drain_ms=" + strconv.FormatInt(h.Drain.Milliseconds(), 10)}
	var passed []int
	for _, f := range []struct {
		key  string
		file *os.File
	}{{"stdout", h.Stdout}, {"stderr", h.Stderr}, {"console", h.Console}, {"stdin", h.Stdin}, {"log", h.Log}, {"control", h.Control}} {
		if f.file == nil {
			continue
		}
		fd, err := rawFd(f.file)
		if err != nil {
			return fmt.Errorf("pass %s: %w", f.key, err)
		}
		spec = append(spec, f.key+"="+strconv.Itoa(fd))
		passed = append(passed, fd)
	}
	env := []string{"_BERTH_MONITOR_C=" + strings.Join(spec, ",")}
	if h.LogPath != "" {
		env = append(env, "_BERTH_MONITOR_LOG="+h.LogPath, "_BERTH_MONITOR_LOG_DIR="+h.LogDir)
	}
	if h.OOMFile != "" {
		env = append(env, "_BERTH_MONITOR_OOM="+h.OOMFile)
	}

	// The signals the C monitor handles stay blocked across the exec, so
	// none arriving in between kills it or is lost (a blocked signal
	// stays pending through execve).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var block, old unix.Sigset_t
	for _, s := range []unix.Signal{unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGHUP} {
		block.Val[(s-1)/64] |= 1 << ((uint(s) - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &block, &old); err != nil {
		return fmt.Errorf("block signals: %w", err)
	}
	for _, fd := range passed {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			restore(passed, &old)
			return fmt.Errorf("pass fd %d: %w", fd, err)
		}
	}
	err := syscall.Exec("/proc/self/exe", []string{Role, h.Dir}, env)
	restore(passed, &old)
	return fmt.Errorf("exec %s: %w", Role, err)
}

func restore(fds []int, old *unix.Sigset_t) {
	for _, fd := range fds {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, old, nil)
}

// rawFd is f's descriptor. Unlike f.Fd it leaves a pipe in non-blocking
// mode, which the Go monitor relies on if the exec fails: its copiers'
// reads must end when the drain times out and it closes the pipes.
func rawFd(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil
}
