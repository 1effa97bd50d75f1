package sandbox

// Pod namespaces without a process. A goroutine locks itself to its OS
// thread, unshares the network, IPC and UTS namespaces on that thread only,
// bind-mounts the thread's namespace files onto pins under the pod's state
// dir, and sets the hostname and namespaced sysctls while it is inside.
// It never unlocks the thread, so the Go runtime ends the thread with the
// goroutine and no other goroutine ever runs in the pod's namespaces. The
// pins keep the namespaces alive until RemovePod unmounts them.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// nsFlags are the clone flags of the namespace kinds a pod pins.
var nsFlags = map[string]int{
	"net": unix.CLONE_NEWNET,
	"ipc": unix.CLONE_NEWIPC,
	"uts": unix.CLONE_NEWUTS,
}

// podNamespaceKinds are the kinds of namespace a pod may pin, the user
// namespace, which owns the others, last.
var podNamespaceKinds = []string{"net", "ipc", "uts", "pid", "user"}

// inNewNamespaces runs fn on a fresh OS thread that has unshared the
// namespaces of kinds and pinned each at dir/<kind>. The thread is thrown
// away afterwards. On error the caller unpins (unpinNamespaces), whatever
// was pinned.
func inNewNamespaces(dir string, kinds []string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread's namespaces are no longer
		// berthd's, so it must die with the goroutine.
		errc <- func() error {
			flags := 0
			for _, k := range kinds {
				flags |= nsFlags[k]
			}
			if flags != 0 {
				if err := unix.Unshare(flags); err != nil {
					return fmt.Errorf("unshare %s namespaces: %w", strings.Join(kinds, ", "), err)
				}
			}
			tid := unix.Gettid()
			for _, k := range kinds {
				src := fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), tid, k)
				if err := pin(src, filepath.Join(dir, k)); err != nil {
					return err
				}
			}
			return fn()
		}()
	}()
	return <-errc
}

// inNetNS runs fn on a fresh OS thread that has joined the network
// namespace pinned at path. The thread is thrown away afterwards.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread, as in inNewNamespaces.
		errc <- func() error {
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open network namespace %s: %w", path, err)
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("join network namespace %s: %w", path, err)
			}
			return fn()
		}()
	}()
	return <-errc
}

// splitSysctls divides sysctls into the network ones and the others.
func splitSysctls(sysctls map[string]string) (network, other map[string]string) {
	network, other = map[string]string{}, map[string]string{}
	for k, v := range sysctls {
		if sysctlNamespace(k) == "net" {
			network[k] = v
		} else {
			other[k] = v
		}
	}
	return network, other
}

// pin bind-mounts the namespace file src onto the new file dst.
func pin(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace pin: %w", err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return fmt.Errorf("pin namespace %s at %s: %w", src, dst, err)
	}
	return nil
}

// unpin unmounts and removes a namespace pin or any other mount point the
// pod made. A path that is not mounted or not there is not an error.
func unpin(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// isNamespacePin reports whether path is a mounted namespace file.
func isNamespacePin(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// loopbackUp brings up "lo" in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// sysctlNamespace names the namespace a namespaced sysctl belongs to, or
// "" for a sysctl of the whole host, which a pod may not set.
func sysctlNamespace(name string) string {
	n := strings.ReplaceAll(name, "/", ".")
	switch {
	case strings.HasPrefix(n, "net."):
		return "net"
	case n == "kernel.sem", strings.HasPrefix(n, "kernel.shm"), strings.HasPrefix(n, "kernel.msg"),
		strings.HasPrefix(n, "fs.mqueue."):
		return "ipc"
	case n == "kernel.hostname", n == "kernel.domainname":
		return "uts"
	}
	return ""
}

// sysctlPath is the /proc/sys file of a sysctl named with dots (or, as
// kubelet also accepts, with slashes).
func sysctlPath(name string) string {
	if strings.Contains(name, "/") {
		return filepath.Join("/proc/sys", name)
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// checkSysctls refuses sysctls that are not namespaced or whose namespace
// the pod shares with the host.
func checkSysctls(sysctls map[string]string, own map[string]bool) error {
	for name := range sysctls {
		kind := sysctlNamespace(name)
		if kind == "" {
			return fmt.Errorf("sysctl %q is not namespaced: %w", name, errdefs.ErrInvalidArgument)
		}
		if !own[kind] {
			return fmt.Errorf("sysctl %q needs the pod's own %s namespace, but the pod uses the host's: %w",
				name, kind, errdefs.ErrInvalidArgument)
		}
		if strings.Contains(name, "..") {
			return fmt.Errorf("sysctl %q: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// writeSysctls sets sysctls in the calling thread's namespaces: /proc/sys
// files of namespaced sysctls act on the namespaces of the thread that
// opens them.
func writeSysctls(sysctls map[string]string) error {
	for name, value := range sysctls {
		if err := os.WriteFile(sysctlPath(name), []byte(value), 0); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sysctl %q does not exist: %w", name, errdefs.ErrInvalidArgument)
			}
			if errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("sysctl %s=%s: value refused by the kernel: %w", name, value, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
		}
	}
	return nil
}
