package images

import (
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Benchmark defaults: eight layers of about 200 MB of incompressible data in
// all, and a sibling sharing the lower six.
const (
	BenchLayers = 8
	BenchBytes  = 200 << 20
	BenchSeed   = 1
	BenchShared = 6
)

// largeChunk is the largest file a large layer holds; a layer of n bytes
// holds ceil(n/largeChunk) files.
const largeChunk = 16 << 20

// Large is busybox plus `layers` layers holding totalBytes of seeded
// pseudo-random (incompressible) data in all, split evenly: layer i
// (1-based) holds files /large/<i>/chunk-NN. The same arguments give the same
// digests in every run. Layers are gzip (fastest level): blobs are about as
// large as their content.
func Large(layers int, totalBytes int64, seed uint64) v1.Image {
	return LargeSibling(layers, totalBytes, seed, layers)
}

// LargeSibling is an image of the same shape as Large(layers, totalBytes,
// seed) whose lower `shared` data layers (and busybox) are the very same
// blobs, and whose upper layers hold different data. Pulling it after Large
// must fetch only layers-shared blobs (plus config and manifest).
func LargeSibling(layers int, totalBytes int64, seed uint64, shared int) v1.Image {
	key := fmt.Sprintf("large/%d/%d/%d/%d", layers, totalBytes, seed, shared)
	return memo(key, func() (v1.Image, error) {
		if layers < 1 || totalBytes < int64(layers) || shared < 0 || shared > layers {
			return nil, fmt.Errorf("bad large image shape: %d layers, %d bytes, %d shared", layers, totalBytes, shared)
		}
		base, err := busyboxLayer(Gzip)
		if err != nil {
			return nil, err
		}
		all := []*blobLayer{base}
		comments := []string{"busybox"}
		per := totalBytes / int64(layers)
		for i := 1; i <= layers; i++ {
			s := seed
			if i > shared {
				s = ^seed // a different stream for the sibling's own layers
			}
			l, err := largeLayer(i, per, s)
			if err != nil {
				return nil, err
			}
			all = append(all, l)
			comments = append(comments, fmt.Sprintf("large layer %d", i))
		}
		return assemble(OCI, baseConfig(), all, comments)
	})
}

// largeLayer is layer i of size bytes generated from seed, memoized so that
// Large and its siblings share the blob in memory.
func largeLayer(i int, size int64, seed uint64) (*blobLayer, error) {
	var err error
	l := memoErr(fmt.Sprintf("layer/large/%d/%d/%d", i, size, seed), &err, func() (*blobLayer, error) {
		var key [32]byte
		binary.LittleEndian.PutUint64(key[0:], seed)
		binary.LittleEndian.PutUint64(key[8:], uint64(i))
		binary.LittleEndian.PutUint64(key[16:], uint64(size))
		rng := rand.NewChaCha8(key)
		var b tarBuilder
		b.dir("large", 0o755)
		dir := fmt.Sprintf("large/%d", i)
		b.dir(dir, 0o755)
		for n, left := 0, size; left > 0; n++ {
			chunk := min(left, largeChunk)
			data := make([]byte, chunk)
			_, _ = rng.Read(data)
			b.file(fmt.Sprintf("%s/chunk-%02d", dir, n), 0o644, data)
			left -= chunk
		}
		tb, err := b.bytes()
		if err != nil {
			return nil, err
		}
		return newLayer(tb, Gzip, OCI, gzip.BestSpeed)
	})
	return l, err
}
