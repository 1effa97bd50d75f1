package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// withLinkModes rebuilds img with every hard link's tar header carrying
// the mode of the file it links to.
//
// test/images writes hard links (busybox's applets) with mode 0644, and
// containerd, like Docker, applies a hard link header's mode to the linked
// file: /bin/busybox becomes 0644 and no container can run. GNU tar writes
// the target's mode; so does this, until test/images does.
func withLinkModes(img v1.Image) (v1.Image, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	var fixed []v1.Layer
	for i, l := range layers {
		data, err := fixLinkModes(l)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		nl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		fixed = append(fixed, nl)
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = nil // AppendLayers adds the new layers' own
	cfg.History = nil
	if out, err = mutate.ConfigFile(out, cfg); err != nil {
		return nil, err
	}
	return mutate.AppendLayers(out, fixed...)
}

func fixLinkModes(l v1.Layer) ([]byte, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	modes := map[string]int64{}
	var buf bytes.Buffer
	tr, tw := tar.NewReader(rc), tar.NewWriter(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			modes[hdr.Name] = hdr.Mode
		case tar.TypeLink:
			if m, ok := modes[hdr.Linkname]; ok {
				hdr.Mode = m
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
