package oci

// Berth's built-in runtime. Create re-executes the berthd binary (from a
// sealed memfd copy, see memfd_linux.go) as the "berth-init" role in the
// container's new namespaces. The handshake with that child:
//
//	runtime                                   berth-init (InitMain)
//	create cgroup, set limits
//	clone(new ns) ─────────────────────────► Go runtime starts, waits on fd 3
//	move child into the cgroup (v1)
//	send initConfig on fd 3 ──────────────► mounts, pivot_root, devices, sysctls,
//	                                          hostname, rlimits, oom_score_adj,
//	                                          resolve the executable, chdir
//	read report on fd 3 ◄──────────────────── {"type":"ready"} or {"type":"error"}
//	write state.json, return init PID         block reading exec.fifo (fd 4)
//	Start: open exec.status, write a byte
//	       to exec.fifo ─────────────────────► setgroups/setgid/setuid, caps,
//	                                          no_new_privs, seccomp, execve
//	read exec.status until EOF ◄────────────── execve closes fd 5 (success), or
//	                                          the init writes why it failed
//
// exec.status is how a failed execve (E2BIG, ENOEXEC, a missing
// interpreter, EACCES) reaches StartContainer, as runc's "exec format
// error" does, instead of a silent exit 127: the init holds its only
// write end, close-on-exec, so a successful execve is EOF for Start.
//
// Namespaces the spec gives by path (the pod's net, ipc, uts, pid) are
// joined by a goroutine that locks its OS thread, setns()es it, forks the
// child from it (the child inherits them) and then exits with the thread
// still locked, so the Go runtime discards the thread.
//
// A user namespace given by path (a pod's own, hostUsers: false) cannot be
// joined that way: no multithreaded process can join one, and the
// container's new namespaces must be made after it so that it owns them.
// Then oci/nsenter's constructor in the child does it all before the Go
// runtime starts (startInUserns): the joins, user first; the unshares;
// the fork into a PID namespace, reporting the init's PID; the cgroup
// joins while it has the host's IDs; then it becomes the namespace's
// root. The runtime sets oom_score_adj and rlimits from the host
// (setLimitsFromHost). Execs join the user namespace first the same way.
// A new user namespace (no path) is not implemented.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Fds of the init role.
const (
	initSyncFd    = 3 // socket: initConfig in, syncMsg out
	initFifoFd    = 4 // exec.fifo, read until Start writes
	initStatusFd  = 5 // exec.status, written only when execve fails
	initConsoleFd = 6 // connected console socket (terminal only)
)

type builtin struct {
	name    string
	root    string // <state>/runtime/<handler>
	binary  string // the berthd binary to re-exec
	systemd bool
	log     *zap.Logger
}

func newBuiltin(name string, opts Options) (*builtin, error) {
	r := &builtin{
		name:    name,
		root:    filepath.Join(opts.StateDir, handlerDir(name)),
		binary:  opts.BinaryPath,
		systemd: opts.CgroupDriver == "systemd",
		log:     opts.Log.With(zap.String("runtime", name)),
	}
	if r.binary == "" {
		r.binary = "/proc/self/exe"
	}
	if err := os.MkdirAll(r.root, 0o711); err != nil {
		return nil, fmt.Errorf("runtime %s: %w", name, err)
	}
	return r, nil
}

// namespaceFlags maps spec namespace types to clone flags.
var namespaceFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// nsJoin is a namespace joined by path.
type nsJoin struct {
	f    *os.File
	flag int
}

// namespacePlan splits the spec's namespaces into clone flags for new
// ones and opened files for joined ones.
func namespacePlan(s *specs.Spec) (clone uintptr, joins []nsJoin, cgroupNS bool, retErr error) {
	defer func() {
		if retErr != nil {
			for _, j := range joins {
				j.f.Close()
			}
		}
	}()
	hasMount := false
	for _, ns := range s.Linux.Namespaces {
		flag, ok := namespaceFlags[ns.Type]
		if !ok {
			return 0, joins, false, fmt.Errorf("namespace type %q: %w", ns.Type, errdefs.ErrInvalidArgument)
		}
		switch ns.Type {
		case specs.UserNamespace:
			if ns.Path == "" {
				return 0, joins, false, fmt.Errorf("a new user namespace (joining one by path is supported): %w", errdefs.ErrNotImplemented)
			}
		case specs.TimeNamespace:
			return 0, joins, false, fmt.Errorf("%s namespaces: %w", ns.Type, errdefs.ErrNotImplemented)
		case specs.MountNamespace:
			if ns.Path != "" {
				return 0, joins, false, fmt.Errorf("joining a mount namespace: %w", errdefs.ErrNotImplemented)
			}
			hasMount = true
		}
		if ns.Path == "" {
			if ns.Type == specs.CgroupNamespace {
				// Unshared by the init once it is in its cgroup.
				cgroupNS = true
				continue
			}
			clone |= flag
			continue
		}
		f, err := os.Open(ns.Path)
		if err != nil {
			return 0, joins, false, fmt.Errorf("open %s namespace %s: %v: %w", ns.Type, ns.Path, err, errdefs.ErrInvalidArgument)
		}
		if ns.Type == specs.UserNamespace {
			// First: it owns the others.
			joins = append([]nsJoin{{f: f, flag: int(flag)}}, joins...)
			continue
		}
		joins = append(joins, nsJoin{f: f, flag: int(flag)})
	}
	if !hasMount {
		return 0, joins, false, fmt.Errorf("the builtin runtime needs a mount namespace: %w", errdefs.ErrInvalidArgument)
	}
	return clone, joins, cgroupNS, nil
}

// joinsUserns reports whether joins (from namespacePlan) has a user
// namespace, which is then first.
func joinsUserns(joins []nsJoin) bool {
	return len(joins) > 0 && joins[0].flag == unix.CLONE_NEWUSER
}

// nsenterCodes are nsenter's letters for the namespaces it joins.
var nsenterCodes = map[int]byte{
	unix.CLONE_NEWUSER: 'U', unix.CLONE_NEWNET: 'n', unix.CLONE_NEWIPC: 'i', unix.CLONE_NEWUTS: 'u',
	unix.CLONE_NEWPID: 'p', unix.CLONE_NEWCGROUP: 'c',
}

// startInUserns starts cmd, the init of a container that joins a user
// namespace, through oci/nsenter: a multithreaded Go process can join no
// user namespace, and the namespaces the container gets must be made
// after it, so that it owns them. nsenter joins the namespaces, unshares
// clone's, joins the cgroups (procs files) and becomes the namespace's
// root before the Go runtime starts. It returns the init's PID, which
// differs from cmd's when nsenter forked into a PID namespace (cmd is then
// reaped, and the init is the subreaper's); rd reads the sync socket on.
func startInUserns(cmd *exec.Cmd, joins []nsJoin, clone uintptr, procs []string, rd *bufio.Reader) (int, error) {
	var plan []string
	for _, j := range joins {
		plan = append(plan, fmt.Sprintf("%c:%d", nsenterCodes[j.flag], 3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, j.f)
	}
	cmd.Env = append(cmd.Env,
		"_BERTH_NSENTER="+strings.Join(plan, ","),
		"_BERTH_NSENTER_UNSHARE="+strconv.FormatUint(uint64(clone), 10),
		"_BERTH_NSENTER_CGROUP="+strings.Join(procs, "\n"),
		"_BERTH_NSENTER_INIT=1")
	cmd.SysProcAttr.Cloneflags = 0
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	if clone&unix.CLONE_NEWPID == 0 && !joinsPID(joins) {
		return cmd.Process.Pid, nil
	}
	msg, err := readMsg(rd)
	if msg.Type != "pid" {
		cmd.Process.Kill()
		cmd.Wait()
		if msg.Type == "error" {
			return 0, errors.New(msg.Error)
		}
		return 0, fmt.Errorf("no PID from nsenter: %v", err)
	}
	// The intermediate process exits once it has reported.
	cmd.Wait()
	return msg.Pid, nil
}

func joinsPID(joins []nsJoin) bool {
	for _, j := range joins {
		if j.flag == unix.CLONE_NEWPID {
			return true
		}
	}
	return false
}

// openBindSources clones the source of every bind mount of s on the host
// (open_tree OPEN_TREE_CLONE, recursive for rbind) for the init of a
// container in a user namespace, whose root may not reach the sources by
// their paths (kubelet's volume dirs are 0750). It passes them to cmd and
// returns their fd numbers there by mount index.
func openBindSources(cmd *exec.Cmd, s *specs.Spec) (map[int]int, []*os.File, error) {
	fds := map[int]int{}
	var files []*os.File
	for i, m := range s.Mounts {
		flags, _, _ := parseMountOptions(m.Options)
		if m.Type != "bind" && flags&unix.MS_BIND == 0 {
			continue
		}
		how := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
		if flags&unix.MS_REC != 0 {
			how |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, uint(how))
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		f := os.NewFile(uintptr(fd), m.Source)
		files = append(files, f)
		fds[i] = 3 + len(cmd.ExtraFiles)
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	return fds, files, nil
}

// setLimitsFromHost sets the init's oom_score_adj and rlimits from the
// host, before it runs anything: in a user namespace it could not lower
// its oom_score_adj or raise a hard limit itself (runc does the same).
func setLimitsFromHost(pid int, p *specs.Process) error {
	if p.OOMScoreAdj != nil {
		path := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
		if err := os.WriteFile(path, []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("set oom_score_adj %d: %w", *p.OOMScoreAdj, err)
		}
	}
	return setRlimits(pid, p.Rlimits)
}

// ownsNamespace reports whether the container gets a new namespace of typ.
func ownsNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return ns.Path == ""
		}
	}
	return false
}

// startJoined starts cmd from a thread that has joined the namespaces.
func startJoined(cmd *exec.Cmd, joins []nsJoin) error {
	if len(joins) == 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread's namespaces are not the process's,
		// so it must die with this goroutine.
		runtime.LockOSThread()
		for _, j := range joins {
			if err := unix.Setns(int(j.f.Fd()), j.flag); err != nil {
				errc <- fmt.Errorf("join namespace %s: %w", j.f.Name(), err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

func (r *builtin) Create(ctx context.Context, id, bundle string, io IO) (pid int, retErr error) {
	if err := validID(id); err != nil {
		return 0, err
	}
	log := r.log.With(zap.String("container", id))
	s, err := ReadSpec(bundle)
	if err != nil {
		return 0, err
	}
	filter, err := bundleSeccomp(bundle, s.Linux.Seccomp)
	if err != nil {
		return 0, fmt.Errorf("container %s: seccomp: %w", id, err)
	}
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return 0, fmt.Errorf("container %s: rootfs %s is not a directory: %w", id, rootfs, errdefs.ErrInvalidArgument)
	}
	clone, joins, cgroupNS, err := namespacePlan(s)
	if err != nil {
		return 0, fmt.Errorf("container %s: %w", id, err)
	}
	defer func() {
		for _, j := range joins {
			j.f.Close()
		}
	}()
	bin, err := sealedCopy(r.binary)
	if err != nil {
		return 0, err
	}

	dir := r.dir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return 0, fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
		}
		return 0, fmt.Errorf("container %s: state dir: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(dir)
		}
	}()

	cgCfg, err := cgroupConfig(id, s.Linux.CgroupsPath, r.systemd, withMknodOfNodes(s.Linux.Resources, s.Linux.Devices))
	if err != nil {
		return 0, fmt.Errorf("container %s: %v: %w", id, err, errdefs.ErrInvalidArgument)
	}
	cg, err := newCgroupManager(cgCfg)
	if err != nil {
		return 0, fmt.Errorf("container %s: cgroup: %w", id, err)
	}
	if err := cg.Apply(-1); err != nil {
		return 0, fmt.Errorf("container %s: create cgroup: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			if err := cg.Destroy(); err != nil {
				log.Warn("remove cgroup", zap.Error(err))
			}
		}
	}()
	if err := cg.Set(cgCfg.Resources); err != nil {
		return 0, fmt.Errorf("container %s: set cgroup limits: %w", id, err)
	}

	if filter != nil {
		// Execs load the same program (see Exec).
		if err := os.WriteFile(filepath.Join(dir, seccompFile), filter.Insns, 0o600); err != nil {
			return 0, fmt.Errorf("container %s: seccomp: %w", id, err)
		}
	}

	fifoPath := filepath.Join(dir, "exec.fifo")
	if err := unix.Mkfifo(fifoPath, 0o600); err != nil {
		return 0, fmt.Errorf("container %s: exec fifo: %w", id, err)
	}
	// Opened read-write, the fifo never blocks the open nor reads EOF: the
	// init's read waits for Start's byte.
	fifo, err := os.OpenFile(fifoPath, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("container %s: exec fifo: %w", id, err)
	}
	defer fifo.Close()
	statusPath := filepath.Join(dir, execStatusFile)
	if err := unix.Mkfifo(statusPath, 0o600); err != nil {
		return 0, fmt.Errorf("container %s: exec status fifo: %w", id, err)
	}
	// Read-write so the open does not block; closed here once the init
	// has it, so that the init's end is the only writer.
	status, err := os.OpenFile(statusPath, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("container %s: exec status fifo: %w", id, err)
	}
	defer status.Close()
	parentSock, childSock, err := socketPair()
	if err != nil {
		return 0, fmt.Errorf("container %s: %w", id, err)
	}
	defer parentSock.Close()
	defer childSock.Close()

	cmd := &exec.Cmd{
		Path:       execPath(bin),
		Args:       []string{"berth-init"},
		Env:        []string{},
		Dir:        "/",
		ExtraFiles: []*os.File{childSock, fifo, status},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: clone,
			Setsid:     true,
		},
	}
	io.attach(cmd)
	if s.Process.Terminal {
		if io.ConsoleSocket == "" {
			return 0, fmt.Errorf("container %s: terminal without a console socket: %w", id, errdefs.ErrInvalidArgument)
		}
		console, err := dialConsole(io.ConsoleSocket)
		if err != nil {
			return 0, fmt.Errorf("container %s: %w", id, err)
		}
		defer console.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, console)
	}
	// On v2 the child starts in its cgroup (CLONE_INTO_CGROUP); on v1 it
	// is moved there before it gets its config.
	if cgroups.IsCgroup2UnifiedMode() {
		cgdir, err := os.Open(cg.Path(""))
		if err != nil {
			return 0, fmt.Errorf("container %s: open cgroup: %w", id, err)
		}
		defer cgdir.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cgdir.Fd())
	}
	rd := bufio.NewReader(parentSock)
	userns := joinsUserns(joins)
	var mountFds map[int]int
	if userns {
		var sources []*os.File
		if mountFds, sources, err = openBindSources(cmd, s); err != nil {
			return 0, fmt.Errorf("container %s: %w", id, err)
		}
		defer func() {
			for _, f := range sources {
				f.Close()
			}
		}()
	}
	// Not the named result, which a failing return zeroes before the
	// deferred kill below runs: kill(0) would be the caller's group.
	var initPid int
	if userns {
		initPid, err = startInUserns(cmd, joins, clone, cgroupState{Paths: cg.GetPaths()}.procsFiles(), rd)
	} else {
		err = startJoined(cmd, joins)
		initPid = cmd.Process.Pid
	}
	if err != nil {
		return 0, fmt.Errorf("container %s: start init: %w", id, err)
	}
	childSock.Close()
	status.Close()
	pid = initPid
	forked := initPid != cmd.Process.Pid
	defer func() {
		switch {
		case retErr != nil && forked:
			// Reparented to the caller, a subreaper.
			unix.Kill(initPid, unix.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(initPid, &ws, 0, nil)
		case retErr != nil:
			cmd.Process.Kill()
			cmd.Wait()
		case !forked:
			// The caller (the container's monitor, a subreaper) reaps it.
			cmd.Process.Release()
		}
	}()
	// A cancelled ctx kills the child, which ends the handshake.
	defer context.AfterFunc(ctx, func() { unix.Kill(initPid, unix.SIGKILL) })()

	if userns {
		if err := setLimitsFromHost(pid, s.Process); err != nil {
			return 0, fmt.Errorf("container %s: %w", id, err)
		}
	} else if !cgroups.IsCgroup2UnifiedMode() {
		if err := cg.Apply(pid); err != nil {
			return 0, fmt.Errorf("container %s: join cgroup: %w", id, err)
		}
	}
	cfg := initConfig{
		Spec:        s,
		Rootfs:      rootfs,
		CgroupNS:    cgroupNS,
		CgroupPaths: cg.GetPaths(),
		Console:     s.Process.Terminal,
		Seccomp:     filter,
		LimitsSet:   userns,
		MountFds:    mountFds,
	}
	if err := sendJSON(parentSock, cfg); err != nil {
		return 0, fmt.Errorf("container %s: send init config: %w", id, err)
	}
	msg, err := readMsg(rd)
	if err != nil || msg.Type == "" {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("container %s: %w", id, ctx.Err())
		}
		return 0, fmt.Errorf("container %s: init exited during setup: %v", id, err)
	}
	if msg.Type == "error" {
		return 0, fmt.Errorf("container %s: %s", id, msg.Error)
	}
	_, start, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("container %s: init exited during setup: %w", id, err)
	}
	st := &containerState{
		ID: id, Bundle: bundle, Rootfs: rootfs, Pid: pid, StartTime: start, Created: time.Now().UTC(),
		Cgroup: cgroupState{
			Path: cgCfg.Path, Parent: cgCfg.Parent, ScopePrefix: cgCfg.ScopePrefix, Name: cgCfg.Name,
			Systemd: cgCfg.Systemd, Paths: cg.GetPaths(),
		},
	}
	if filter != nil {
		st.Seccomp = &seccompState{Flags: filter.Flags}
	}
	if err := r.save(st); err != nil {
		return 0, fmt.Errorf("container %s: %w", id, err)
	}
	log.Debug("container created", zap.Int("pid", pid))
	return pid, nil
}

func (r *builtin) Start(ctx context.Context, id string) error {
	s, err := r.load(id)
	if err != nil {
		return err
	}
	fifoPath := filepath.Join(r.dir(id), "exec.fifo")
	// Non-blocking: with the init gone there is no reader and this fails
	// with ENXIO instead of hanging.
	f, err := os.OpenFile(fifoPath, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("container %s is %s, not created: %w", id, r.status(s), errdefs.ErrFailedPrecondition)
		}
		if errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("container %s: init exited before start: %w", id, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("start container %s: %w", id, err)
	}
	defer f.Close()
	if !s.alive() {
		return fmt.Errorf("container %s: init exited before start: %w", id, errdefs.ErrFailedPrecondition)
	}
	// Opened before the byte goes, so the init's failure cannot be missed;
	// a container from a Berth without exec.status has none.
	status, err := os.OpenFile(filepath.Join(r.dir(id), execStatusFile), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start container %s: exec status: %w", id, err)
	}
	if status != nil {
		defer status.Close()
	}
	if _, err := f.Write([]byte{0}); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if err := os.Remove(fifoPath); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if status != nil {
		if err := readExecStatus(ctx, status); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
		_ = os.Remove(status.Name())
	}
	r.log.Debug("container started", zap.String("container", id))
	return nil
}

func (r *builtin) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	s, err := r.load(id)
	if err != nil {
		return err
	}
	if all {
		return killCgroup(s, sig)
	}
	return signalInit(s, sig)
}

// signalInit signals the init through a pidfd, checked against the
// recorded start time, so a recycled PID is never signalled.
func signalInit(s *containerState, sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(s.Pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("container %s: process already finished: %w", s.ID, errdefs.ErrNotFound)
		}
		return fmt.Errorf("container %s: pidfd: %w", s.ID, err)
	}
	defer unix.Close(fd)
	if !s.alive() {
		return fmt.Errorf("container %s: process already finished: %w", s.ID, errdefs.ErrNotFound)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("container %s: process already finished: %w", s.ID, errdefs.ErrNotFound)
		}
		return fmt.Errorf("container %s: signal %d: %w", s.ID, sig, err)
	}
	return nil
}

// killCgroup signals every process in the container's cgroup. For SIGKILL
// the cgroup is frozen first so nothing forks in between.
func killCgroup(s *containerState, sig syscall.Signal) error {
	cg, err := s.Cgroup.manager()
	if err != nil {
		return fmt.Errorf("container %s: cgroup: %w", s.ID, err)
	}
	if sig == unix.SIGKILL {
		if err := cg.Freeze(cgroups.Frozen); err == nil {
			defer cg.Freeze(cgroups.Thawed)
		}
	}
	pids, err := cg.GetAllPids()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("container %s: no processes: %w", s.ID, errdefs.ErrNotFound)
		}
		return fmt.Errorf("container %s: list processes: %w", s.ID, err)
	}
	for _, p := range pids {
		if err := unix.Kill(p, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("container %s: signal %d to %d: %w", s.ID, sig, p, err)
		}
	}
	return nil
}

func (r *builtin) State(ctx context.Context, id string) (State, error) {
	s, err := r.load(id)
	if err != nil {
		return State{}, err
	}
	return State{ID: id, Pid: s.Pid, Status: r.status(s), Bundle: s.Bundle}, nil
}

func (r *builtin) Delete(ctx context.Context, id string, force bool) error {
	s, err := r.load(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		// A Create that failed half-way leaves no state.json; clean what is left.
		if validID(id) == nil {
			os.RemoveAll(r.dir(id))
		}
		return nil
	}
	if err != nil {
		return err
	}
	if st := r.status(s); st != StatusStopped {
		if !force {
			return fmt.Errorf("container %s is %s: %w", id, st, errdefs.ErrFailedPrecondition)
		}
	}
	cg, err := s.Cgroup.manager()
	if err != nil {
		return fmt.Errorf("delete container %s: cgroup: %w", id, err)
	}
	// Even a stopped init may leave processes behind in the cgroup (when
	// the container shares a PID namespace); they go too.
	if err := r.drain(ctx, s, cg); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if err := cg.Destroy(); err != nil {
		return fmt.Errorf("delete container %s: remove cgroup: %w", id, err)
	}
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	r.log.Debug("container deleted", zap.String("container", id))
	return nil
}

// drain kills everything in the container's cgroup and waits (up to ten
// seconds or ctx) until it is empty.
func (r *builtin) drain(ctx context.Context, s *containerState, cg cgroups.Manager) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := cg.GetAllPids()
		if err != nil || len(pids) == 0 {
			if s.alive() {
				signalInit(s, unix.SIGKILL)
			}
			return nil
		}
		killCgroup(s, unix.SIGKILL)
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in the cgroup", pids)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Exec is in exec_linux.go.
