package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berth-runtime/berth/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	// maxExecOutput caps each of an ExecSync's stdout and stderr.
	maxExecOutput = 16 << 20
	// maxExecResponse bounds both together: kubelet receives (and berthd
	// sends) CRI messages of at most 16 MiB, so the pair is trimmed to fit
	// with room for the rest of the response.
	maxExecResponse = 16<<20 - 64<<10
	// execNotFoundCode is the exit code of a command that does not exist,
	// as a shell and CRI-O report it.
	execNotFoundCode = 127
	// execDrain bounds reading output after the process exited (a
	// background child may hold the pipes).
	execDrain = time.Second
)

// truncatedNote ends output that was cut.
const truncatedNote = "\n[berth: output truncated: ExecSync returns at most 16 MiB]\n"

// ExecResult is what ExecSync returns.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// ExecSync runs cmd in the running container with the container's user,
// environment, working directory and capabilities, and returns its
// output and exit code. A timeout above zero kills the command when it
// passes and returns an error wrapping context.DeadlineExceeded.
func (m *Manager) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecResult, error) {
	c, rt, err := m.execTarget(id, cmd)
	if err != nil {
		return nil, err
	}
	proc := execProcess(c.process, cmd)

	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	defer outR.Close()
	defer errR.Close()
	var stdout, stderr cappedBuffer
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); stdout.readFrom(outR) }()
	go func() { defer copiers.Done(); stderr.readFrom(errR) }()

	p, err := rt.Exec(ctx, c.id, proc, oci.IO{Stdout: outW, Stderr: errW})
	outW.Close()
	errW.Close()
	if err != nil {
		copiers.Wait()
		if notFound(err, cmd[0]) {
			return &ExecResult{Stderr: []byte(err.Error() + "\n"), ExitCode: execNotFoundCode}, nil
		}
		return nil, fmt.Errorf("exec in container %s: %w", c.id, err)
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := p.Wait()
		done <- result{code, err}
	}()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var r result
	select {
	case r = <-done:
	case <-expired:
		_ = p.Signal(unix.SIGKILL)
		<-done
		return nil, fmt.Errorf("exec in container %s: command timed out after %s: %w", c.id, timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		_ = p.Signal(unix.SIGKILL)
		<-done
		return nil, fmt.Errorf("exec in container %s: %w", c.id, ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("exec in container %s: wait: %w", c.id, r.err)
	}
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(execDrain):
		outR.Close()
		errR.Close()
		<-drained
	}
	fitResponse(&stdout, &stderr)
	return &ExecResult{Stdout: stdout.bytes(), Stderr: stderr.bytes(), ExitCode: int32(r.code)}, nil
}

// execTarget is the running container an exec of cmd goes into and its
// runtime: ExecSync and the streaming Exec take this one way in.
func (m *Manager) execTarget(id string, cmd []string) (*Container, oci.Runtime, error) {
	if len(cmd) == 0 {
		return nil, nil, fmt.Errorf("exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	c, err := m.containerByID(id)
	if err != nil {
		return nil, nil, err
	}
	if st := c.snapshot(); st.State != stateRunning {
		return nil, nil, fmt.Errorf("container %s is %s, not running: %w", c.id, stateName(st.State), errdefs.ErrFailedPrecondition)
	}
	rt, ok := m.runtimes[c.handler]
	if !ok || c.process == nil {
		return nil, nil, fmt.Errorf("container %s cannot exec: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	return c, rt, nil
}

// execProcess is the container's process spec with cmd as its args and
// no terminal.
func execProcess(base *specs.Process, cmd []string) *specs.Process {
	p := *base
	p.Args = append([]string(nil), cmd...)
	p.Terminal = false
	p.ConsoleSize = nil
	p.Env = append([]string(nil), base.Env...)
	return &p
}

// notFound says the runtime could not find the command: an ENOENT or
// "not found" error that names it (not any missing file, such as the
// runtime's own state).
func notFound(err error, command string) bool {
	s := err.Error()
	if !strings.Contains(s, command) {
		return false
	}
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) ||
		strings.Contains(s, "executable file not found") || strings.Contains(s, "no such file or directory")
}

// cappedBuffer keeps the first maxExecOutput bytes written to it and
// notes the truncation.
type cappedBuffer struct {
	buf       []byte
	truncated bool
}

func (b *cappedBuffer) readFrom(r *os.File) {
	chunk := make([]byte, 32<<10)
	for {
		n, err := r.Read(chunk)
		if room := maxExecOutput - len(b.buf); n > 0 {
			if n > room {
				n, b.truncated = room, true
			}
			b.buf = append(b.buf, chunk[:n]...)
		}
		if err != nil {
			return
		}
	}
}

// fitResponse trims the larger output until both, with their notes, fit
// in one CRI response.
func fitResponse(a, b *cappedBuffer) {
	size := func(x *cappedBuffer) int {
		if x.truncated {
			return len(x.buf) + len(truncatedNote)
		}
		return len(x.buf)
	}
	for over := size(a) + size(b) - maxExecResponse; over > 0; over = size(a) + size(b) - maxExecResponse {
		big := a
		if len(b.buf) > len(a.buf) {
			big = b
		}
		cut := over
		if !big.truncated {
			cut += len(truncatedNote)
		}
		if cut > len(big.buf) {
			cut = len(big.buf)
		}
		big.buf, big.truncated = big.buf[:len(big.buf)-cut], true
	}
}

func (b *cappedBuffer) bytes() []byte {
	if b.truncated {
		return append(b.buf, truncatedNote...)
	}
	return b.buf
}
