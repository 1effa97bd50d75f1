package images

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Format selects the manifest, index and config media types.
type Format int

const (
	// OCI uses application/vnd.oci.image.{manifest,index,config}.v1+json. Default.
	OCI Format = iota
	// Docker uses Docker schema 2: ...distribution.manifest.v2+json,
	// ...distribution.manifest.list.v2+json and ...container.image.v1+json.
	Docker
)

func (f Format) String() string {
	if f == Docker {
		return "docker"
	}
	return "oci"
}

func (f Format) manifestType() types.MediaType {
	if f == Docker {
		return types.DockerManifestSchema2
	}
	return types.OCIManifestSchema1
}

func (f Format) indexType() types.MediaType {
	if f == Docker {
		return types.DockerManifestList
	}
	return types.OCIImageIndex
}

func (f Format) configType() types.MediaType {
	if f == Docker {
		return types.DockerConfigJSON
	}
	return types.OCIConfigJSON
}

// Option changes how an image is encoded. The file content is the same in
// every variant; only blob encodings, media types and so digests differ.
type Option func(*variant)

type variant struct {
	format Format
	comp   Compression
}

// WithFormat selects OCI (default) or Docker schema 2 media types.
func WithFormat(f Format) Option { return func(v *variant) { v.format = f } }

// WithCompression selects how every layer blob is compressed (default Gzip).
func WithCompression(c Compression) Option { return func(v *variant) { v.comp = c } }

func variantOf(opts []Option) variant {
	var v variant
	for _, o := range opts {
		o(&v)
	}
	return v
}

func (v variant) String() string { return v.format.String() + "/" + v.comp.String() }

// cached builds each distinct image once per process: a sync.Once per key.
type cacheEntry struct {
	once sync.Once
	val  any
	err  error
}

var cache sync.Map // string -> *cacheEntry

// memo returns build()'s result for key, building it at most once. Fixture
// construction only fails when the machine cannot provide busybox, which no
// test can work around, so it panics with the reason.
func memo[T any](key string, build func() (T, error)) T {
	var err error
	v := memoErr(key, &err, build)
	if err != nil {
		panic(fmt.Sprintf("test image %s: %v", key, err))
	}
	return v
}

// memoErr is memo for intermediate values: it hands the error back instead
// of panicking, so the image that needed the value can name itself. A
// builder that panics (by building another image that fails) is recorded
// as failed, so later calls fail the same way instead of finding no value.
func memoErr[T any](key string, errp *error, build func() (T, error)) T {
	e, _ := cache.LoadOrStore(key, &cacheEntry{})
	ce := e.(*cacheEntry)
	ce.once.Do(func() {
		ce.err = fmt.Errorf("building %s panicked", key)
		v, err := build()
		ce.val, ce.err = v, err
	})
	if ce.err != nil {
		*errp = ce.err
		var zero T
		return zero
	}
	return ce.val.(T)
}

// hostPlatform is the platform of the busybox binary copied from the host.
func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// image is an immutable, fully materialized image: raw manifest and config
// bytes plus in-memory layers. Safe for concurrent use.
type image struct {
	manifest []byte
	config   []byte
	mt       types.MediaType
	layers   map[v1.Hash]*blobLayer
}

var _ partial.CompressedImageCore = (*image)(nil)

func (i *image) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *image) MediaType() (types.MediaType, error) { return i.mt, nil }
func (i *image) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("layer %s not in image", h)
}

// assemble writes the config and manifest for layers (bottom first) and
// returns the image. cfg's RootFS, History and Created are filled in here.
func assemble(f Format, cfg v1.ConfigFile, layers []*blobLayer, comments []string) (v1.Image, error) {
	cfg.Created = v1.Time{Time: Epoch()}
	cfg.RootFS = v1.RootFS{Type: "layers"}
	cfg.History = nil
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     f.manifestType(),
	}
	img := &image{mt: f.manifestType(), layers: map[v1.Hash]*blobLayer{}}
	for n, l := range layers {
		l = l.as(f)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		h := v1.History{Created: v1.Time{Time: Epoch()}, CreatedBy: "berth test image"}
		if n < len(comments) {
			h.Comment = comments[n]
		}
		cfg.History = append(cfg.History, h)
		man.Layers = append(man.Layers, l.descriptor())
		img.layers[l.digest] = l
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	img.config = raw
	man.Config = v1.Descriptor{MediaType: f.configType(), Size: int64(len(raw)), Digest: sha256Hash(raw)}
	if img.manifest, err = json.Marshal(man); err != nil {
		return nil, fmt.Errorf("marshal manifest: %w", err)
	}
	return partial.CompressedToImage(img)
}

// index is an immutable image index over materialized images.
type index struct {
	raw    []byte
	mt     types.MediaType
	images map[v1.Hash]v1.Image
}

var _ v1.ImageIndex = (*index)(nil)

func (x *index) MediaType() (types.MediaType, error) { return x.mt, nil }
func (x *index) Digest() (v1.Hash, error)            { return sha256Hash(x.raw), nil }
func (x *index) Size() (int64, error)                { return int64(len(x.raw)), nil }
func (x *index) RawManifest() ([]byte, error)        { return x.raw, nil }
func (x *index) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(x.raw))
}
func (x *index) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := x.images[h]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("manifest %s not in index", h)
}
func (x *index) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index %s has no nested index %s", sha256Hash(x.raw), h)
}

// assembleIndex writes an index of imgs, one per platform, in order.
func assembleIndex(f Format, imgs []v1.Image, platforms []v1.Platform) (v1.ImageIndex, error) {
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: f.indexType()}
	x := &index{mt: f.indexType(), images: map[v1.Hash]v1.Image{}}
	for n, img := range imgs {
		d, err := partial.Descriptor(img)
		if err != nil {
			return nil, fmt.Errorf("describe %s image: %w", platforms[n].String(), err)
		}
		p := platforms[n]
		d.Platform = &p
		im.Manifests = append(im.Manifests, *d)
		x.images[d.Digest] = img
	}
	raw, err := json.Marshal(im)
	if err != nil {
		return nil, fmt.Errorf("marshal index: %w", err)
	}
	x.raw = raw
	return x, nil
}
