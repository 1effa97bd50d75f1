package integration

// Registries that lie about sizes (issue 16): an image's reported size is
// what the store holds, and a manifest declaring a size other than a
// verified blob's is refused.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// storedImageSize is what an honest pull of img holds: its config and its
// compressed layers.
func storedImageSize(t *testing.T, img v1.Image) uint64 {
	t.Helper()
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	total := uint64(len(cfg))
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		total += uint64(n)
	}
	return total
}

func TestImagePullRefusesAManifestLyingAboutAStoredLayersSize(t *testing.T) {
	reg := registry.Start(t)
	d := harness.Start(t)
	img := images.Busybox()
	honest := reg.Push(t, "honest:1", img)
	id := mustPullImage(t, d, honest)
	want := storedImageSize(t, img)
	if got := imageStatus(t, d, honest, false).GetImage().GetSize(); got != want {
		t.Fatalf("ImageStatus size %d, want the %d bytes the store holds", got, want)
	}

	// The same image and blobs, its one layer declared as 2^62 bytes.
	layer := layerDigests(t, img)[0]
	liar := reg.Push(t, "liar:1", images.DeclaredLayerSize(img, 0, images.FourEiB))
	_, err := pullImage(t, d, liar, nil)
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), layer.String()) || !strings.Contains(err.Error(), "declares") {
		t.Fatalf("PullImage of a manifest declaring 2^62 bytes for a stored layer: %v, want DataLoss naming %s", err, layer)
	}
	imgs := listImages(t, d)
	if len(imgs) != 1 || imgs[0].Id != id || imgs[0].Size != want {
		t.Fatalf("images after the refused pull: %v, want only %s of %d bytes", imgs, id, want)
	}
	for _, tag := range imgs[0].RepoTags {
		if strings.Contains(tag, "liar") {
			t.Errorf("the lying tag %s was recorded", tag)
		}
	}
}

func TestImagePullRefusesAFourEiBLayerAndStoresNothingOfIt(t *testing.T) {
	reg := registry.Start(t)
	d := harness.Start(t)
	img := images.Configured()
	layers := layerDigests(t, img)
	top := layers[len(layers)-1]
	liar := reg.Push(t, "liar:1", images.DeclaredLayerSize(img, len(layers)-1, images.FourEiB))
	_, err := pullImage(t, d, liar, nil)
	if err == nil || !strings.Contains(err.Error(), top.String()) {
		t.Fatalf("PullImage of a manifest declaring 4 EiB for a layer: %v, want an error naming %s", err, top)
	}
	if imgs := listImages(t, d); len(imgs) != 0 {
		t.Fatalf("a refused pull left images: %v", imgs)
	}
	if _, err := os.Stat(filepath.Join(d.Root, "image", "blobs", "sha256", top.Hex)); !os.IsNotExist(err) {
		t.Errorf("the layer declared 4 EiB was stored (%v)", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root, "image", "ingest")); len(ents) != 0 {
		t.Errorf("ingest files left: %v", ents)
	}
	// The honest manifest of the same image pulls.
	honest := reg.Push(t, "honest:1", img)
	mustPullImage(t, d, honest)
	if got, want := imageStatus(t, d, honest, false).GetImage().GetSize(), storedImageSize(t, img); got != want {
		t.Errorf("ImageStatus size %d, want %d", got, want)
	}
}
