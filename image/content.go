package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

func (s *Store) hasBlob(d digest.Digest) bool {
	st, err := os.Stat(s.blobPath(d.Encoded()))
	return err == nil && st.Mode().IsRegular()
}

// readBlob reads a small stored blob (manifest, config).
func (s *Store) readBlob(d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", d, errdefs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(s.blobPath(d.Encoded()))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return data, err
}

// writeBlob stores content whose digest the caller has checked.
func (s *Store) writeBlob(d digest.Digest, data []byte) error {
	if s.hasBlob(d) {
		return nil
	}
	ing, err := s.newIngest(d)
	if err != nil {
		return err
	}
	defer ing.abort()
	if err := s.space.check(int64(len(data))); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	if _, err := ing.f.Write(data); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	return ing.commit()
}

// ingest is a blob being written: a temporary file under ingest/ that
// becomes blobs/sha256/<hex> only through commit.
type ingest struct {
	s    *Store
	d    digest.Digest
	f    *os.File
	done bool
}

func (s *Store) newIngest(d digest.Digest) (*ingest, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	f, err := os.OpenFile(filepath.Join(s.root, dirIngest, d.Encoded()+"-"+hex.EncodeToString(rnd[:])),
		os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", d, err)
	}
	return &ingest{s: s, d: d, f: f}, nil
}

// commit makes the verified content durable and visible.
func (i *ingest) commit() error {
	if err := i.f.Sync(); err != nil {
		return fmt.Errorf("ingest %s: sync: %w", i.d, err)
	}
	if err := i.f.Close(); err != nil {
		return fmt.Errorf("ingest %s: %w", i.d, err)
	}
	if err := os.Rename(i.f.Name(), i.s.blobPath(i.d.Encoded())); err != nil {
		return fmt.Errorf("ingest %s: %w", i.d, err)
	}
	i.done = true
	return nil
}

// abort drops the temporary file unless commit ran.
func (i *ingest) abort() {
	if !i.done {
		i.f.Close()
		os.Remove(i.f.Name())
		i.done = true
	}
}

// blobReader reads a blob's stream once: it hashes and counts the bytes,
// copies them to the ingest file, and remembers a failure of the network
// or of the disk apart from whatever the consumer makes of the bytes.
type blobReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	w        io.Writer
	progress *atomic.Int64
	readErr  error
	writeErr error
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.writeErr != nil {
		return 0, b.writeErr
	}
	n, err := b.r.Read(p)
	if n > 0 {
		b.h.Write(p[:n])
		b.n += int64(n)
		if b.progress != nil {
			b.progress.Store(b.n)
		}
		if _, werr := b.w.Write(p[:n]); werr != nil {
			b.writeErr = fmt.Errorf("write: %w", werr)
			return n, b.writeErr
		}
	}
	if err != nil && err != io.EOF {
		b.readErr = err
	}
	return n, err
}

// drain reads the rest of the stream so that the digest covers all of it.
func (b *blobReader) drain(ctx context.Context) {
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		if _, err := b.Read(buf); err != nil {
			return
		}
	}
}

// verify checks what was read against the descriptor.
func (b *blobReader) verify(want digest.Digest, size int64) error {
	if b.n != size {
		if b.n < size {
			return fmt.Errorf("stream ended after %d of %d bytes: %w", b.n, size, errdefs.ErrDataLoss)
		}
		return fmt.Errorf("blob is larger than the %d bytes its manifest says: %w", size, errdefs.ErrDataLoss)
	}
	if got := digest.NewDigest(want.Algorithm(), b.h); got != want {
		return fmt.Errorf("content has digest %s: %w", got, errdefs.ErrDataLoss)
	}
	return nil
}
