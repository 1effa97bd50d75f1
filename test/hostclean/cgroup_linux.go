package hostclean

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// cgroupMount is where hosts mount their cgroup hierarchies: the v2 root
// itself, or one directory per v1 hierarchy plus "unified" for v2.
const cgroupMount = "/sys/fs/cgroup"

// Removing a cgroup whose last process was just killed fails with EBUSY
// until the kernel has finished the exit; rmdirRetries × rmdirInterval
// bounds that wait.
const (
	rmdirRetries  = 100
	rmdirInterval = 50 * time.Millisecond
)

// Hierarchies lists the directories where the host's cgroup hierarchies are
// mounted under /sys/fs/cgroup: every v1 hierarchy and the unified (v2)
// one on a v1 or hybrid host, /sys/fs/cgroup itself on a pure v2 host. It
// reads the mount table rather than listing /sys/fs/cgroup, because v1
// hosts often link co-mounted controllers ("cpu" -> "cpu,cpuacct"), and a
// listing would visit such a hierarchy, and report its cgroups, twice.
func Hierarchies() ([]string, error) {
	infos, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.FSType != "cgroup" && m.FSType != "cgroup2", false
	})
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range infos {
		if m.Mountpoint != cgroupMount && !strings.HasPrefix(m.Mountpoint, cgroupMount+"/") || seen[m.Mountpoint] {
			continue
		}
		seen[m.Mountpoint] = true
		out = append(out, m.Mountpoint)
	}
	return out, nil
}

// CgroupPaths returns the directories of the cgroup parent (a cgroupfs
// path such as "/berth-bench-42", or a systemd slice's expanded path) in
// every hierarchy, whether or not they exist.
// The root cgroup is refused: cleaning it would kill every process on the
// host.
func CgroupPaths(parent string) ([]string, error) {
	rel := filepath.Clean("/" + parent)
	if rel == "/" {
		return nil, fmt.Errorf("cgroup parent %q is the root cgroup", parent)
	}
	hier, err := Hierarchies()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(hier))
	for _, h := range hier {
		out = append(out, filepath.Join(h, rel))
	}
	return out, nil
}

// CgroupDirs lists the cgroup directories at and below parent in every
// hierarchy, deepest first, the order in which RemoveCgroups can remove
// them. A parent that is nowhere yields none.
func CgroupDirs(parent string) ([]string, error) {
	tops, err := CgroupPaths(parent)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, top := range tops {
		// A cgroup removed while we walk is no error: it is gone.
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	deepestFirst(out)
	return out, nil
}

// RemoveCgroupTree removes the cgroup parent and every cgroup below it in
// every hierarchy, killing what is inside (see RemoveCgroups).
func RemoveCgroupTree(parent string) error {
	dirs, err := CgroupDirs(parent)
	if err != nil {
		return err
	}
	return RemoveCgroups(dirs)
}

// RemoveCgroups removes the cgroup directories dirs, which must come
// deepest first (as CgroupDirs lists them), killing what is in each. It
// thaws them all before killing anything: a process frozen through one
// hierarchy's cgroup does not die, and so keeps every other hierarchy's
// cgroup of it busy, until it is thawed. It goes on past a failure and
// returns every one.
func RemoveCgroups(dirs []string) error {
	for _, dir := range dirs {
		thaw(dir)
	}
	var errs []error
	for _, dir := range dirs {
		if err := RemoveCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveCgroup kills the processes in the cgroup directory dir and removes
// it, retrying while the kernel still counts a dying process in it. A
// cgroup that is already gone is removed. dir must have no child cgroups;
// a frozen dir must be thawed first (RemoveCgroups does both).
func RemoveCgroup(dir string) error {
	var err error
	for range rmdirRetries {
		// Re-read every time: a process may have forked since.
		killProcs(dir)
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(rmdirInterval)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// killProcs sends SIGKILL to every process in the cgroup directory dir.
func killProcs(dir string) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// thaw unfreezes the cgroup directory dir if it is frozen: through the v1
// freezer's freezer.state or v2's cgroup.freeze, whichever it has. A
// cgroup of neither kind is left alone.
func thaw(dir string) {
	if _, err := os.Stat(filepath.Join(dir, "freezer.state")); err == nil {
		os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err == nil {
		os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
	}
}
