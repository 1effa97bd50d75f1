package oci

// External OCI runtimes (runc, crun) driven through the OCI command line:
//
//	<path> --root <root> [--systemd-cgroup] --log <file> --log-format json <command> ...
//
// create leaves the container's init as an orphan (the runtime process
// exits), reparented to the caller, which is a subreaper (the monitor).
// exec runs in the foreground: the runtime process's exit status is the
// program's (128+signal when killed). Errors come from the --log file, so
// they are not mistaken for the container's own output.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

type external struct {
	name    string
	path    string
	root    string // the runtime's --root
	tmp     string // pid files, logs and process.json of calls in flight
	systemd bool
	log     *zap.Logger

	featuresOnce sync.Once
	features     Features
}

func newExternal(name string, h Handler, opts Options) (*external, error) {
	if h.Path == "" {
		return nil, fmt.Errorf("type oci needs a path: %w", errdefs.ErrInvalidArgument)
	}
	r := &external{
		name:    name,
		path:    h.Path,
		root:    h.Root,
		tmp:     filepath.Join(opts.StateDir, handlerDir(name)+".tmp"),
		systemd: opts.CgroupDriver == "systemd",
		log:     opts.Log.With(zap.String("runtime", name)),
	}
	if r.root == "" {
		r.root = filepath.Join(opts.StateDir, handlerDir(name))
	}
	for _, d := range []string{r.root, r.tmp} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// call is one invocation of the runtime binary with a scratch directory.
type call struct {
	cmd *exec.Cmd
	dir string
}

func (r *external) command(ctx context.Context, args ...string) (*call, error) {
	dir, err := os.MkdirTemp(r.tmp, "call-")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	global := []string{"--root", r.root, "--log", filepath.Join(dir, "log.json"), "--log-format", "json"}
	if r.systemd {
		global = append(global, "--systemd-cgroup")
	}
	cmd := exec.CommandContext(ctx, r.path, append(global, args...)...)
	cmd.WaitDelay = time.Second
	return &call{cmd: cmd, dir: dir}, nil
}

func (c *call) file(name string) string { return filepath.Join(c.dir, name) }
func (c *call) cleanup()                { os.RemoveAll(c.dir) }

// failure turns a failed run into an error carrying the runtime's own
// message (its log's error lines, else its output) with an errdefs class.
func (c *call) failure(what string, runErr error, out []byte) error {
	msg := strings.TrimSpace(string(out))
	if b, err := os.ReadFile(c.file("log.json")); err == nil {
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var l struct{ Level, Msg string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Level == "error" || l.Level == "fatal") {
				lines = append(lines, l.Msg)
			}
		}
		if len(lines) > 0 {
			msg = strings.Join(lines, "; ")
		}
	}
	if msg == "" {
		msg = runErr.Error()
	}
	err := fmt.Errorf("%s: %s", what, msg)
	switch {
	case strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") && strings.Contains(msg, "container"),
		strings.Contains(msg, "/status`: No such file or directory"): // crun
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case strings.Contains(msg, "already exists"):
		return fmt.Errorf("%w: %w", err, errdefs.ErrAlreadyExists)
	case strings.Contains(msg, "not running") || strings.Contains(msg, "has stopped") ||
		strings.Contains(msg, "cannot start") || strings.Contains(msg, "cannot delete") ||
		strings.Contains(msg, "is not stopped") || strings.Contains(msg, "cannot exec"):
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return err
}

// run runs a short command and returns its stdout.
func (r *external) run(ctx context.Context, what string, args ...string) ([]byte, error) {
	c, err := r.command(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer c.cleanup()
	var stdout, stderr bytes.Buffer
	c.cmd.Stdout, c.cmd.Stderr = &stdout, &stderr
	if err := c.cmd.Run(); err != nil {
		return nil, c.failure(what, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

func (r *external) Create(ctx context.Context, id, bundle string, io IO) (int, error) {
	if err := validID(id); err != nil {
		return 0, err
	}
	if _, err := ReadSpec(bundle); err != nil {
		return 0, err
	}
	c, err := r.command(ctx)
	if err != nil {
		return 0, err
	}
	defer c.cleanup()
	args := []string{"create", "--bundle", bundle, "--pid-file", c.file("pid")}
	if io.ConsoleSocket != "" {
		args = append(args, "--console-socket", io.ConsoleSocket)
	}
	c.cmd.Args = append(c.cmd.Args, append(args, id)...)
	io.attach(c.cmd)
	if err := c.cmd.Run(); err != nil {
		return 0, c.failure("create container "+id, err, nil)
	}
	pid, err := readPidFile(c.file("pid"))
	if err != nil {
		return 0, fmt.Errorf("create container %s: %w", id, err)
	}
	return pid, nil
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, nil
}

func (r *external) Start(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	_, err := r.run(ctx, "start container "+id, "start", id)
	return err
}

func (r *external) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	if err := validID(id); err != nil {
		return err
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, "kill container "+id, append(args, id, strconv.Itoa(int(sig)))...)
	if err != nil && strings.Contains(err.Error(), "not running") {
		// As the builtin runtime (and containerd) say it.
		return fmt.Errorf("kill container %s: process already finished: %w", id, errdefs.ErrNotFound)
	}
	return err
}

func (r *external) State(ctx context.Context, id string) (State, error) {
	if err := validID(id); err != nil {
		return State{}, err
	}
	out, err := r.run(ctx, "state of container "+id, "state", id)
	if err != nil {
		return State{}, err
	}
	var st specs.State
	if err := json.Unmarshal(out, &st); err != nil {
		return State{}, fmt.Errorf("state of container %s: decode %q: %w", id, out, err)
	}
	s := State{ID: id, Pid: st.Pid, Bundle: st.Bundle, Status: StatusStopped}
	switch st.Status {
	case "created", "creating":
		s.Status = StatusCreated
	case "running", "paused":
		s.Status = StatusRunning
	}
	return s, nil
}

func (r *external) Delete(ctx context.Context, id string, force bool) error {
	if err := validID(id); err != nil {
		return err
	}
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, "delete container "+id, append(args, id)...)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func (r *external) Exec(ctx context.Context, id string, proc *specs.Process, io IO) (_ Process, retErr error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if proc == nil || len(proc.Args) == 0 {
		return nil, fmt.Errorf("exec in %s: no args: %w", id, errdefs.ErrInvalidArgument)
	}
	// The process outlives this call, so not ctx.
	c, err := r.command(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			c.cleanup()
		}
	}()
	if proc.Cwd == "" {
		// runc refuses an empty cwd; the builtin runtime uses "/".
		p := *proc
		p.Cwd = "/"
		proc = &p
	}
	b, err := json.Marshal(proc)
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	if err := os.WriteFile(c.file("process.json"), b, 0o600); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	args := []string{"exec", "--process", c.file("process.json"), "--pid-file", c.file("pid")}
	if proc.Terminal {
		if io.ConsoleSocket == "" {
			return nil, fmt.Errorf("exec in %s: terminal without a console socket: %w", id, errdefs.ErrInvalidArgument)
		}
		// A foreground runtime exec cannot use a console socket (only a
		// detached one can, and then nobody gets the exit status). So the
		// runtime allocates the program's pty and relays it to a pty of
		// ours, whose master goes to the caller's console socket; the
		// runtime also passes our pty's window size changes on.
		sock, err := dialConsole(io.ConsoleSocket)
		if err != nil {
			return nil, fmt.Errorf("exec in %s: %w", id, err)
		}
		slave, err := openConsole(sock, false)
		if err != nil {
			return nil, fmt.Errorf("exec in %s: %w", id, err)
		}
		defer slave.Close()
		args = append(args, "--tty")
		io = IO{Stdin: slave, Stdout: slave, Stderr: slave}
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	c.cmd.Args = append(c.cmd.Args, append(args, id)...)
	io.attach(c.cmd)
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	p := &externalProcess{call: c, childFd: -1, done: make(chan struct{})}
	go func() {
		p.waitErr = c.cmd.Wait()
		close(p.done)
	}()
	// The pid file appears once the program is set up to run; if the
	// runtime exits without one, the exec failed.
	for delay := 100 * time.Microsecond; ; delay = min(delay*2, 20*time.Millisecond) {
		if pid, err := readPidFile(c.file("pid")); err == nil {
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				p.childFd = fd
			}
			return p, nil
		}
		select {
		case <-p.done:
			if _, err := os.Stat(c.file("pid")); err == nil {
				return p, nil
			}
			return nil, c.failure("exec in "+id, p.waitErr, nil)
		case <-ctx.Done():
			c.cmd.Process.Kill()
			<-p.done
			return nil, fmt.Errorf("exec in %s: %w", id, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// externalProcess is a foreground "runtime exec".
type externalProcess struct {
	call *call
	// fdMu guards childFd, which Wait closes while Signal may use it.
	fdMu    sync.Mutex
	childFd int // pidfd of the program itself, -1 if unknown
	done    chan struct{}
	waitErr error
	once    sync.Once
	code    int
	err     error
}

func (p *externalProcess) Pid() int { return p.call.cmd.Process.Pid }

func (p *externalProcess) Wait() (int, error) {
	<-p.done
	p.once.Do(func() {
		defer p.call.cleanup()
		p.fdMu.Lock()
		if p.childFd >= 0 {
			unix.Close(p.childFd)
			p.childFd = -1
		}
		p.fdMu.Unlock()
		st := p.call.cmd.ProcessState
		if st == nil {
			p.code, p.err = -1, p.waitErr
			return
		}
		ws := st.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		} else {
			p.code = ws.ExitStatus()
		}
	})
	return p.code, p.err
}

// Signal signals the program itself: the runtime would forward most
// signals but cannot forward SIGKILL.
func (p *externalProcess) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
	default:
	}
	p.fdMu.Lock()
	if p.childFd >= 0 {
		if err := unix.PidfdSendSignal(p.childFd, sig, nil, 0); err == nil || !errors.Is(err, unix.ESRCH) {
			p.fdMu.Unlock()
			return err
		}
	}
	p.fdMu.Unlock()
	return p.call.cmd.Process.Signal(sig)
}
