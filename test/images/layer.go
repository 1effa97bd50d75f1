package images

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Compression is how a layer's tar stream is stored in its blob.
type Compression int

const (
	// Gzip layers use media type ...layer.v1.tar+gzip (OCI) or
	// ...rootfs.diff.tar.gzip (Docker). It is the default.
	Gzip Compression = iota
	// Zstd layers use application/vnd.oci.image.layer.v1.tar+zstd in both
	// formats (Docker has no zstd type of its own; moby uses the OCI one).
	Zstd
	// Uncompressed layers use application/vnd.oci.image.layer.v1.tar (OCI)
	// or application/vnd.docker.image.rootfs.diff.tar (Docker).
	Uncompressed
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "uncompressed"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

// mediaType is the layer media type of c in format f.
func (c Compression) mediaType(f Format) types.MediaType {
	switch {
	case c == Zstd:
		return types.OCILayerZStd
	case c == Uncompressed && f == Docker:
		return types.DockerUncompressedLayer
	case c == Uncompressed:
		return types.OCIUncompressedLayer
	case f == Docker:
		return types.DockerLayer
	}
	return types.OCILayer
}

// compress encodes tar bytes. Gzip headers carry no name or time and the
// zstd encoder runs single-threaded, so the output is a function of the
// input alone (for a given library version).
func compress(data []byte, c Compression, level int) ([]byte, error) {
	switch c {
	case Uncompressed:
		return data, nil
	case Gzip:
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(data); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return buf.Bytes(), nil
	case Zstd:
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer enc.Close()
		return enc.EncodeAll(data, nil), nil
	}
	return nil, fmt.Errorf("unknown compression %v", c)
}

// blobLayer is an immutable layer held in memory: its blob bytes, digests and
// media type. It implements v1.Layer.
type blobLayer struct {
	blob   []byte
	digest v1.Hash
	diffID v1.Hash
	comp   Compression
	mt     types.MediaType
}

var _ v1.Layer = (*blobLayer)(nil)

// newLayer compresses a tar stream into a layer of format f.
func newLayer(tarBytes []byte, c Compression, f Format, level int) (*blobLayer, error) {
	blob, err := compress(tarBytes, c, level)
	if err != nil {
		return nil, err
	}
	return &blobLayer{
		blob:   blob,
		digest: sha256Hash(blob),
		diffID: sha256Hash(tarBytes),
		comp:   c,
		mt:     c.mediaType(f),
	}, nil
}

// as returns the same blob labelled with the media type of format f.
func (l *blobLayer) as(f Format) *blobLayer {
	cp := *l
	cp.mt = l.comp.mediaType(f)
	return &cp
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum[:])}
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *blobLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}

// Uncompressed returns the layer's tar stream.
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	r := bytes.NewReader(l.blob)
	switch l.comp {
	case Gzip:
		return gzip.NewReader(r)
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// descriptor is the manifest entry for the layer.
func (l *blobLayer) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.mt, Size: int64(len(l.blob)), Digest: l.digest}
}
