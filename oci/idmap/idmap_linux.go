// Package idmap makes idmapped mounts: a clone of a mount whose files'
// owners are seen through a user namespace's mappings (a file owned by u
// on disk appears owned by the host ID u maps to). Berth uses them for the
// rootfs layers and the volumes of pods with a user namespace of their
// own (Kubernetes hostUsers: false).
package idmap

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrUnsupported wraps the kernel's refusal to idmap a mount (its
// filesystem does not support idmapped mounts).
var ErrUnsupported = errors.New("idmapped mounts not supported")

// Clone attaches at dst (an existing file or directory) a clone of the
// mount at src, with the submounts when recursive, idmapped through the
// user namespace usernsFd, read-only when readonly.
func Clone(src, dst string, usernsFd int, recursive, readonly bool) error {
	how := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	var setattrFlags uint
	if recursive {
		how |= unix.AT_RECURSIVE
		setattrFlags = unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, uint(how))
	if err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFd)}
	if readonly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|setattrFlags, attr); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("idmap %s: %w: %w", src, ErrUnsupported, err)
		}
		return fmt.Errorf("idmap %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach idmapped %s at %s: %w", src, dst, err)
	}
	return nil
}
