package sandbox

// The streaming exec (CRI Exec, served by cri's streaming server): the
// same way into the container as ExecSync (execTarget, execProcess, the
// runtime's Exec), with the client's streams instead of buffers.
//
// Without a terminal the process gets a pipe per stream the client asked
// for (/dev/null for the others). With one, the runtime sends the pty
// master over a console socket (an abstract unix socket, so no file to
// leave behind), which carries stdin and output and takes resizes.
//
// The process lives as long as the client: when ctx ends (the client's
// connection closed) the process and every process it started are
// stopped, then killed (killTree), and the runtime's side reaped, before
// Exec returns.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/berth-runtime/berth/oci"
	"golang.org/x/sys/unix"
)

// TermSize is a terminal's size in characters.
type TermSize struct {
	Width, Height uint16
}

// StreamIO are a streaming client's streams; a nil one was not asked for.
type StreamIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.WriteCloser
	TTY            bool
	// Resize delivers the client's terminal sizes (TTY only).
	Resize <-chan TermSize
}

// ExitError is a streamed command's non-zero exit status (128+signal when
// a signal killed it).
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("command exited with status %d", e.Code) }

// consoleTimeout bounds the wait for the runtime's pty master.
const consoleTimeout = 10 * time.Second

// Exec runs cmd in the running container id as ExecSync does, connected to
// sio, until it exits (nil for status 0, an *ExitError otherwise) or ctx
// ends (its processes are killed).
func (m *Manager) Exec(ctx context.Context, id string, cmd []string, sio StreamIO) (retErr error) {
	c, rt, err := m.execTarget(id, cmd)
	if err != nil {
		return err
	}
	proc := execProcess(c.process, cmd)
	var (
		pio   oci.IO
		child []*os.File // the process's ends, closed once it has them
		ours  []*os.File // our ends, closed when Exec returns
		stdin *os.File   // where the client's stdin goes
		outs  []streamCopy
	)
	defer func() {
		for _, f := range append(child, ours...) {
			f.Close()
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			ours = append(ours, r, w)
		}
		return r, w, err
	}
	var console net.Listener
	if sio.TTY {
		proc.Terminal = true
		name, err := randomName("@berth-exec-")
		if err != nil {
			return err
		}
		if console, err = net.Listen("unix", name); err != nil {
			return fmt.Errorf("exec console socket: %w", err)
		}
		defer console.Close()
		pio.ConsoleSocket = name
	} else {
		if sio.Stdin != nil {
			r, w, err := pipe()
			if err != nil {
				return err
			}
			pio.Stdin, stdin, child = r, w, append(child, r)
		}
		for _, s := range []struct {
			to   io.WriteCloser
			into **os.File
		}{{sio.Stdout, &pio.Stdout}, {sio.Stderr, &pio.Stderr}} {
			if s.to == nil {
				continue
			}
			r, w, err := pipe()
			if err != nil {
				return err
			}
			*s.into, child = w, append(child, w)
			outs = append(outs, streamCopy{from: r, to: s.to})
		}
	}
	var master *os.File
	consoleCh := make(chan received, 1)
	if console != nil {
		go func() {
			f, err := acceptConsole(console)
			consoleCh <- received{f, err}
		}()
	}

	p, err := rt.Exec(ctx, c.id, proc, pio)
	for _, f := range child {
		f.Close()
	}
	child = nil
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.id, err)
	}
	done := make(chan int, 1)
	go func() {
		code, err := p.Wait()
		if err != nil {
			code = -1
		}
		done <- code
	}()
	if console != nil {
		select {
		case got := <-consoleCh:
			if got.err != nil {
				killTree(p)
				<-done
				return fmt.Errorf("exec in container %s: console: %w", c.id, got.err)
			}
			master = got.f
		case <-time.After(consoleTimeout):
			killTree(p)
			<-done
			return fmt.Errorf("exec in container %s: the runtime sent no console", c.id)
		case <-ctx.Done():
			killTree(p)
			<-done
			return fmt.Errorf("exec in container %s: %w", c.id, ctx.Err())
		}
		ours = append(ours, master)
		stdin = master
		if sio.Stdout != nil {
			outs = append(outs, streamCopy{from: master, to: sio.Stdout})
		}
		go resizeLoop(ctx, master, sio.Resize)
	}
	if stdin != nil && sio.Stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, sio.Stdin)
			if !sio.TTY {
				// The command sees end of file; a terminal has no such
				// thing (the client's ^D is a byte on it).
				stdin.Close()
			}
		}()
	}
	var copiers sync.WaitGroup
	for _, o := range outs {
		copiers.Add(1)
		go func() { defer copiers.Done(); _, _ = io.Copy(o.to, o.from) }()
	}

	var code int
	select {
	case code = <-done:
	case <-ctx.Done():
		killTree(p)
		<-done
		return fmt.Errorf("exec in container %s: client went away: %w", c.id, ctx.Err())
	}
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(execDrain):
		for _, o := range outs {
			o.from.Close()
		}
		<-drained
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// streamCopy is one output stream of an exec.
type streamCopy struct {
	from *os.File
	to   io.WriteCloser
}

// received is a file (or the error) from a console socket.
type received struct {
	f   *os.File
	err error
}

// resizeLoop applies the client's terminal sizes to the pty until ctx
// ends or the client stops sending them.
func resizeLoop(ctx context.Context, master *os.File, sizes <-chan TermSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-sizes:
			if !ok {
				return
			}
			_ = setWinsize(master, sz)
		}
	}
}

// setWinsize sets a pty's window size.
func setWinsize(f *os.File, sz TermSize) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
	})
	return errors.Join(err, serr)
}

// randomName is prefix with 16 random hex digits.
func randomName(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// CheckExec says whether cmd can be exec'd in container id now: what
// Exec checks first, for the CRI call that hands out the URL.
func (m *Manager) CheckExec(id string, cmd []string) error {
	_, _, err := m.execTarget(id, cmd)
	return err
}
