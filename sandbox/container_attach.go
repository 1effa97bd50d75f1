package sandbox

// Attach: a client on the container's own stdio, which its monitor owns.
// berthd keeps nothing per container for it: each attach hands the
// monitor one socket per output stream over m.sock ("attach", see
// monitorc/monitor.c) and gets the container's stdin (pipe or pty master)
// back, so the goroutines here live only as long as the attach.
//
// Output flows from the moment of attach. The attach ends when the client
// goes away (ctx) or the container's output ends (it exited); the
// container keeps running when the client detaches. With stdin_once, the
// container's stdin is closed when the first attach's stdin ends.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Attach connects sio to the running container id's stdio.
func (m *Manager) Attach(ctx context.Context, id string, sio StreamIO) (retErr error) {
	c, err := m.CheckAttach(id, sio.Stdin != nil, sio.TTY)
	if err != nil {
		return err
	}
	// One socket pair per output stream; ours read, the monitor's write.
	var mine, theirs []*os.File
	defer func() {
		for _, f := range append(mine, theirs...) {
			f.Close()
		}
	}()
	outs := []io.WriteCloser{sio.Stdout}
	if !sio.TTY {
		outs = append(outs, sio.Stderr)
	}
	for range outs {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("attach to container %s: %w", c.id, err)
		}
		_ = unix.SetNonblock(fds[0], true)
		// Room for bursts: the monitor drops what does not fit.
		_ = unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
		mine = append(mine, os.NewFile(uintptr(fds[0]), "attach"))
		theirs = append(theirs, os.NewFile(uintptr(fds[1]), "attach"))
	}
	stdin, err := askMonitorAttach(ctx, c.stateDir, theirs)
	if err != nil {
		return fmt.Errorf("attach to container %s: %w", c.id, err)
	}
	for _, f := range theirs {
		f.Close()
	}
	theirs = nil
	if stdin != nil && sio.Stdin == nil && !sio.TTY {
		stdin.Close()
		stdin = nil
	}
	if stdin != nil {
		defer stdin.Close()
	}
	stdinOnce := c.config.GetStdinOnce() && !sio.TTY
	var closeOnce sync.Once
	closeStdin := func() {
		closeOnce.Do(func() {
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			if err := askMonitor(cctx, c.stateDir, "close-stdin"); err != nil {
				m.log.Warn("close the container's stdin", zap.String("container", c.id), zap.Error(err))
			}
		})
	}
	if stdin != nil && sio.TTY {
		// The pty master: its size is the container's terminal's.
		go resizeLoop(ctx, stdin, sio.Resize)
	}
	if stdin != nil && sio.Stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, sio.Stdin)
			if stdinOnce {
				// Our copy of the pipe first, or it would keep it open.
				stdin.Close()
				closeStdin()
			}
		}()
	}
	if stdinOnce && sio.Stdin != nil {
		defer closeStdin()
	}

	var copiers sync.WaitGroup
	for i, f := range mine {
		to := outs[i]
		copiers.Add(1)
		go func() {
			defer copiers.Done()
			if to == nil {
				_, _ = io.Copy(io.Discard, f)
				return
			}
			_, _ = io.Copy(to, f)
		}()
	}
	ended := make(chan struct{})
	go func() { copiers.Wait(); close(ended) }()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		// The client went away: hang up on the monitor, leave the
		// container running.
		for _, f := range mine {
			f.Close()
		}
		<-ended
		mine = nil
		return nil
	}
}

// CheckAttach says whether container id can be attached to now, with the
// streams asked for, and returns it.
func (m *Manager) CheckAttach(id string, stdin, tty bool) (*Container, error) {
	c, err := m.containerByID(id)
	if err != nil {
		return nil, err
	}
	if st := c.snapshot(); st.State != stateRunning {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.id, stateName(st.State), errdefs.ErrFailedPrecondition)
	}
	if stdin && !c.config.GetStdin() {
		return nil, fmt.Errorf("container %s was not created with stdin: %w", c.id, errdefs.ErrInvalidArgument)
	}
	if tty != c.config.GetTty() {
		return nil, fmt.Errorf("attach to container %s: tty is %v, the container's is %v: %w", c.id, tty, c.config.GetTty(), errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// askMonitorAttach sends the monitor the "attach" request with the output
// sockets and returns the container's stdin it answers with (nil: none).
func askMonitorAttach(ctx context.Context, stateDir string, outs []*os.File) (*os.File, error) {
	dir, err := os.OpenFile(stateDir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("monitor state: %w", err)
	}
	defer dir.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), monitorSocket))
	if err != nil {
		return nil, fmt.Errorf("reach the container's monitor: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	uc := conn.(*net.UnixConn)
	fds := make([]int, len(outs))
	for i, f := range outs {
		fds[i] = int(f.Fd())
	}
	if _, _, err := uc.WriteMsgUnix([]byte("attach\n"), unix.UnixRights(fds...), nil); err != nil {
		return nil, fmt.Errorf("ask the container's monitor: %w", err)
	}
	buf := make([]byte, 8192)
	oob := make([]byte, unix.CmsgSpace(4))
	var line []byte
	var stdin *os.File
	for !strings.Contains(string(line), "\n") {
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
				if got, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(got) > 0 {
					unix.CloseOnExec(got[0])
					_ = unix.SetNonblock(got[0], true)
					stdin = os.NewFile(uintptr(got[0]), "stdin")
				}
			}
		}
		line = append(line, buf[:n]...)
		if err != nil {
			if stdin != nil {
				stdin.Close()
			}
			return nil, fmt.Errorf("the container's monitor did not answer: %w", err)
		}
	}
	if s := strings.TrimSpace(string(line)); s != "ok" {
		if stdin != nil {
			stdin.Close()
		}
		return nil, errors.New(strings.TrimPrefix(s, "error: "))
	}
	return stdin, nil
}
