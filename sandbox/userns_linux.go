package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/oci/idmap"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// nsHolderRole is argv[0] of the process that holds a user-namespace pod's
// new namespaces until berthd has pinned them (cmd/berthd dispatches on
// it). A pod in PID mode POD needs none: its berth-podinit holds them.
const nsHolderRole = "berth-nsholder"

// NSHolderMain is the "berth-nsholder" role: it waits to be killed.
func NSHolderMain() {
	for {
		_ = unix.Pause()
	}
}

// usernsMappings are the uid and gid mappings of a pod's own user
// namespace (mode POD), nil for a pod in the host's. checkUserns has
// checked there is exactly one of each.
func usernsMappings(cfg *runtimeapi.PodSandboxConfig) (uid, gid *runtimeapi.IDMapping) {
	opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	// Absent, it is the host's; present, its zero mode is POD.
	if opts == nil || opts.GetMode() != runtimeapi.NamespaceMode_POD {
		return nil, nil
	}
	return opts.GetUids()[0], opts.GetGids()[0]
}

// inNewUserns makes a pod's own user namespace and, owned by it, new
// namespaces of kinds (and a PID namespace when withInit), pins them all at
// dir/<kind> (the user namespace at dir/user), then runs fn on a fresh OS
// thread that has joined the pinned namespaces of kinds, but not the user
// namespace: berthd stays host root, which holds every capability over
// namespaces owned by a child user namespace. In PID mode POD the returned
// berth-podinit is PID 1 of the new PID namespace.
//
// A multithreaded process can neither unshare a user namespace nor join
// one, so a child is cloned into all of them at once (the kernel makes
// the user namespace first, which then owns the others) and its mappings
// written by os/exec before it execs. On error the caller unpins whatever
// was pinned; no process is left.
func inNewUserns(dir string, kinds []string, withInit bool, uid, gid *runtimeapi.IDMapping, fn func() error) (_ *podInit, retErr error) {
	// The child execs as the mapped root, who may not reach berthd's
	// binary by its path: it runs the sealed copy through a file
	// descriptor instead.
	exe, err := oci.SealedExe("")
	if err != nil {
		return nil, err
	}
	flags := unix.CLONE_NEWUSER
	for _, k := range kinds {
		flags |= nsFlags[k]
	}
	role, deathSig := nsHolderRole, unix.SIGKILL // a holder never outlives berthd
	if withInit {
		flags |= unix.CLONE_NEWPID
		role, deathSig = podInitRole, 0
	}
	attr := &syscall.SysProcAttr{
		Pdeathsig:   deathSig,
		Cloneflags:  uintptr(flags),
		Setsid:      true,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(uid.GetHostId()), Size: int(uid.GetLength())}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(gid.GetHostId()), Size: int(gid.GetLength())}},
		// Container root may call setgroups, as in a pod in the host's
		// user namespace.
		GidMappingsEnableSetgroups: true,
		// Until it sets its IDs in the new namespace, a child keeps host
		// root's: become the namespace's root, uid H on the host.
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
	}
	cmd, err := startRole(exe, role, attr)
	if err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	var init *podInit
	if withInit {
		if init, err = newPodInit(cmd); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, err
		}
	}
	defer func() {
		switch {
		case init == nil:
			// The holder's work is done once the namespaces are pinned.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		case retErr != nil:
			_ = init.kill()
			init.release()
		}
	}()
	pins := append([]string{"user"}, kinds...)
	if withInit {
		pins = append(pins, "pid")
	}
	for _, k := range pins {
		if err := pin(fmt.Sprintf("/proc/%d/ns/%s", pid, k), filepath.Join(dir, k)); err != nil {
			return nil, err
		}
	}
	if err := inPinnedNamespaces(dir, kinds, fn); err != nil {
		return nil, err
	}
	return init, nil
}

// writeSysctlsInUserns sets sysctls in the calling thread's namespaces,
// which a pod's user namespace owns, as writeSysctls does. The kernel lets
// only that namespace's root write the IPC ones (ipc_permissions compares
// the writer's euid, whatever its capabilities), and only host root write
// the UTS ones: the IPC ones go last, with the thread's euid set to root's
// host uid. Call it on a locked thread that is thrown away afterwards.
func writeSysctlsInUserns(sysctls map[string]string, root uint32) error {
	ipc, other := map[string]string{}, map[string]string{}
	for k, v := range sysctls {
		if sysctlNamespace(k) == "ipc" {
			ipc[k] = v
		} else {
			other[k] = v
		}
	}
	if err := writeSysctls(other); err != nil || len(ipc) == 0 {
		return err
	}
	// Raw: the syscall package would change every thread's.
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(root), ^uintptr(0)); errno != 0 {
		return fmt.Errorf("become the pod's root to set its IPC sysctls: %w", errno)
	}
	return writeSysctls(ipc)
}

// startRole starts berthd's role by exe with attr.
func startRole(exe, role string, attr *syscall.SysProcAttr) (*exec.Cmd, error) {
	cmd := &exec.Cmd{
		Path: exe,
		Args: []string{role},
		// One P and a small GC target keep its memory to a few MiB.
		Env:         []string{"GOMAXPROCS=1", "GOGC=10"},
		Dir:         "/",
		SysProcAttr: attr,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	return cmd, nil
}

// inPinnedNamespaces runs fn on a fresh OS thread that has joined the
// namespaces of kinds pinned at dir/<kind>. The thread is thrown away
// afterwards.
func inPinnedNamespaces(dir string, kinds []string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread, as in inNewNamespaces.
		errc <- func() error {
			for _, k := range kinds {
				path := filepath.Join(dir, k)
				fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("open %s namespace %s: %w", k, path, err)
				}
				err = unix.Setns(fd, nsFlags[k])
				unix.Close(fd)
				if err != nil {
					return fmt.Errorf("join %s namespace %s: %w", k, path, err)
				}
			}
			return fn()
		}()
	}()
	return <-errc
}

// mountIDMapped attaches at each mount point of mounts (below dir) an
// idmapped clone of its host path, mapped through the pod's user
// namespace at userns: what the container's root writes there is owned by
// 0 on disk, and files owned by 0 are its own.
func mountIDMapped(dir string, mounts map[string]string, userns string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("idmapped volumes: %w", err)
	}
	ns, err := os.Open(userns)
	if err != nil {
		return fmt.Errorf("idmapped volumes: user namespace: %w", err)
	}
	defer ns.Close()
	for target, src := range mounts {
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("idmapped volume %s: %w", src, err)
		}
		if fi.IsDir() {
			err = os.Mkdir(target, 0o711)
		} else {
			err = os.WriteFile(target, nil, 0o600)
		}
		if err != nil {
			return fmt.Errorf("idmapped volume %s: %w", src, err)
		}
		if err := idmap.Clone(src, target, int(ns.Fd()), true, false); err != nil {
			if errors.Is(err, idmap.ErrUnsupported) {
				return fmt.Errorf("host path %s: its filesystem does not support idmapped mounts: %v: %w", src, err, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("idmapped volume: %w", err)
		}
	}
	return nil
}

// unmountIDMapped unmounts and removes the idmapped volumes of the
// container whose state dir is stateDir, as many as are there.
func unmountIDMapped(stateDir string) error {
	dir := filepath.Join(stateDir, "idmap")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("idmapped volumes: %w", err)
	}
	for _, e := range entries {
		if err := unpin(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("idmapped volume: %w", err)
		}
	}
	return nil
}

// searchableByAll checks that anyone may search every directory from / down
// to dir: the containers of a pod with its own user namespace run as a
// mapped root, a host uid like any other, which reaches its rootfs under
// berthd's state directory. berthd makes that directory 0711; a parent an
// operator (or a test) made 0700 would stop every such container with a
// bare "permission denied", so it is refused first, naming the directory.
func searchableByAll(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("user namespaces for pods: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("user namespaces for pods: %s (mode %o) must be searchable by all (o+x): the containers' root, a mapped uid, reaches its rootfs through it: %w",
				d, fi.Mode().Perm(), errdefs.ErrFailedPrecondition)
		}
		if d == "/" {
			return nil
		}
	}
}
