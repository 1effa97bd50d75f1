package image

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// SnapshotUsage reports the blocks and inodes of snapshot key's writable
// layer (its upper directory), counted as FsInfo counts them. Mountpoint
// is the containers' filesystem FsInfo reports, so that kubelet matches
// the two. It walks the layer on every call: the caller bounds how often.
// A snapshot that is gone (its container was removed meanwhile) counts 0.
func (s *Store) SnapshotUsage(ctx context.Context, key string) (Filesystem, error) {
	if err := validKey(key); err != nil {
		return Filesystem{}, err
	}
	now := time.Now()
	b, i, err := diskUsage(ctx, filepath.Join(s.snapshotDir(key), "upper"), "")
	if err != nil {
		return Filesystem{}, fmt.Errorf("usage of snapshot %s: %w", key, err)
	}
	return Filesystem{Mountpoint: filepath.Join(s.root, dirSnapshots), UsedBytes: b, InodesUsed: i, Timestamp: now}, nil
}
