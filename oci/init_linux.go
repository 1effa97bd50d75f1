package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// initConfig is what Create sends the init over its sync socket.
type initConfig struct {
	Spec   *specs.Spec `json:"spec"`
	Rootfs string      `json:"rootfs"` // absolute
	// CgroupNS asks the init to unshare a cgroup namespace once it is in
	// its cgroup.
	CgroupNS    bool              `json:"cgroup_ns,omitempty"`
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	Console     bool              `json:"console,omitempty"`
	// Seccomp is the compiled Spec.Linux.Seccomp.
	Seccomp *seccompProgram `json:"seccomp,omitempty"`
	// LimitsSet: the runtime has set oom_score_adj and the rlimits from
	// the host (setLimitsFromHost), as a container in a user namespace
	// cannot.
	LimitsSet bool `json:"limits_set,omitempty"`
	// MountFds are, by index in Spec.Mounts, the fds of the bind
	// sources the runtime cloned on the host (openBindSources).
	MountFds map[int]int `json:"mount_fds,omitempty"`
}

// InitMain is the "berth-init" role: a container's first process before it
// execs the user program. It never returns.
func InitMain() {
	runtime.LockOSThread()
	// Not dumpable until execve: nothing in the container may ptrace it
	// or open its /proc files (its exe is berthd).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	sync := os.NewFile(initSyncFd, "sync")
	fifo := os.NewFile(initFifoFd, "exec.fifo")
	path, cfg, err := initContainer(sync)
	if err != nil {
		var nf *exec.Error
		report(sync, syncMsg{Type: "error", Error: err.Error(), NotFound: errors.As(err, &nf)})
		os.Exit(1)
	}
	report(sync, syncMsg{Type: "ready"})
	sync.Close()
	// The create/start split: wait for Start's byte.
	var b [1]byte
	if _, err := fifo.Read(b[:]); err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: wait for start: %v\n", err)
		os.Exit(1)
	}
	fifo.Close()
	err = finishProcess(cfg.Spec.Process, path, cfg.Seccomp, false)
	// execve failed: Start reads why from exec.status and fails with it.
	msg := explainExec(path, err).Error()
	fmt.Fprintf(os.Stderr, "berth-init: %s\n", msg)
	status := os.NewFile(initStatusFd, "exec.status")
	_, _ = status.Write([]byte(msg))
	os.Exit(127)
}

// initContainer runs the init's setup up to the point where it waits for
// Start; it returns the resolved executable.
func initContainer(sync *os.File) (string, *initConfig, error) {
	var cfg initConfig
	if err := json.NewDecoder(sync).Decode(&cfg); err != nil {
		return "", nil, fmt.Errorf("read init config: %w", err)
	}
	s := cfg.Spec
	p := s.Process
	// Host paths first, while the host's /proc is still there.
	if p.OOMScoreAdj != nil && !cfg.LimitsSet {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return "", nil, fmt.Errorf("set oom_score_adj %d: %w", *p.OOMScoreAdj, err)
		}
	}
	if cfg.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return "", nil, fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	if err := setupRootfs(&cfg); err != nil {
		return "", nil, err
	}
	var console *os.File
	if cfg.Console {
		var err error
		if console, err = openConsole(os.NewFile(initConsoleFd, "console-socket"), true); err != nil {
			return "", nil, err
		}
	}
	// A missing working directory is created, as runc does (an image's
	// WORKDIR need not exist), before the rootfs may turn read-only.
	if p.Cwd != "" {
		if err := os.MkdirAll(p.Cwd, 0o755); err != nil {
			return "", nil, fmt.Errorf("create cwd %q: %w", p.Cwd, err)
		}
	}
	if err := finishRootfs(s); err != nil {
		return "", nil, err
	}
	if ownsNamespace(s, specs.UTSNamespace) {
		if s.Hostname != "" {
			if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
				return "", nil, fmt.Errorf("set hostname: %w", err)
			}
		}
		if s.Domainname != "" {
			if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
				return "", nil, fmt.Errorf("set domainname: %w", err)
			}
		}
	}
	if !cfg.LimitsSet {
		if err := setRlimits(0, p.Rlimits); err != nil {
			return "", nil, err
		}
	}
	if console != nil {
		if err := useConsole(console); err != nil {
			return "", nil, err
		}
	}
	// The working directory first: a relative executable ("./sleep") is
	// found from it, as runc does.
	if err := chdirInside(p.Cwd); err != nil {
		return "", nil, err
	}
	path, err := lookPath(p)
	if err != nil {
		return "", nil, err
	}
	return path, &cfg, nil
}

// openConsole opens a pty in the container's devpts, sends the master over
// the console socket (the OCI --console-socket convention) and, for the
// init, binds the slave onto /dev/console. It returns the slave.
func openConsole(sock *os.File, bindConsole bool) (*os.File, error) {
	defer sock.Close()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return nil, fmt.Errorf("pty number: %w", err)
	}
	slavePath := "/dev/pts/" + strconv.Itoa(n)
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", slavePath, err)
	}
	if bindConsole {
		if err := ensureFile("/dev/console"); err != nil {
			slave.Close()
			return nil, fmt.Errorf("create /dev/console: %w", err)
		}
		if err := unix.Mount(slavePath, "/dev/console", "", unix.MS_BIND, ""); err != nil {
			slave.Close()
			return nil, fmt.Errorf("bind /dev/console: %w", err)
		}
	}
	conn, err := net.FileConn(sock)
	if err != nil {
		slave.Close()
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		slave.Close()
		return nil, errors.New("console socket is not a unix socket")
	}
	if _, _, err := uc.WriteMsgUnix([]byte(master.Name()), unix.UnixRights(int(master.Fd())), nil); err != nil {
		slave.Close()
		return nil, fmt.Errorf("send pty master: %w", err)
	}
	return slave, nil
}

// useConsole makes the pty slave the controlling terminal and stdio, in a
// new session unless the process already leads one.
func useConsole(slave *os.File) error {
	defer slave.Close()
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("setsid: %w", err)
	}
	for fd := range 3 {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup console to fd %d: %w", fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}

// dialConsole connects to the caller's console socket; the returned file
// goes to the container process, which sends the pty master over it.
func dialConsole(path string) (*os.File, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	f, err := conn.(*net.UnixConn).File()
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return f, nil
}

// socketPair returns the parent's and the child's end of a unix stream
// socket pair, both close-on-exec (os/exec dups the child's end).
func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync"), nil
}

func sendJSON(f *os.File, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

func newCgroupManager(c *cgroups.Cgroup) (cgroups.Manager, error) {
	return manager.New(c)
}
