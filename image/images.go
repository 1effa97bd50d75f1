package image

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Get resolves an image ID, ID prefix, tag or digest reference.
func (s *Store) Get(ctx context.Context, ref string) (Image, error) {
	var rec imageRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = resolve(tx, ref)
		return err
	})
	if err != nil {
		return Image{}, err
	}
	return s.toImage(rec), nil
}

// List returns every image.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	var out []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		return eachJSON(tx.Bucket(bucketImages), func(rec imageRecord) error {
			out = append(out, s.toImage(rec))
			return nil
		})
	})
	return out, err
}

// ConfigJSON returns the image's config blob as the registry served it
// (ImageStatus shows it with verbose).
func (s *Store) ConfigJSON(ctx context.Context, imageID string) ([]byte, error) {
	img, err := s.Get(ctx, imageID)
	if err != nil {
		return nil, err
	}
	return s.readBlob(digest.Digest(img.ID))
}

func (s *Store) toImage(rec imageRecord) Image {
	img := Image{
		ID:          rec.ID,
		RepoTags:    slices.Clone(rec.RepoTags),
		RepoDigests: slices.Clone(rec.RepoDigests),
		Size:        rec.Size,
		Config:      rec.Config,
		ChainIDs:    rec.chainIDs(),
	}
	for _, r := range append(slices.Clone(rec.RepoTags), rec.RepoDigests...) {
		if s.pinned[r] {
			img.Pinned = true
		}
	}
	return img
}

// Remove removes a reference to an image, and the image once no reference is
// left. Removing an unknown image is not an error.
//
// A tag is removed alone while the image has other tags; an ID, a digest
// reference or an image's last tag removes the image with all its
// references. Its layers and blobs go unless another image, a container's
// snapshot or a pull in flight still uses them.
func (s *Store) Remove(ctx context.Context, ref string) error {
	var layerDirs, blobs []string
	var removed string
	s.mu.Lock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		rec, err := resolve(tx, ref)
		if errdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		refs := tx.Bucket(bucketRefs)
		if r, err := ParseReference(ref); err == nil && r.Tag != "" && len(rec.RepoTags) > 1 &&
			string(refs.Get([]byte(r.String()))) == rec.ID {
			rec.RepoTags = slices.DeleteFunc(rec.RepoTags, func(t string) bool { return t == r.String() })
			if err := refs.Delete([]byte(r.String())); err != nil {
				return err
			}
			return putJSON(tx.Bucket(bucketImages), rec.ID, rec)
		}
		for _, r := range append(slices.Clone(rec.RepoTags), rec.RepoDigests...) {
			if string(refs.Get([]byte(r))) == rec.ID {
				if err := refs.Delete([]byte(r)); err != nil {
					return err
				}
			}
		}
		if err := tx.Bucket(bucketImages).Delete([]byte(rec.ID)); err != nil {
			return err
		}
		removed = rec.ID
		if layerDirs, err = s.dropLayers(tx, rec.chainIDs()); err != nil {
			return err
		}
		used, err := usedBlobs(tx)
		if err != nil {
			return err
		}
		for _, b := range rec.Blobs {
			if !used[b] && s.leases[b] == 0 {
				blobs = append(blobs, b)
			}
		}
		return nil
	})
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	if removed == "" {
		return nil
	}
	defer s.invalidateUsage()
	s.removeLayerDirs(layerDirs)
	for _, b := range blobs {
		d := digest.Digest(b)
		if d.Validate() != nil {
			continue
		}
		if err := os.Remove(s.blobPath(d.Encoded())); err != nil && !os.IsNotExist(err) {
			s.log.Warn("remove blob", zap.String("digest", b), zap.Error(err))
		}
	}
	s.log.Info("image removed", zap.String("image", removed), zap.String("ref", ref))
	return nil
}
