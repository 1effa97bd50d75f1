package hostclean

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// unmountAttempts bounds the passes Unmount makes: a pass can miss a mount
// that appeared (or was propagated) while it ran.
const unmountAttempts = 3

// Mounts lists the mount points at or below dir, deepest first, so that
// detaching them in order never detaches a parent before its children. A
// mount stacked on another at the same point appears once per mount.
func Mounts(dir string) ([]string, error) {
	// The kernel reports mount points with symlinks resolved (a temporary
	// directory may sit below one).
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	out := make([]string, 0, len(infos))
	for _, m := range infos {
		out = append(out, m.Mountpoint)
	}
	deepestFirst(out)
	return out, nil
}

// Unmount detaches every mount at or below dir, deepest first, and fails
// if any is left. It detaches lazily (MNT_DETACH): what is left behind is
// unreachable and has no process to wait for.
func Unmount(dir string) error {
	var errs []error
	for range unmountAttempts {
		mounts, err := Mounts(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, m := range mounts {
			// EINVAL: no longer a mount point (it went with its parent or a
			// stacked twin); ENOENT: the directory itself is gone.
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	if mounts, err := Mounts(dir); err == nil && len(mounts) > 0 {
		errs = append(errs, fmt.Errorf("mounts left under %s: %s", dir, strings.Join(mounts, ", ")))
	}
	return errors.Join(errs...)
}

// deepestFirst orders paths so that every path comes before its
// ancestors: a descendant's path is always the longer. Equal lengths sort
// by name, so listings compare.
func deepestFirst(paths []string) {
	sort.SliceStable(paths, func(i, j int) bool {
		if len(paths[i]) != len(paths[j]) {
			return len(paths[i]) > len(paths[j])
		}
		return paths[i] < paths[j]
	})
}
