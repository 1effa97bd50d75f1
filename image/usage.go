package image

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// usageMaxAge bounds how long FsInfo reuses a walk: kubelet asks often,
// and walking many layers is not free. A pull or remove invalidates it.
const usageMaxAge = 10 * time.Second

type usageCache struct {
	images, containers Filesystem
}

// FsInfo reports the image filesystem and the containers' writable layers.
// The image filesystem is the store without the snapshots: blobs, layers,
// database; the containers' one is snapshots/.
func (s *Store) FsInfo(ctx context.Context) (images, containers []Filesystem, err error) {
	s.mu.Lock()
	c := s.usage
	s.mu.Unlock()
	if c == nil || time.Since(c.images.Timestamp) > usageMaxAge {
		snapshots := filepath.Join(s.root, dirSnapshots)
		now := time.Now()
		ib, ii, err := diskUsage(ctx, s.root, snapshots)
		if err != nil {
			return nil, nil, err
		}
		cb, ci, err := diskUsage(ctx, snapshots, "")
		if err != nil {
			return nil, nil, err
		}
		c = &usageCache{
			images:     Filesystem{Mountpoint: s.root, UsedBytes: ib, InodesUsed: ii, Timestamp: now},
			containers: Filesystem{Mountpoint: snapshots, UsedBytes: cb, InodesUsed: ci, Timestamp: now},
		}
		s.mu.Lock()
		s.usage = c
		s.mu.Unlock()
	}
	return []Filesystem{c.images}, []Filesystem{c.containers}, nil
}

func (s *Store) invalidateUsage() {
	s.mu.Lock()
	s.usage = nil
	s.mu.Unlock()
}

// diskUsage counts the blocks and inodes below root as du does (a
// hardlinked inode once), skipping the subtree skip.
func diskUsage(ctx context.Context, root, skip string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if path == skip {
			return filepath.SkipDir
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		bytes += uint64(st.Blocks) * 512
		inodes++
		return nil
	})
	return bytes, inodes, err
}
