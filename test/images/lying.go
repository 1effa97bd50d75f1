package images

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// FourEiB is the size a lying manifest declares for a layer: 2^62 bytes,
// about 4.6 EB.
const FourEiB int64 = 1 << 62

// DeclaredLayerSize is img with the same config and layer blobs, but a
// manifest that declares layer i (0 is the bottom) to be size bytes: a
// registry that lies about sizes. Its manifest digest differs from img's;
// its image ID (the config digest) is the same.
func DeclaredLayerSize(img v1.Image, i int, size int64) v1.Image {
	return &lyingImage{Image: img, layer: i, size: size}
}

type lyingImage struct {
	v1.Image
	layer int
	size  int64
}

func (l *lyingImage) Manifest() (*v1.Manifest, error) {
	m, err := l.Image.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	if l.layer < 0 || l.layer >= len(m.Layers) {
		return nil, fmt.Errorf("lying image: no layer %d of %d", l.layer, len(m.Layers))
	}
	m.Layers[l.layer].Size = l.size
	return m, nil
}

func (l *lyingImage) RawManifest() ([]byte, error) {
	m, err := l.Manifest()
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

func (l *lyingImage) Digest() (v1.Hash, error) { return partial.Digest(l) }

func (l *lyingImage) Size() (int64, error) { return partial.Size(l) }
