package image

// Idmapped rootfs layers for a container in a user namespace of its own
// (Kubernetes hostUsers: false).
//
// The image's files are stored owned by the IDs in the image (root: 0). A
// container whose root is uid H on the host must see them owned by its
// root, without a chown copy of every layer per mapping. So each lower
// layer is cloned (open_tree OPEN_TREE_CLONE), the clone idmapped through
// the container's user namespace (mount_setattr MOUNT_ATTR_IDMAP: a file
// owned by u on disk appears owned by H+u) and attached at a scratch dir
// (move_mount), and the overlay is built from the clones: on Linux 5.19 to
// 6.14 overlayfs finds its layers by path in the mounter's mount
// namespace, so a detached clone cannot be named through /proc/self/fd.
// The overlay keeps private copies of its layers, so the scratch mounts go
// once it is mounted. The upper dir is plain, owned by H:G: what the
// container writes is stored with its host IDs, and copy-up keeps the
// owner seen through the idmapped lower (H+u).
//
// Needs idmapped mounts on the layers' filesystem (ext4, xfs, btrfs, tmpfs
// since 6.3) and idmapped overlay layers (Linux 5.19).

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berth-runtime/berth/oci/idmap"
)

// MountSnapshotIDMapped mounts snapshot key at target as MountSnapshot
// does, its layers idmapped through the user namespace at userns (a
// /proc/<pid>/ns/user file or a pin of one), whose root is uid:gid on the
// host. See the file comment.
func (s *Store) MountSnapshotIDMapped(key, target, userns string, uid, gid uint32) error {
	lowers, err := s.snapshotLowers(key)
	if err != nil {
		return err
	}
	dir := s.snapshotDir(key)
	if err := os.Chown(dir+"/upper", int(uid), int(gid)); err != nil {
		return fmt.Errorf("mount snapshot %s: %w", key, err)
	}
	ns, err := os.Open(userns)
	if err != nil {
		return fmt.Errorf("mount snapshot %s: user namespace: %w", key, err)
	}
	defer ns.Close()
	if err := mountOverlayIDMapped(lowers, dir+"/upper", dir+"/work", target, dir+"/idmap", int(ns.Fd())); err != nil {
		return fmt.Errorf("mount snapshot %s at %s: %w", key, target, err)
	}
	return nil
}

// mountOverlayIDMapped is mountOverlay with each lower seen through an
// idmapped clone of it, attached below scratch while the overlay is
// built.
func mountOverlayIDMapped(lowers []string, upper, work, target, scratch string, usernsFd int) error {
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	defer os.Remove(scratch)
	var clones []string
	defer func() {
		for _, c := range clones {
			_ = unmount(c)
			os.Remove(c)
		}
	}()
	for i, l := range lowers {
		dst := filepath.Join(scratch, strconv.Itoa(i))
		if err := os.Mkdir(dst, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
		clones = append(clones, dst)
		if err := idmap.Clone(l, dst, usernsFd, false, true); err != nil {
			return err
		}
	}
	return mountOverlay(clones, upper, work, target)
}
