package image

// An image's size is what the store holds for it, never what its manifest
// claims: kubelet's image garbage collection decides on the number, and a
// manifest that reuses a stored layer could otherwise declare it as
// 2^62 bytes. A declared size that disagrees with a blob the store has
// already verified is a lie, and the pull is refused. Blobs downloaded by
// this pull are verified against the declared size as they arrive.

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// verifiedBlobSize is the size of the verified blob d as the store knows
// it: the stored blob's, else the size recorded when layer chainID was
// unpacked from it. ok is false when the store knows neither.
func (s *Store) verifiedBlobSize(d digest.Digest, chainID string) (size int64, ok bool, err error) {
	if st, err := os.Stat(s.blobPath(d.Encoded())); err == nil && st.Mode().IsRegular() {
		return st.Size(), true, nil
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		rec, found, err := getLayer(tx, chainID)
		if err != nil || !found {
			return err
		}
		if rec.BlobDigest == d.String() && rec.BlobSize > 0 {
			size, ok = rec.BlobSize, true
		}
		return nil
	})
	return size, ok, err
}

// checkDeclaredSizes refuses a manifest whose layers declare sizes other
// than those of blobs the store has verified. A stored blob of another
// size is hashed first: one that rotted is dropped (and fetched again),
// not held against the manifest.
func (s *Store) checkDeclaredSizes(ctx context.Context, manifest digest.Digest, descs []ocispec.Descriptor, refs []layerRef) error {
	for i, l := range descs {
		size, ok, err := s.verifiedBlobSize(l.Digest, refs[i].ChainID)
		if err != nil {
			return err
		}
		if ok && size != l.Size && !s.blobIntact(l.Digest) {
			s.dropBadBlob(ctx, l.Digest)
			if size, ok, err = s.verifiedBlobSize(l.Digest, refs[i].ChainID); err != nil {
				return err
			}
		}
		if ok && size != l.Size {
			return fmt.Errorf("manifest %s: layer %d (%s) declares %d bytes, but the verified blob has %d: %w",
				manifest, i+1, l.Digest, l.Size, size, errdefs.ErrDataLoss)
		}
	}
	return nil
}

// blobIntact reports whether the stored blob d (if any) still hashes to d.
func (s *Store) blobIntact(d digest.Digest) bool {
	f, err := os.Open(s.blobPath(d.Encoded()))
	if err != nil {
		return true // not stored: nothing rotted
	}
	defer f.Close()
	v := d.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return false
	}
	return v.Verified()
}

// storedSize is the image's size from the store once its layers are
// there: the config's bytes and every layer's verified blob. A layer whose
// blob the store no longer has nor recorded (unpacked by a Berth that did
// not record it) counts no more than its unpacked size.
func (s *Store) storedSize(config []byte, descs []ocispec.Descriptor, refs []layerRef) (uint64, error) {
	total := uint64(len(config))
	for i, l := range descs {
		size, ok, err := s.verifiedBlobSize(l.Digest, refs[i].ChainID)
		if err != nil {
			return 0, err
		}
		if !ok {
			size = l.Size
			err := s.db.View(func(tx *bolt.Tx) error {
				rec, found, err := getLayer(tx, refs[i].ChainID)
				if found && rec.Size < size {
					size = rec.Size
				}
				return err
			})
			if err != nil {
				return 0, err
			}
		}
		total += uint64(size)
	}
	return total, nil
}
