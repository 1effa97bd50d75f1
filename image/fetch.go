package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fetchBlob streams a blob from the first endpoint that serves it, handing
// the bytes to consume while they are copied to the ingest file and
// hashed. The blob is stored only when its digest and size match; if
// consume fails on bytes that do match (a hostile layer), the error is
// marked errContent and no other endpoint is asked.
func (p *pull) fetchBlob(ctx context.Context, desc ocispec.Descriptor, consume func(io.Reader) error) error {
	if err := p.s.space.check(desc.Size); err != nil {
		return fmt.Errorf("download of %d bytes: %w", desc.Size, err)
	}
	prog := p.track(desc)
	defer prog.finish()
	return p.eachEndpoint(ctx, "fetch", func(ep *endpoint) bool { return ep.pull }, func(c *client) error {
		release, err := p.s.slot(ctx, c.ep.host())
		if err != nil {
			return err
		}
		defer release()
		body, err := c.blob(ctx, desc.Digest)
		if err != nil {
			return err
		}
		defer body.Close()
		ing, err := p.s.newIngest(desc.Digest)
		if err != nil {
			return err
		}
		defer ing.abort()
		br := &blobReader{r: io.LimitReader(body, desc.Size+1), h: sha256.New(),
			w: guardedWriter{p.s.space, ing.f}, progress: &prog.done}
		cerr := consume(br)
		if storeFull(cerr) {
			return noSpace(cerr) // downloading the rest would not fit either
		}
		br.drain(ctx)
		switch {
		case br.readErr != nil:
			return fmt.Errorf("download after %d of %d bytes: %w", br.n, desc.Size, br.readErr)
		case br.writeErr != nil:
			return noSpace(br.writeErr)
		}
		if err := br.verify(desc.Digest, desc.Size); err != nil {
			return err
		}
		if cerr != nil {
			return fmt.Errorf("%w: %w", errContent, cerr)
		}
		failpoint.Hit(failpoint.PullLayerUnpacked)
		return ing.commit()
	})
}

// smallBlob reads a config (or other small blob) from the store or a
// registry, storing it once verified.
func (p *pull) smallBlob(ctx context.Context, desc ocispec.Descriptor, what string) ([]byte, error) {
	if data, err := p.s.readBlob(desc.Digest); err == nil {
		return data, nil
	}
	if desc.Size > maxManifest || desc.Size < 0 {
		return nil, fmt.Errorf("%s %s: size %d is out of bounds: %w", what, desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	var data []byte
	err := p.s.flights.do(ctx, "blob/"+desc.Digest.String(), func(ctx context.Context) error {
		if p.s.hasBlob(desc.Digest) {
			return nil
		}
		return p.fetchBlob(ctx, desc, func(r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, desc.Digest, err)
	}
	if data, err = p.s.readBlob(desc.Digest); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, desc.Digest, err)
	}
	return data, nil
}

// slot waits for one of the host's download slots.
func (s *Store) slot(ctx context.Context, host string) (func(), error) {
	s.mu.Lock()
	ch, ok := s.slots[host]
	if !ok {
		ch = make(chan struct{}, s.cfg.MaxConcurrentDownloads)
		s.slots[host] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
