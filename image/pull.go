package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Pull fetches ref and returns the image's ID.
//
// The manifest is resolved through the registry's mirrors and server in
// hosts.toml order; every layer is then downloaded and unpacked at once,
// each while it streams. Nothing becomes visible until it is verified: a
// blob is stored only once its digest and size match, a layer only once
// its diff ID matches the config, and the image only once all its layers
// are there. Verified blobs and layers stay for the next attempt when a
// pull fails.
func (s *Store) Pull(ctx context.Context, ref string, auth *Auth) (string, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	start := time.Now()
	log := s.log.With(zap.String("image", r.String()))
	eps, err := endpoints(s.cfg.ConfigPath, r.Registry)
	if err != nil {
		return "", fmt.Errorf("pull %s: registry configuration: %w", r, err)
	}
	p := &pull{s: s, ref: r, auth: auth, log: log, eps: eps, clients: map[*endpoint]*clientResult{}}
	defer p.close()
	id, err := p.run(ctx)
	err = noSpace(err)
	observePull(p.downloaded(), time.Since(start), err)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", r, err)
	}
	log.Info("image pulled", zap.String("id", id), zap.Duration("duration", time.Since(start)),
		zap.Int64("downloaded", p.downloaded()))
	return id, nil
}

// pull is one Pull in progress.
type pull struct {
	s    *Store
	ref  Reference
	auth *Auth
	log  *zap.Logger
	eps  []*endpoint

	// mu guards the endpoints' clients (connected once per pull) and the
	// layers' progress.
	mu       sync.Mutex
	clients  map[*endpoint]*clientResult
	progress []*layerProgress
}

type clientResult struct {
	c   *client
	err error
}

func (p *pull) close() {
	for _, r := range p.clients {
		if r.c != nil {
			r.c.close()
		}
	}
}

// client connects to ep once per pull; an endpoint that failed to connect
// is not asked again.
func (p *pull) client(ctx context.Context, ep *endpoint) (*client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.clients[ep]; ok {
		return r.c, r.err
	}
	c, err := p.s.newClient(ctx, ep, p.ref, p.auth)
	if err != nil && ctx.Err() != nil {
		return nil, err // not the endpoint's fault
	}
	p.clients[ep] = &clientResult{c, err}
	return c, err
}

// eachEndpoint calls fn with the client of every endpoint that has the
// capability, in order, until one succeeds. The error names every
// endpoint's failure and carries the class of the last.
func (p *pull) eachEndpoint(ctx context.Context, what string, capable func(*endpoint) bool, fn func(*client) error) error {
	var msgs []string
	var last error
	for _, ep := range p.eps {
		if !capable(ep) {
			continue
		}
		c, err := p.client(ctx, ep)
		if err == nil {
			err = fn(c)
			if err == nil {
				return nil
			}
			err = fmt.Errorf("from %s: %w", ep, err)
		}
		if ctx.Err() != nil || errors.Is(err, errContent) || storeFull(err) {
			return err
		}
		if p.s.log.Core().Enabled(zap.DebugLevel) {
			p.log.Debug("endpoint failed", zap.String("endpoint", ep.String()), zap.String("what", what), zap.Error(err))
		}
		if last != nil {
			msgs = append(msgs, last.Error())
		}
		last = err
	}
	if last == nil {
		return fmt.Errorf("%s: no registry endpoint may serve it (check capabilities in hosts.toml): %w", what, errdefs.ErrFailedPrecondition)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s: %s; %w", what, strings.Join(msgs, "; "), last)
	}
	return fmt.Errorf("%s: %w", what, last)
}

func (p *pull) run(ctx context.Context) (string, error) {
	desc, body, err := p.resolve(ctx)
	if err != nil {
		return "", err
	}
	blobs := []string{desc.Digest.String()}
	repoDigest := p.ref.Name() + "@" + desc.Digest.String()
	for depth := 0; isIndex(desc.MediaType); depth++ {
		if depth == 2 {
			return "", fmt.Errorf("index %s: indexes nested too deep: %w", desc.Digest, errdefs.ErrInvalidArgument)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return "", fmt.Errorf("index %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		child, err := choosePlatform(idx.Manifests, hostPlatform())
		if err != nil {
			return "", fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if desc, body, err = p.manifestByDigest(ctx, child.Digest); err != nil {
			return "", err
		}
		if child.Size > 0 && desc.Size != child.Size {
			return "", fmt.Errorf("manifest %s: %d bytes, its index says %d: %w", desc.Digest, desc.Size, child.Size, errdefs.ErrDataLoss)
		}
		blobs = append(blobs, desc.Digest.String())
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, mediaDockerManifest:
	case mediaDockerSchema1, mediaDockerSigned:
		return "", fmt.Errorf("manifest %s: Docker schema 1 images are not supported: %w", desc.Digest, errdefs.ErrInvalidArgument)
	default:
		return "", fmt.Errorf("manifest %s: media type %q is not an image manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, mediaDockerConfig:
	default:
		return "", fmt.Errorf("manifest %s: config media type %q is not a container image's: %w", desc.Digest, m.Config.MediaType, errdefs.ErrInvalidArgument)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return "", fmt.Errorf("manifest %s: config digest: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	release := p.s.lease(append(slices.Clone(blobs), m.Config.Digest.String())...)
	defer release()
	cfgData, err := p.smallBlob(ctx, m.Config, "config")
	if err != nil {
		return "", err
	}
	failpoint.Hit(failpoint.PullConfig)
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgData, &cfg); err != nil {
		return "", fmt.Errorf("config %s: %v: %w", m.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return "", fmt.Errorf("manifest %s has %d layers but its config %s names %d: %w",
			desc.Digest, len(m.Layers), m.Config.Digest, len(cfg.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	rec := imageRecord{ID: m.Config.Digest.String(), Config: cfg.Config, Created: time.Now().UTC()}
	chain := chainIDs(cfg.RootFS.DiffIDs)
	var leases []string
	for i, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return "", fmt.Errorf("manifest %s: layer %d: %v: %w", desc.Digest, i+1, err, errdefs.ErrInvalidArgument)
		}
		if err := cfg.RootFS.DiffIDs[i].Validate(); err != nil {
			return "", fmt.Errorf("config %s: diff ID %d: %v: %w", m.Config.Digest, i+1, err, errdefs.ErrInvalidArgument)
		}
		if l.Size < 0 {
			return "", fmt.Errorf("manifest %s: layer %d: negative size: %w", desc.Digest, i+1, errdefs.ErrInvalidArgument)
		}
		rec.Layers = append(rec.Layers, layerRef{ChainID: chain[i], DiffID: cfg.RootFS.DiffIDs[i].String(),
			Digest: l.Digest.String(), Size: l.Size})
		leases = append(leases, chain[i], l.Digest.String())
	}
	rec.Blobs = append(blobs, m.Config.Digest.String())
	for _, l := range rec.Layers {
		rec.Blobs = append(rec.Blobs, l.Digest)
	}
	defer p.s.lease(leases...)()

	if err := p.s.checkDeclaredSizes(ctx, desc.Digest, m.Layers, rec.Layers); err != nil {
		return "", err
	}
	if err := p.layers(ctx, m.Layers, rec.Layers); err != nil {
		return "", err
	}
	if rec.Size, err = p.s.storedSize(cfgData, m.Layers, rec.Layers); err != nil {
		return "", err
	}
	var tags []string
	if p.ref.Tag != "" {
		tags = []string{p.ref.String()}
	}
	if err := p.s.commitImage(rec, tags, []string{repoDigest}); err != nil {
		return "", err
	}
	failpoint.Hit(failpoint.PullImageRecord)
	return rec.ID, nil
}

// resolve fetches the manifest or index the reference names, asking the
// endpoints that may resolve tags. A digest reference is content: any pull
// endpoint may serve it, and one already stored needs no registry.
func (p *pull) resolve(ctx context.Context) (ocispec.Descriptor, []byte, error) {
	if p.ref.Digest != "" {
		return p.manifestByDigest(ctx, digest.Digest(p.ref.Digest))
	}
	return p.fetchManifest(ctx, p.ref.Tag, func(ep *endpoint) bool { return ep.resolve })
}

// manifestByDigest reads a manifest from the store or any pull endpoint.
func (p *pull) manifestByDigest(ctx context.Context, d digest.Digest) (ocispec.Descriptor, []byte, error) {
	if body, err := p.s.readBlob(d); err == nil {
		desc, err := sniffManifest(d, body)
		return desc, body, err
	}
	return p.fetchManifest(ctx, d.String(), func(ep *endpoint) bool { return ep.pull })
}

// fetchManifest fetches a manifest by tag or digest from the first capable
// endpoint that has it, and stores it.
func (p *pull) fetchManifest(ctx context.Context, ident string, capable func(*endpoint) bool) (ocispec.Descriptor, []byte, error) {
	var desc ocispec.Descriptor
	var body []byte
	err := p.eachEndpoint(ctx, "manifest "+ident, capable, func(c *client) error {
		var err error
		desc, body, err = c.manifest(ctx, ident)
		return err
	})
	if err != nil {
		return desc, nil, err
	}
	if err := p.s.writeBlob(desc.Digest, body); err != nil {
		return desc, nil, err
	}
	failpoint.Hit(failpoint.PullManifest)
	return desc, body, nil
}

// sniffManifest finds a stored manifest's media type in its content.
func sniffManifest(d digest.Digest, body []byte) (ocispec.Descriptor, error) {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %v: %w", d, err, errdefs.ErrDataLoss)
	}
	mt := probe.MediaType
	if mt == "" {
		mt = ocispec.MediaTypeImageManifest
		if probe.Manifests != nil {
			mt = ocispec.MediaTypeImageIndex
		}
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body))}, nil
}

// commitImage records an image once all its layers are stored, merging
// the references into an image already known by the same ID.
func (s *Store) commitImage(rec imageRecord, tags, digests []string) error {
	defer s.invalidateUsage()
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, l := range rec.Layers {
			if _, ok, err := getLayer(tx, l.ChainID); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("record image %s: layer %s is not stored: %w", rec.ID, l.ChainID, errdefs.ErrAborted)
			}
		}
		if old, ok, err := getImage(tx, rec.ID); err != nil {
			return err
		} else if ok {
			rec.RepoTags, rec.RepoDigests, rec.Created = old.RepoTags, old.RepoDigests, old.Created
			for _, b := range old.Blobs {
				if !slices.Contains(rec.Blobs, b) {
					rec.Blobs = append(rec.Blobs, b)
				}
			}
		}
		if err := addRefs(tx, &rec, tags, digests); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketImages), rec.ID, rec)
	})
}
