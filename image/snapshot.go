package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// PrepareSnapshot creates a container's private writable layer over imageID's
// layers. key is the container ID. imageID may also be any reference Get
// resolves. The image's layers stay stored while the snapshot exists, even
// if the image is removed.
func (s *Store) PrepareSnapshot(ctx context.Context, key, imageID string) (retErr error) {
	if err := validKey(key); err != nil {
		return err
	}
	var rec snapshotRecord
	err := s.db.Update(func(tx *bolt.Tx) error {
		if _, ok, err := getSnapshot(tx, key); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrAlreadyExists)
		}
		img, err := resolve(tx, imageID)
		if err != nil {
			return err
		}
		for _, id := range img.chainIDs() {
			if _, ok, err := getLayer(tx, id); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("image %s: layer %s is missing: %w", img.ID, id, errdefs.ErrFailedPrecondition)
			}
		}
		rec = snapshotRecord{Key: key, ImageID: img.ID, ChainIDs: img.chainIDs(), Created: time.Now().UTC()}
		return putJSON(tx.Bucket(bucketSnapshots), key, rec)
	})
	if err != nil {
		return fmt.Errorf("prepare snapshot: %w", err)
	}
	defer func() {
		if retErr != nil {
			// Bounded like sandbox's cleanups (sandbox/cleanup.go).
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := s.RemoveSnapshot(cctx, key); err != nil {
				s.log.Warn("remove failed snapshot", zap.String("container", key), zap.Error(err))
			}
		}
	}()
	dir := s.snapshotDir(key)
	for _, sub := range []string{"upper", "work"} {
		if err := os.MkdirAll(dir+"/"+sub, 0o755); err != nil {
			return fmt.Errorf("prepare snapshot %s: %w", key, err)
		}
	}
	s.invalidateUsage()
	return nil
}

// validKey keeps snapshot keys usable as one directory name.
func validKey(key string) error {
	if key == "" || key == "." || key == ".." || len(key) > 128 || strings.ContainsAny(key, "/\x00,:") {
		return fmt.Errorf("snapshot key %q: %w", key, errdefs.ErrInvalidArgument)
	}
	return nil
}

// MountSnapshot mounts snapshot key as an overlay at target.
func (s *Store) MountSnapshot(ctx context.Context, key, target string) error {
	lowers, err := s.snapshotLowers(key)
	if err != nil {
		return err
	}
	dir := s.snapshotDir(key)
	if err := mountOverlay(lowers, dir+"/upper", dir+"/work", target); err != nil {
		return fmt.Errorf("mount snapshot %s at %s: %w", key, target, err)
	}
	return nil
}

// snapshotLowers lists the snapshot's layer directories, top layer first
// as overlayfs's lowerdir wants them.
func (s *Store) snapshotLowers(key string) ([]string, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	var lowers []string
	err := s.db.View(func(tx *bolt.Tx) error {
		rec, ok, err := getSnapshot(tx, key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
		}
		for _, id := range slices.Backward(rec.ChainIDs) {
			l, ok, err := getLayer(tx, id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("snapshot %s: layer %s is missing: %w", key, id, errdefs.ErrFailedPrecondition)
			}
			lowers = append(lowers, s.layerFS(l.Dir))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(lowers) == 0 {
		// An image without layers: overlayfs needs one lower dir.
		empty := s.snapshotDir(key) + "/empty"
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return nil, err
		}
		lowers = []string{empty}
	}
	return lowers, nil
}

// UnmountSnapshot unmounts a snapshot mounted at target. An unmounted
// target is not an error.
func (s *Store) UnmountSnapshot(ctx context.Context, target string) error {
	if err := unmount(target); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// RemoveSnapshot removes a snapshot's writable layer. The caller unmounts it
// first. Removing an unknown snapshot is not an error. Layers that only this
// snapshot kept (its image was removed meanwhile) go with it.
func (s *Store) RemoveSnapshot(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	var drop []string
	s.mu.Lock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		rec, ok, err := getSnapshot(tx, key)
		if err != nil || !ok {
			return err
		}
		if err := tx.Bucket(bucketSnapshots).Delete([]byte(key)); err != nil {
			return err
		}
		drop, err = s.dropLayers(tx, rec.ChainIDs)
		return err
	})
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	defer s.invalidateUsage()
	if err := os.RemoveAll(s.snapshotDir(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	s.removeLayerDirs(drop)
	return nil
}

// dropLayers deletes the records of candidates no image, snapshot or pull
// in flight uses, and returns their directories for removal once the
// transaction commits. The caller holds s.mu, so no pull can lease a
// layer between the check and the commit.
func (s *Store) dropLayers(tx *bolt.Tx, candidates []string) ([]string, error) {
	used, err := usedLayers(tx)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, id := range candidates {
		if used[id] || s.leases[id] > 0 {
			continue
		}
		l, ok, err := getLayer(tx, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := tx.Bucket(bucketLayers).Delete([]byte(id)); err != nil {
			return nil, err
		}
		dirs = append(dirs, l.Dir)
	}
	return dirs, nil
}

func (s *Store) removeLayerDirs(dirs []string) {
	for _, d := range dirs {
		if err := os.RemoveAll(s.layerDir(d)); err != nil {
			// start-up cleanup removes it once nothing holds it
			s.log.Warn("remove layer directory", zap.String("dir", d), zap.Error(err))
		}
	}
}
