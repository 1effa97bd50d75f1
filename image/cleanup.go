package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// orphanAge is how long verified blobs and layers that no image uses (a
// pull that failed part-way) are kept for the next attempt.
const orphanAge = 24 * time.Hour

// cleanup runs at start-up, before any pull: it removes downloads and
// unpacks an interrupted berthd left half-done, snapshot directories whose
// record is gone, and verified content no image has used for orphanAge.
func (s *Store) cleanup(ctx context.Context) error {
	ingest := filepath.Join(s.root, dirIngest)
	entries, err := os.ReadDir(ingest)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(ingest, e.Name())); err != nil {
			return err
		}
	}

	layerDirs := map[string]bool{}
	snapshots := map[string]bool{}
	var staleLayers []string
	var blobs map[string]bool
	err = s.db.Update(func(tx *bolt.Tx) error {
		used, err := usedLayers(tx)
		if err != nil {
			return err
		}
		err = eachJSON(tx.Bucket(bucketLayers), func(l layerRecord) error {
			if !used[l.ChainID] && time.Since(l.Created) > orphanAge {
				staleLayers = append(staleLayers, l.ChainID)
				return nil
			}
			layerDirs[l.Dir] = true
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range staleLayers {
			if err := tx.Bucket(bucketLayers).Delete([]byte(id)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
			snapshots[string(k)] = true
			return nil
		}); err != nil {
			return err
		}
		blobs, err = usedBlobs(tx)
		return err
	})
	if err != nil {
		return err
	}

	removeUnlisted := func(dir string, keep map[string]bool, what string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if keep[e.Name()] {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if err := os.RemoveAll(path); err != nil {
				s.log.Warn("remove leftover "+what, zap.String("path", path), zap.Error(err))
				continue
			}
			s.log.Info("removed leftover "+what, zap.String("path", path))
		}
		return nil
	}
	if err := removeUnlisted(filepath.Join(s.root, dirLayers), layerDirs, "layer"); err != nil {
		return err
	}
	if err := removeUnlisted(filepath.Join(s.root, dirSnapshots), snapshots, "snapshot"); err != nil {
		return err
	}

	dir := filepath.Join(s.root, dirBlobs)
	entries, err = os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if blobs[d.String()] {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		if d.Validate() == nil && time.Since(info.ModTime()) <= orphanAge {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove unused blob: %w", err)
		}
	}
	return nil
}
