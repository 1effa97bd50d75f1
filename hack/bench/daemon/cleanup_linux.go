package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// cgroupMount is where the machine mounts its cgroup hierarchies: one
// directory per v1 controller and "unified" (or the v2 root itself).
const cgroupMount = "/sys/fs/cgroup"

// removeCgroups removes the cgroup parent root (a cgroupfs path such as
// "/berth-bench-42") in every hierarchy, deepest first, killing what is
// still inside.
func removeCgroups(root string) error {
	var dirs []string
	if _, err := os.Stat(filepath.Join(cgroupMount, "cgroup.procs")); err == nil {
		dirs = append(dirs, filepath.Join(cgroupMount, root)) // pure v2
	} else {
		ents, err := os.ReadDir(cgroupMount)
		if err != nil {
			return fmt.Errorf("list cgroup hierarchies: %w", err)
		}
		for _, e := range ents {
			dirs = append(dirs, filepath.Join(cgroupMount, e.Name(), root))
		}
	}
	var errs []error
	for _, top := range dirs {
		var all []string
		filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, path)
			}
			return nil
		})
		sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
		for _, dir := range all {
			if err := rmdirCgroup(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// rmdirCgroup kills the processes in one cgroup and removes it; a cgroup
// whose last process is still exiting refuses rmdir with EBUSY for a moment.
func rmdirCgroup(dir string) error {
	var err error
	for i := 0; i < 100; i++ {
		if data, rerr := os.ReadFile(filepath.Join(dir, "cgroup.procs")); rerr == nil {
			for _, f := range strings.Fields(string(data)) {
				if pid, perr := strconv.Atoi(f); perr == nil {
					unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	var errs []error
	for attempt := 0; attempt < 3; attempt++ {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, m := range mounts {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	if mounts, err := mountsUnder(dir); err == nil && len(mounts) > 0 {
		errs = append(errs, fmt.Errorf("mounts left under %s: %s", dir, strings.Join(mounts, ", ")))
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	out := make([]string, 0, len(infos))
	for _, m := range infos {
		out = append(out, m.Mountpoint)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// Leftovers lists what a stopped daemon left: mounts under dir and cgroups
// under root. The benchmark's test uses it to prove cleanup.
func Leftovers(dir, cgroupRoot string) []string {
	var left []string
	if mounts, err := mountsUnder(dir); err == nil {
		for _, m := range mounts {
			left = append(left, "mount "+m)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	if cgroupRoot != "" {
		matches, _ := filepath.Glob(filepath.Join(cgroupMount, "*", cgroupRoot))
		if m, err := os.Stat(filepath.Join(cgroupMount, cgroupRoot)); err == nil && m.IsDir() {
			matches = append(matches, filepath.Join(cgroupMount, cgroupRoot))
		}
		for _, m := range matches {
			left = append(left, "cgroup "+m)
		}
	}
	return left
}
