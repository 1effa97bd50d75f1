package oci

// Exec in the builtin runtime: the berthd binary runs as "berth-exec" with
// the container's namespace files as fds; the C constructor of oci/nsenter
// joins them (and the cgroup) before the Go runtime starts, forking once
// into the PID namespace and keeping a signal-forwarding proxy as the
// direct child, whose exit status is the exec'd program's. ExecMain then
// sets up the process from the spec and execs it.
//
// The caller learns whether the exec happened over the sync pipe (fd 3):
// EOF means execve succeeded (the pipe is close-on-exec), a message is the
// error. A missing executable is an error from Exec, as containerd's
// ExecSync reports runc's "exec failed: exec: \"x\": executable file not
// found in $PATH", not an exit code.

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const execSyncFd = 3

// execConfig is what ExecMain gets in _BERTH_EXEC.
type execConfig struct {
	Process   *specs.Process `json:"process"`
	ConsoleFd int            `json:"console_fd,omitempty"`
	// SeccompFd is the container's seccomp.bpf, open (0: no filter).
	SeccompFd    int  `json:"seccomp_fd,omitempty"`
	SeccompFlags uint `json:"seccomp_flags,omitempty"`
}

// execNamespaces are joined in this order: user first, as it owns the
// others; mount last (nsenter.c defers it anyway).
var execNamespaces = []struct {
	name string
	code byte
}{
	{"user", 'U'}, {"cgroup", 'c'}, {"ipc", 'i'}, {"uts", 'u'}, {"net", 'n'}, {"pid", 'p'}, {"mnt", 'm'},
}

func (r *builtin) Exec(ctx context.Context, id string, proc *specs.Process, pio IO) (_ Process, retErr error) {
	if proc == nil || len(proc.Args) == 0 {
		return nil, fmt.Errorf("exec in %s: no args: %w", id, errdefs.ErrInvalidArgument)
	}
	s, err := r.load(id)
	if err != nil {
		return nil, err
	}
	bin, err := sealedCopy(r.binary)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	files = append(files, syncR, syncW)
	extra := []*os.File{syncW}

	// Open the namespaces, then check the PID still is the init: the files
	// opened belong to it only if it did not exit meanwhile.
	var plan []string
	for _, ns := range execNamespaces {
		f, err := os.Open("/proc/" + strconv.Itoa(s.Pid) + "/ns/" + ns.name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("exec in %s: container is not running: %w", id, errdefs.ErrFailedPrecondition)
			}
			return nil, fmt.Errorf("exec in %s: open %s namespace: %w", id, ns.name, err)
		}
		files = append(files, f)
		if ns.code != 'm' && sameNamespace(f, ns.name) {
			continue
		}
		plan = append(plan, fmt.Sprintf("%c:%d", ns.code, 3+len(extra)))
		extra = append(extra, f)
	}
	if !s.alive() {
		return nil, fmt.Errorf("exec in %s: container is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	cfg := execConfig{Process: proc}
	if s.Seccomp != nil {
		// The container's filter, compiled at Create: an exec is
		// confined as its init is, or does not run.
		f, err := os.Open(filepath.Join(r.dir(id), seccompFile))
		if err != nil {
			return nil, fmt.Errorf("exec in %s: seccomp filter: %w", id, err)
		}
		files = append(files, f)
		cfg.SeccompFd, cfg.SeccompFlags = 3+len(extra), s.Seccomp.Flags
		extra = append(extra, f)
	}
	if proc.Terminal {
		if pio.ConsoleSocket == "" {
			return nil, fmt.Errorf("exec in %s: terminal without a console socket: %w", id, errdefs.ErrInvalidArgument)
		}
		console, err := dialConsole(pio.ConsoleSocket)
		if err != nil {
			return nil, fmt.Errorf("exec in %s: %w", id, err)
		}
		files = append(files, console)
		cfg.ConsoleFd = 3 + len(extra)
		extra = append(extra, console)
	}
	env := []string{
		"_BERTH_NSENTER=" + strings.Join(plan, ","),
		"_BERTH_NSENTER_CGROUP=" + strings.Join(s.Cgroup.procsFiles(), "\n"),
	}
	if fast, ok := fastExecConfig(proc, cfg.SeccompFd, cfg.SeccompFlags); ok {
		env = append(env, "_BERTH_EXEC_C="+fast)
	} else {
		cfgJSON, err := json.Marshal(cfg)
		if err != nil {
			return nil, fmt.Errorf("exec in %s: %w", id, err)
		}
		env = append(env, "_BERTH_EXEC="+string(cfgJSON))
	}
	cmd := &exec.Cmd{
		Path:       execPath(bin),
		Args:       []string{"berth-exec"},
		Env:        env,
		Dir:        "/",
		ExtraFiles: extra,
	}
	pio.attach(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec in %s: start: %w", id, err)
	}
	// Only the child may hold the write end now, so EOF means it exec'd.
	for _, f := range files[1:] {
		f.Close()
	}
	files = files[:1] // syncR
	defer context.AfterFunc(ctx, func() { cmd.Process.Kill() })()
	ep := &execProcess{cmd: cmd, childFd: -1}
	rd := bufio.NewReader(syncR)
	msg, err := readMsg(rd)
	if msg.Type == "pid" {
		// Opened before the child can have exited: it waits on this pipe
		// to close (execve) and the proxy reaps it only after that.
		if fd, err := unix.PidfdOpen(msg.Pid, 0); err == nil {
			ep.childFd = fd
		}
		msg, err = readMsg(rd)
	}
	if msg.Type == "error" || (err != nil && !errors.Is(err, io.EOF)) {
		ep.close()
		cmd.Process.Kill()
		cmd.Wait()
		if msg.Type == "error" {
			return nil, fmt.Errorf("exec in %s: %s", id, msg.Error)
		}
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	if ctx.Err() != nil {
		ep.close()
		cmd.Wait()
		return nil, fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
	return ep, nil
}

// sameNamespace reports whether the namespace file f is the host's (a
// container sharing it), which the exec need not join. The caller is not
// locked to a thread, and every thread it may run on, or fork the exec
// from, is in the host's namespaces: a thread moved into a pod's is locked
// and ends with its goroutine. So it asks the calling thread, not the
// process: /proc/self names the main thread, which cannot end, and which
// Go parks for good, still in the pod's namespaces, if such a goroutine
// ran on it.
func sameNamespace(f *os.File, name string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat("/proc/thread-self/ns/"+name, &b) != nil {
		return false
	}
	return a.Ino == b.Ino && a.Dev == b.Dev
}

// execProcess is a process started by Exec; its direct child is the
// nsenter proxy (or the process itself when no PID namespace was joined).
type execProcess struct {
	cmd  *exec.Cmd
	once sync.Once
	code int
	err  error

	// fdMu guards childFd: Wait closes it while a Signal (an ExecSync
	// timeout) may be using it, and a closed number may already name
	// another file, even another process's pidfd.
	fdMu sync.Mutex
	// childFd is a pidfd of the process behind the proxy (-1 without one).
	childFd int
}

func (p *execProcess) close() {
	p.fdMu.Lock()
	defer p.fdMu.Unlock()
	if p.childFd >= 0 {
		unix.Close(p.childFd)
		p.childFd = -1
	}
}

func (p *execProcess) Pid() int { return p.cmd.Process.Pid }

func (p *execProcess) Wait() (int, error) {
	p.once.Do(func() {
		err := p.cmd.Wait()
		p.close()
		st := p.cmd.ProcessState
		if st == nil {
			p.code, p.err = -1, err
			return
		}
		ws := st.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			p.code = 128 + int(ws.Signal())
		default:
			p.code = ws.ExitStatus()
		}
	})
	return p.code, p.err
}

// Signal signals the program itself (the proxy passes its exit on), so
// even SIGKILL leaves no orphan behind.
func (p *execProcess) Signal(sig syscall.Signal) error {
	p.fdMu.Lock()
	if fd := p.childFd; fd >= 0 {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err == nil || !errors.Is(err, unix.ESRCH) {
			p.fdMu.Unlock()
			return err
		}
	}
	p.fdMu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
		}
		return err
	}
	return nil
}

// ExecMain is the "berth-exec" role: a process joining a running container
// before it execs the requested program. oci/nsenter has already moved it
// into the container's namespaces and cgroup. It never returns.
func ExecMain() {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	sync := os.NewFile(execSyncFd, "sync")
	err := execContainer()
	var nf *exec.Error
	report(sync, syncMsg{Type: "error", Error: err.Error(), NotFound: errors.As(err, &nf)})
	os.Exit(127)
}

func execContainer() error {
	var cfg execConfig
	if err := json.Unmarshal([]byte(os.Getenv("_BERTH_EXEC")), &cfg); err != nil {
		return fmt.Errorf("read exec config: %w", err)
	}
	os.Unsetenv("_BERTH_EXEC")
	if cfg.Process == nil || len(cfg.Process.Args) == 0 {
		return errors.New("exec config has no process")
	}
	p := cfg.Process
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("set oom_score_adj %d: %w", *p.OOMScoreAdj, err)
		}
	}
	if err := setRlimits(0, p.Rlimits); err != nil {
		return err
	}
	if cfg.ConsoleFd > 0 {
		slave, err := openConsole(os.NewFile(uintptr(cfg.ConsoleFd), "console-socket"), false)
		if err != nil {
			return err
		}
		if err := useConsole(slave); err != nil {
			return err
		}
	}
	// After the chdir, so a relative executable is found from the
	// working directory, as runc does.
	if err := chdirInside(p.Cwd); err != nil {
		return err
	}
	path, err := lookPath(p)
	if err != nil {
		return err
	}
	var filter *seccompProgram
	if cfg.SeccompFd > 0 {
		f := os.NewFile(uintptr(cfg.SeccompFd), "seccomp.bpf")
		insns, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read seccomp filter: %w", err)
		}
		filter = &seccompProgram{Insns: insns, Flags: cfg.SeccompFlags}
	}
	// Behind the nsenter proxy (a parent outside this PID namespace), die
	// with it: finishProcess re-arms the parent death signal after the
	// credential change that clears it.
	return finishProcess(p, path, filter, os.Getppid() == 0)
}

// fastExecConfig encodes proc for the C exec path of oci/nsenter (see
// nsenter/exec.c); ok is false when that path cannot run it (a terminal,
// or a config too large for an environment variable).
// seccompFd (0: none) is the container's compiled filter, which exec.c
// loads as finishProcess does.
func fastExecConfig(p *specs.Process, seccompFd int, seccompFlags uint) (string, bool) {
	// exec.c holds up to 4096 args, env entries and groups (it fails
	// past that); the Go path has no such limit.
	if p.Terminal || len(p.Args) > 4000 || len(p.Env) > 4000 || len(p.User.AdditionalGids) > 4000 {
		return "", false
	}
	c, err := parseLinuxCaps(p.Capabilities)
	if err != nil {
		return "", false
	}
	var b []byte
	add := func(k, v string) {
		b = append(append(append(append(b, k...), 0), v...), 0)
	}
	for _, a := range p.Args {
		add("arg", a)
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range p.Env {
		if strings.ContainsRune(e, 0) {
			return "", false
		}
		add("env", e)
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	add("path", path)
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	add("cwd", cwd)
	add("uid", strconv.FormatUint(uint64(p.User.UID), 10))
	add("gid", strconv.FormatUint(uint64(p.User.GID), 10))
	for _, g := range p.User.AdditionalGids {
		add("group", strconv.FormatUint(uint64(g), 10))
	}
	if p.User.Umask != nil {
		add("umask", strconv.FormatUint(uint64(*p.User.Umask), 10))
	}
	if p.OOMScoreAdj != nil {
		add("oom", strconv.Itoa(*p.OOMScoreAdj))
	}
	if p.NoNewPrivileges {
		add("nnp", "1")
	}
	for _, l := range p.Rlimits {
		r, ok := rlimitTypes[l.Type]
		if !ok {
			return "", false // the Go path reports it
		}
		add("rlimit", fmt.Sprintf("%d:%d:%d", r, l.Soft, l.Hard))
	}
	if seccompFd > 0 {
		add("seccomp", strconv.Itoa(seccompFd))
		add("seccompflags", strconv.FormatUint(uint64(seccompFlags), 10))
	}
	add("lastcap", strconv.Itoa(c.last))
	for _, m := range []struct {
		k string
		s capSet
	}{{"capb", c.bounding}, {"cape", c.effective}, {"capp", c.permitted}, {"capi", c.inheritable}, {"capa", c.ambient}} {
		add(m.k, strconv.FormatUint(uint64(m.s[1])<<32|uint64(m.s[0]), 16))
	}
	for _, a := range p.Args {
		if strings.ContainsRune(a, 0) {
			return "", false
		}
	}
	out := hex.EncodeToString(b)
	// Linux caps one environment string at 128 KiB.
	if len(out) > 120<<10 {
		return "", false
	}
	return out, true
}
