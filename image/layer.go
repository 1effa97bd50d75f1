package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// errContent marks a failure of the content itself (a hostile or broken
// layer whose bytes the registry served faithfully): another mirror would
// serve the same bytes, so it is not asked.
var errContent = errors.New("layer content rejected")

// chainIDs computes the OCI chain IDs of a stack of diff IDs.
func chainIDs(diffIDs []digest.Digest) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d.String()
			continue
		}
		out[i] = digest.FromString(out[i-1] + " " + d.String()).String()
	}
	return out
}

// layers makes sure every layer is unpacked, downloading and unpacking
// them all at once (bounded per registry host). A layer that fails does
// not stop the others: what they verify stays for the next attempt.
func (p *pull) layers(ctx context.Context, descs []ocispec.Descriptor, refs []layerRef) error {
	stop := p.reportProgress()
	defer stop()
	errs := make([]error, len(descs))
	var wg sync.WaitGroup
	for i := range descs {
		wg.Go(func() {
			if err := p.ensureLayer(ctx, descs[i], refs[i]); err != nil {
				errs[i] = fmt.Errorf("layer %s (%d of %d): %w", descs[i].Digest, i+1, len(descs), err)
			}
		})
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case first == nil:
			first = err // returned; the others are logged
		default:
			p.log.Warn("layer failed", zap.Error(err))
		}
	}
	return first
}

// ensureLayer unpacks one layer unless its chain is already stored. Pulls
// of images sharing the layer wait for one unpack.
func (p *pull) ensureLayer(ctx context.Context, desc ocispec.Descriptor, ref layerRef) error {
	s := p.s
	return s.flights.do(ctx, "layer/"+ref.ChainID, func(ctx context.Context) (retErr error) {
		if ok, err := s.hasLayer(ref.ChainID); err != nil || ok {
			return err
		}
		id, err := s.newLayerID()
		if err != nil {
			return err
		}
		dir := s.layerDir(id)
		defer func() {
			if retErr != nil {
				if err := os.RemoveAll(dir); err != nil {
					p.log.Warn("remove failed layer", zap.String("dir", dir), zap.Error(err))
				}
			}
		}()
		var diffID string
		var size int64
		unpack := func(r io.Reader) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			if err := os.MkdirAll(s.layerFS(id), 0o755); err != nil {
				return err
			}
			failpoint.Hit(failpoint.PullLayerIngest)
			var err error
			diffID, size, err = unpackCompressed(ctx, r, s.layerFS(id), s.space)
			return err
		}
		start := time.Now()
		// One download per blob: an image may hold the same blob at two
		// places of its chain (Docker's empty layers), which are two
		// layers to unpack but one blob to fetch. Whoever does not
		// stream it unpacks it from the store afterwards.
		streamed := false
		err = s.flights.do(ctx, "blob/"+desc.Digest.String(), func(ctx context.Context) error {
			if s.hasBlob(desc.Digest) {
				return nil
			}
			streamed = true
			return p.fetchBlob(ctx, desc, unpack)
		})
		if err != nil {
			return err
		}
		stored := !streamed
		if streamed {
			failpoint.Hit(failpoint.PullLayerBlob)
		}
		if stored {
			f, err := os.Open(s.blobPath(desc.Digest.Encoded()))
			if err != nil {
				return err
			}
			err = unpack(f)
			f.Close()
			if err != nil {
				if !storeFull(err) {
					s.dropBadBlob(ctx, desc.Digest)
				}
				return fmt.Errorf("unpack stored blob: %w", err)
			}
		}
		if diffID != ref.DiffID {
			if stored {
				s.dropBadBlob(ctx, desc.Digest)
			}
			return fmt.Errorf("unpacked content has diff ID %s but the image config says %s: %w", diffID, ref.DiffID, errdefs.ErrDataLoss)
		}
		if err := syncDir(s.layerFS(id)); err != nil {
			return fmt.Errorf("sync layer: %w", err)
		}
		err = s.db.Update(func(tx *bolt.Tx) error {
			return putJSON(tx.Bucket(bucketLayers), ref.ChainID, layerRecord{
				ChainID: ref.ChainID, DiffID: ref.DiffID, Dir: id, Size: size,
				BlobDigest: desc.Digest.String(), BlobSize: desc.Size, Created: time.Now().UTC()})
		})
		if err != nil {
			return fmt.Errorf("record layer: %w", err)
		}
		failpoint.Hit(failpoint.PullLayerRecord)
		p.log.Debug("layer unpacked", zap.String("digest", desc.Digest.String()), zap.String("chain", ref.ChainID),
			zap.String("dir", id), zap.Int64("size", size), zap.Duration("duration", time.Since(start)))
		return nil
	})
}

// dropBadBlob removes a stored blob that failed to unpack, so that the
// next pull downloads it again instead of failing on it for ever. A pull
// cancelled half-way says nothing about the blob.
func (s *Store) dropBadBlob(ctx context.Context, d digest.Digest) {
	if ctx.Err() != nil {
		return
	}
	s.log.Warn("removing a stored blob that does not unpack", zap.String("digest", d.String()))
	if err := os.Remove(s.blobPath(d.Encoded())); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove blob", zap.String("digest", d.String()), zap.Error(err))
	}
}

func (s *Store) hasLayer(chainID string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		_, ok, err = getLayer(tx, chainID)
		return err
	})
	return ok, err
}

// newLayerID allocates a layer directory name: a short number, so that a
// many-layer overlay's lowerdir option stays short.
func (s *Store) newLayerID() (string, error) {
	var id string
	err := s.db.Update(func(tx *bolt.Tx) error {
		n, err := tx.Bucket(bucketLayers).NextSequence()
		id = strconv.FormatUint(n, 36)
		return err
	})
	return id, err
}

// unpackCompressed recognises the compression by its magic bytes (some
// registries label layers wrongly) and unpacks the tar stream.
func unpackCompressed(ctx context.Context, r io.Reader, dir string, space *spaceGuard) (string, int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	var tr io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", 0, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		tr = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return "", 0, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tr = zr
	}
	d, size, err := unpackLayer(ctx, tr, dir, space)
	if err != nil {
		return "", 0, err
	}
	// unpackLayer reads the tar to its end; what may follow in the
	// compressed stream is read by the caller's drain.
	return d.String(), size, nil
}
