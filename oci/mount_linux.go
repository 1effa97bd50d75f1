package oci

// The init's filesystem setup, in its own mount namespace:
//
//	/ made rslave (or the spec's rootfsPropagation), so nothing leaks to the host
//	rootfs bound onto itself          (the sandbox mounted the overlay there)
//	spec mounts, in order             (bind ro remounts, propagation flags)
//	/dev nodes and symlinks           (when /dev is a fresh tmpfs)
//	pivot_root into rootfs, old root detached
//	sysctls, masked paths, read-only paths, read-only rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"dirsync": {false, unix.MS_DIRSYNC}, "remount": {false, unix.MS_REMOUNT},
	"mand": {false, unix.MS_MANDLOCK}, "nomand": {true, unix.MS_MANDLOCK},
	"atime": {true, unix.MS_NOATIME}, "noatime": {false, unix.MS_NOATIME},
	"diratime": {true, unix.MS_NODIRATIME}, "nodiratime": {false, unix.MS_NODIRATIME},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMountOptions splits options into mount flags, propagation changes
// and the filesystem's data string.
func parseMountOptions(opts []string) (flags uintptr, propagation []uintptr, data string) {
	var rest []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			propagation = append(propagation, p)
			continue
		}
		if o == "tmpcopyup" {
			continue // a runc extension Berth does not need: no copy-up
		}
		rest = append(rest, o)
	}
	return flags, propagation, strings.Join(rest, ",")
}

// setupRootfs builds the container's filesystem and pivots into it.
func setupRootfs(cfg *initConfig) error {
	s := cfg.Spec
	rootfs := cfg.Rootfs
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if p, ok := propagationFlags[s.Linux.RootfsPropagation]; ok {
		prop = p
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set / propagation: %w", err)
	}
	// pivot_root refuses a shared new root: make the mount rootfs sits on
	// private (the bind below copies that), whatever / became. Mounts bound
	// in later from shared sources keep their own peer groups.
	if err := makeParentPrivate(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", rootfs, err)
	}
	freshDev := false
	for i, m := range s.Mounts {
		if err := mountOne(cfg, m, cfg.MountFds[i]); err != nil {
			return err
		}
		if filepath.Clean(m.Destination) == "/dev" && m.Type != "bind" {
			freshDev = true
		}
	}
	if freshDev {
		if err := createDevices(rootfs, s.Linux.Devices); err != nil {
			return err
		}
	}
	if err := pivotRoot(rootfs); err != nil {
		return err
	}
	// The spec's propagation for the container's own tree, which
	// pivot_root would not have accepted before.
	if p, ok := propagationFlags[s.Linux.RootfsPropagation]; ok {
		if err := unix.Mount("", "/", "", p, ""); err != nil {
			return fmt.Errorf("set rootfs propagation %s: %w", s.Linux.RootfsPropagation, err)
		}
	}
	return nil
}

// makeParentPrivate makes the mount that holds path (path itself if it is
// a mount point) private.
func makeParentPrivate(path string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	best := "/"
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if err := unix.Mount("", best, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", best, err)
	}
	return nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

// finishRootfs runs inside the new root: sysctls, masked and read-only
// paths, and a read-only root.
func finishRootfs(s *specs.Spec) error {
	for k, v := range s.Linux.Sysctl {
		// "a.b.c", or "a/b/c" when a component holds dots (eth0.100).
		name := k
		if !strings.Contains(k, "/") {
			name = strings.ReplaceAll(k, ".", "/")
		}
		p := filepath.Join("/proc/sys", name)
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", k, v, err)
		}
	}
	for _, p := range s.Linux.MaskedPaths {
		if err := maskPath(p); err != nil {
			return err
		}
	}
	for _, p := range s.Linux.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	if s.Root.Readonly {
		if err := remountReadonly("/"); err != nil {
			return fmt.Errorf("make rootfs read-only: %w", err)
		}
	}
	return nil
}

func mountOne(cfg *initConfig, m specs.Mount, sourceFd int) error {
	dest, err := securejoin.SecureJoin(cfg.Rootfs, m.Destination)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m.Destination, err)
	}
	opts, recursiveRO := withoutOption(m.Options, "rro")
	flags, propagation, data := parseMountOptions(opts)
	switch {
	case m.Type == "bind" || flags&unix.MS_BIND != 0:
		if err := bindMount(m.Source, sourceFd, dest, flags, data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
		}
	case m.Type == "cgroup" || m.Type == "cgroup2":
		if err := mountCgroup(cfg, dest, flags); err != nil {
			return fmt.Errorf("mount cgroup on %s: %w", m.Destination, err)
		}
	default:
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
		if err := unix.Mount(m.Source, dest, m.Type, flags, data); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, m.Destination, err)
		}
	}
	for _, p := range propagation {
		if err := unix.Mount("", dest, "", p, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", m.Destination, err)
		}
	}
	if recursiveRO {
		// "ro" on a bind makes only its top mount read-only; submounts
		// the rbind brought along stay writable unless set recursively.
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(unix.AT_FDCWD, dest, unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("make %s recursively read-only: %w", m.Destination, err)
		}
	}
	return nil
}

// withoutOption returns opts without o, and whether o was there.
func withoutOption(opts []string, o string) ([]string, bool) {
	i := slices.Index(opts, o)
	if i < 0 {
		return opts, false
	}
	out := slices.Delete(slices.Clone(opts), i, i+1)
	out, _ = withoutOption(out, o)
	return out, true
}

// bindMount binds source on dest (creating dest as a file or directory to
// match) and applies the flags a plain bind ignores with a remount. With
// sourceFd (not 0) the source is that detached clone of it, which the
// runtime made on the host (open_tree): a container in a user namespace
// may not reach the source by its path.
func bindMount(source string, sourceFd int, dest string, flags uintptr, data string) error {
	var st unix.Stat_t
	var err error
	if sourceFd != 0 {
		err = unix.Fstat(sourceFd, &st)
	} else {
		err = unix.Stat(source, &st)
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.MkdirAll(dest, 0o755)
	} else {
		err = ensureFile(dest)
	}
	if err != nil {
		return err
	}
	if sourceFd != 0 {
		err = unix.MoveMount(sourceFd, "", unix.AT_FDCWD, dest, unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(sourceFd)
	} else {
		err = unix.Mount(source, dest, "", uintptr(unix.MS_BIND)|flags&unix.MS_REC, data)
	}
	if err != nil {
		return err
	}
	if rest := flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
		if err := unix.Mount("", dest, "", unix.MS_BIND|unix.MS_REMOUNT|rest|lockedFlags(dest), ""); err != nil {
			return fmt.Errorf("remount %s: %w", dest, err)
		}
	}
	return nil
}

// lockedFlags are the flags of the mount at path a bind remount must keep.
func lockedFlags(path string) uintptr {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return 0
	}
	var f uintptr
	for _, m := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
		{unix.ST_RDONLY, unix.MS_RDONLY},
	} {
		if uintptr(st.Flags)&m.st != 0 {
			f |= m.ms
		}
	}
	return f
}

func remountReadonly(path string) error {
	return unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|lockedFlags(path), "")
}

func ensureFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// mountCgroup gives the container its own cgroups read-only at dest. On
// cgroup v1 that is a tmpfs with each hierarchy's container cgroup bound
// under its controller's name; on v2 a cgroup2 mount (the init is in its
// own cgroup namespace) or a bind of the container's cgroup.
func mountCgroup(cfg *initConfig, dest string, flags uintptr) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	ro := flags & unix.MS_RDONLY
	base := flags &^ (unix.MS_RDONLY | unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	own, err := cgroups.ParseCgroupFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	if cgroups.IsCgroup2UnifiedMode() {
		if cfg.CgroupNS {
			return unix.Mount("cgroup2", dest, "cgroup2", base|ro, "")
		}
		src := cfg.CgroupPaths[""]
		if src == "" {
			src = filepath.Join("/sys/fs/cgroup", own[""])
		}
		return bindMount(src, 0, dest, unix.MS_BIND|unix.MS_REC|base|ro, "")
	}
	if err := unix.Mount("tmpfs", dest, "tmpfs", base, "mode=755"); err != nil {
		return err
	}
	mounts, err := cgroups.GetCgroupMounts(false)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if len(m.Subsystems) == 0 {
			continue
		}
		// The runtime's record of the container cgroup comes first:
		// inside a cgroup namespace /proc/self/cgroup says "/".
		src, ok := cfg.CgroupPaths[m.Subsystems[0]]
		if !ok {
			rel, ok := own[m.Subsystems[0]]
			if !ok {
				continue
			}
			if r, err := filepath.Rel(m.Root, rel); err == nil && !strings.HasPrefix(r, "..") {
				rel = r
			}
			src = filepath.Join(m.Mountpoint, rel)
		}
		name := filepath.Base(m.Mountpoint)
		if err := bindMount(src, 0, filepath.Join(dest, name), unix.MS_BIND|base|ro, ""); err != nil {
			return fmt.Errorf("bind cgroup %s: %w", name, err)
		}
	}
	if ro != 0 {
		return unix.Mount("", dest, "", unix.MS_REMOUNT|base|ro, "mode=755")
	}
	return nil
}

func createDevices(rootfs string, extra []specs.LinuxDevice) error {
	devs := append(append([]specs.LinuxDevice(nil), DefaultDevices...), extra...)
	for _, d := range devs {
		dest, err := securejoin.SecureJoin(rootfs, d.Path)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
		if err := mknodDevice(dest, d); err != nil {
			return fmt.Errorf("create device %s: %w", d.Path, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
		{"pts/ptmx", "/dev/ptmx"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	for _, l := range links {
		dest := filepath.Join(rootfs, l[1])
		if err := os.Symlink(l[0], dest); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	return nil
}

func mknodDevice(dest string, d specs.LinuxDevice) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm())
	}
	switch d.Type {
	case "c", "u":
		mode |= unix.S_IFCHR
	case "b":
		mode |= unix.S_IFBLK
	case "p":
		mode |= unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	dev := unix.Mkdev(uint32(d.Major), uint32(d.Minor))
	if err := unix.Mknod(dest, mode, int(dev)); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		if !errors.Is(err, unix.EPERM) {
			return err
		}
		// No CAP_MKNOD (a user namespace): bind the host's node instead.
		if err := ensureFile(dest); err != nil {
			return err
		}
		return unix.Mount(d.Path, dest, "", unix.MS_BIND, "")
	}
	// mknod applies the umask; set the mode the spec asked for.
	if err := unix.Chmod(dest, mode&0o7777); err != nil {
		return err
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	return unix.Chown(dest, uid, gid)
}

// pivotRoot makes rootfs the process's root and detaches the old one.
func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldroot)
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("fchdir to old root: %w", err)
	}
	// The old root is the host's tree: make it a slave so the unmount
	// below does not propagate to the host, then detach it.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to new root: %w", err)
	}
	return nil
}

// maskPath hides path: /dev/null over a file, an empty read-only tmpfs
// over a directory. Paths missing in this kernel are fine.
func maskPath(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("mask %s: %w", path, err)
	}
	if fi.IsDir() {
		err = unix.Mount("tmpfs", path, "tmpfs", unix.MS_RDONLY, "")
	} else {
		err = unix.Mount("/dev/null", path, "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", path, err)
	}
	return nil
}

// readonlyPath binds path onto itself read-only.
func readonlyPath(path string) error {
	if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("make %s read-only: %w", path, err)
	}
	if err := remountReadonly(path); err != nil {
		return fmt.Errorf("make %s read-only: %w", path, err)
	}
	return nil
}
