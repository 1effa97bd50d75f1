package sandbox

// A container's log file lives at log_path beneath its pod's
// log_directory. The directory is kubelet's choice and is followed like a
// mount's host path; log_path is a CRI string and must not leave it. It is
// checked lexically (checkLogPath) and then opened component by component
// from a descriptor of the directory with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), so that neither ".." nor a symlink, there at
// create time or swapped in before a reopen, takes it elsewhere. The C
// monitor opens it the same way (monitorc/log.c).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// checkLogPath refuses a log_path that is absolute or climbs out of the
// log directory once cleaned.
func checkLogPath(rel string) error {
	if filepath.IsAbs(rel) {
		return fmt.Errorf("log path %q is absolute, not relative to the pod's log directory: %w", rel, errdefs.ErrInvalidArgument)
	}
	c := filepath.Clean(rel)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("log path %q is not a file beneath the pod's log directory: %w", rel, errdefs.ErrInvalidArgument)
	}
	return nil
}

// openBeneath opens rel beneath dir for appending, creating it and its
// parent directories (and dir itself) as needed. A symlink or ".." in rel
// is an error wrapping errdefs.ErrInvalidArgument.
func openBeneath(dir, rel string) (*os.File, error) {
	if err := checkLogPath(rel); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer func() { unix.Close(fd) }()
	how := func(flags int) *unix.OpenHow {
		h := &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		if flags&unix.O_CREAT != 0 {
			h.Mode = 0o640 // openat2 refuses a mode without O_CREAT
		}
		return h
	}
	parts := strings.Split(filepath.Clean(rel), "/")
	at := dir
	for _, p := range parts[:len(parts)-1] {
		at = filepath.Join(at, p)
		if err := unix.Mkdirat(fd, p, 0o755); err != nil && err != unix.EEXIST {
			return nil, &os.PathError{Op: "mkdir", Path: at, Err: err}
		}
		next, err := unix.Openat2(fd, p, how(unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC))
		if err != nil {
			return nil, beneathError(at, err)
		}
		unix.Close(fd)
		fd = next
	}
	at = filepath.Join(at, parts[len(parts)-1])
	f, err := unix.Openat2(fd, parts[len(parts)-1], how(unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC))
	if err != nil {
		return nil, beneathError(at, err)
	}
	return os.NewFile(uintptr(f), at), nil
}

// splitLogPath is the log directory and the path beneath it of a log at
// path; a dir of "" (a record from before Berth kept it) is path's own
// directory.
func splitLogPath(dir, path string) (string, string) {
	if dir == "" {
		return filepath.Dir(path), filepath.Base(path)
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return filepath.Dir(path), filepath.Base(path)
	}
	return dir, rel
}

// beneathError names a symlink or escape for what it is.
func beneathError(path string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("open %s: a symlink is in the way, and log files are not opened through symlinks: %w", path, errdefs.ErrInvalidArgument)
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}
