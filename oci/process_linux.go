package oci

// The last steps of a container process, shared by the init (InitMain) and
// exec (ExecMain) roles: credentials, capabilities, no_new_privs, the
// seccomp hook, fd hygiene, then execve. All of it runs on the thread the
// role locked at its start, because credentials and capabilities are
// per-thread and execve keeps only the calling thread's.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// syncMsg is what a role process reports to the runtime over its sync
// channel: nothing (the channel closes on a successful execve) or an error.
type syncMsg struct {
	Type  string `json:"type"` // "ready", "error" or "pid" (the exec proxy's child)
	Error string `json:"error,omitempty"`
	Pid   int    `json:"pid,omitempty"`
	// NotFound marks a missing executable so Exec can classify it.
	NotFound bool `json:"not_found,omitempty"`
}

// report writes m to the sync channel.
func report(f *os.File, m syncMsg) {
	b, _ := json.Marshal(m)
	f.Write(append(b, '\n'))
}

// readReport reads one message from a role's sync channel. io.EOF means the
// channel closed without a message.
func readReport(f *os.File) (syncMsg, error) {
	return readMsg(bufio.NewReader(f))
}

func readMsg(r *bufio.Reader) (syncMsg, error) {
	var m syncMsg
	line, err := r.ReadBytes('\n')
	if len(line) == 0 {
		return m, err
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("decode sync message %q: %w", line, err)
	}
	return m, nil
}

// attach makes io the stdio of cmd. Files left nil become /dev/null (a nil
// *os.File must not reach os/exec inside an interface: it would close the
// fd instead).
func (io IO) attach(cmd *exec.Cmd) {
	if io.Stdin != nil {
		cmd.Stdin = io.Stdin
	}
	if io.Stdout != nil {
		cmd.Stdout = io.Stdout
	}
	if io.Stderr != nil {
		cmd.Stderr = io.Stderr
	}
}

// rlimitTypes maps the spec's names to resources.
var rlimitTypes = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// setRlimits sets the rlimits of process pid (0: the caller).
func setRlimits(pid int, limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		r, ok := rlimitTypes[l.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", l.Type)
		}
		if err := unix.Prlimit(pid, r, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}, nil); err != nil {
			return fmt.Errorf("set %s to %d:%d: %w", l.Type, l.Soft, l.Hard, err)
		}
	}
	return nil
}

// lookPath finds args[0] with the container's PATH, as runc does, so a
// missing program fails with the same message:
// exec: "nosuch": executable file not found in $PATH.
func lookPath(p *specs.Process) (string, error) {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range p.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	os.Setenv("PATH", path)
	name, err := exec.LookPath(p.Args[0])
	if errors.Is(err, exec.ErrDot) {
		err = nil
	}
	return name, err
}

// withHome adds HOME from the container's /etc/passwd (or "/") when the
// spec's environment has none, as runc does.
func withHome(env []string, uid uint32) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			return env
		}
	}
	home := "/"
	if b, err := os.ReadFile("/etc/passwd"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 6 && f[2] == strconv.FormatUint(uint64(uid), 10) && f[5] != "" {
				home = f[5]
				break
			}
		}
	}
	return append(env, "HOME="+home)
}

// chdirInside changes to dir inside the container and checks the kernel
// sees the result under the process's root: a cwd outside it (a leaked
// host directory, CVE-2024-21626) shows as "(unreachable)" and fails here.
func chdirInside(dir string) error {
	if dir == "" {
		dir = "/"
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("chdir to cwd %q: %w", dir, err)
	}
	wd, err := unix.Getwd()
	if err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("cwd %q is outside the container root: %v", dir, err)
	}
	return nil
}

// finishProcess switches to the spec's user and capabilities and execs
// the program at path. With pdeathsig the process gets SIGKILL when its
// parent (the nsenter proxy) dies. It returns only on failure.
//
// The seccomp filter (nil: none) is loaded as late as it can be: with
// no_new_privs, last before execve, so it need not allow anything the
// runtime does; without, loading needs CAP_SYS_ADMIN, so it goes first,
// while the runtime still holds every capability, and must then allow the
// credential calls that follow (the default profile does), as runc does.
func finishProcess(p *specs.Process, path string, seccomp *seccompProgram, pdeathsig bool) error {
	c, err := parseLinuxCaps(p.Capabilities)
	if err != nil {
		return err
	}
	if seccomp != nil && !p.NoNewPrivileges {
		if err := loadSeccomp(seccomp); err != nil {
			return err
		}
	}
	if err := c.dropBounding(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	gids := make([]int, 0, len(p.User.AdditionalGids))
	for _, g := range p.User.AdditionalGids {
		gids = append(gids, int(g))
	}
	if err := unix.Setgroups(gids); err != nil {
		return fmt.Errorf("setgroups %v: %w", gids, err)
	}
	if err := unix.Setresgid(int(p.User.GID), int(p.User.GID), int(p.User.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", p.User.GID, err)
	}
	if err := unix.Setresuid(int(p.User.UID), int(p.User.UID), int(p.User.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", p.User.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keep capabilities: %w", err)
	}
	if pdeathsig {
		// The credential change cleared it; re-arm, then make sure the
		// parent did not die in between (we would be the init's now).
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return fmt.Errorf("set parent death signal: %w", err)
		}
		if os.Getppid() != 0 {
			return errors.New("the exec proxy exited")
		}
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	}
	if err := c.apply(); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	// No fd of the runtime may reach the user program (CVE-2024-21626).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	env := withHome(append([]string(nil), p.Env...), p.User.UID)
	if seccomp != nil && p.NoNewPrivileges {
		if err := loadSeccomp(seccomp); err != nil {
			return err
		}
	}
	err = unix.Exec(path, p.Args, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// loadSeccomp installs a compiled filter on the calling thread (the one
// that execs: execve keeps only it).
func loadSeccomp(prog *seccompProgram) error {
	n := len(prog.Insns) / 8
	if n == 0 || len(prog.Insns)%8 != 0 {
		return fmt.Errorf("load seccomp filter: %d bytes is no BPF program", len(prog.Insns))
	}
	fprog := unix.SockFprog{Len: uint16(n), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog.Insns[0]))}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(prog.Flags), uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("load seccomp filter: %w", errno)
	}
	return nil
}
