package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func TestPullByTagDigestAndSecondTagResolveToOneImage(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, v1.Config{Cmd: []string{"sh"}, User: "1000"}, newLayer(t, gzipped, file{name: "hello", body: "hi"}))
	ref := reg.push(t, "demo/app:v1", img)
	reg.push(t, "demo/app:v2", img)
	s := openTestStore(t, Config{})

	id := mustPull(t, s, ref)
	if want := mustConfigDigest(t, img); id != want {
		t.Fatalf("image ID %s, want the config digest %s", id, want)
	}
	byDigest := reg.host + "/demo/app@" + mustDigest(t, img)
	if got := mustPull(t, s, byDigest); got != id {
		t.Fatalf("pull by digest gave %s, want %s", got, id)
	}
	if got := mustPull(t, s, reg.host+"/demo/app:v2"); got != id {
		t.Fatalf("pull of a second tag gave %s, want %s", got, id)
	}
	imgs, err := s.List(context.Background())
	if err != nil || len(imgs) != 1 {
		t.Fatalf("List = %v, %v; want one image", imgs, err)
	}
	got := imgs[0]
	wantTags := []string{reg.host + "/demo/app:v1", reg.host + "/demo/app:v2"}
	if !slices.Equal(got.RepoTags, wantTags) || !slices.Equal(got.RepoDigests, []string{byDigest}) {
		t.Fatalf("tags %v digests %v; want %v and [%s]", got.RepoTags, got.RepoDigests, wantTags, byDigest)
	}
	if got.Config.User != "1000" || !slices.Equal(got.Config.Cmd, []string{"sh"}) {
		t.Fatalf("config %+v lost the image's user and cmd", got.Config)
	}
	for _, r := range []string{id, strings.TrimPrefix(id, "sha256:")[:12], byDigest, reg.host + "/demo/app:v1"} {
		if g, err := s.Get(context.Background(), r); err != nil || g.ID != id {
			t.Errorf("Get(%s) = %s, %v; want %s", r, g.ID, err, id)
		}
	}
}

func TestPullFromIndexChoosesTheHostPlatform(t *testing.T) {
	reg := newTestRegistry(t)
	p := hostPlatform()
	mine := imageOf(t, v1.Config{Cmd: []string{"mine"}}, newLayer(t, gzipped, file{name: "mine", body: "1"}))
	other := imageOf(t, v1.Config{Cmd: []string{"other"}}, newLayer(t, gzipped, file{name: "other", body: "2"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}}},
	)
	ref := reg.pushIndex(t, "multi:latest", idx)
	s := openTestStore(t, Config{})

	id := mustPull(t, s, ref)
	if want := mustConfigDigest(t, mine); id != want {
		t.Fatalf("pulled %s, want the host platform's image %s", id, want)
	}
	idxDigest, _ := idx.Digest()
	img, _ := s.Get(context.Background(), id)
	if want := reg.host + "/multi@" + idxDigest.String(); !slices.Equal(img.RepoDigests, []string{want}) {
		t.Fatalf("repo digests %v, want the index digest %s", img.RepoDigests, want)
	}
}

func TestPullUnpacksGzipZstdAndUncompressedLayersIntoOneRootfs(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, v1.Config{},
		newLayer(t, gzipped, file{name: "etc/", typ: '5'}, file{name: "etc/gzip", body: "g"}),
		newLayer(t, zstded, file{name: "etc/zstd", body: "z"}),
		newLayer(t, uncompressed, file{name: "etc/plain", body: "p"}, file{name: "etc/.wh.gzip"}),
	)
	s := openTestStore(t, Config{})
	id := mustPull(t, s, reg.push(t, "mixed:1", img))

	target := mountTestSnapshot(t, s, "c1", id)
	names := readdirNames(t, filepath.Join(target, "etc"))
	if want := []string{"plain", "zstd"}; !slices.Equal(names, want) {
		t.Fatalf("rootfs /etc has %v, want %v (gzip file whited out by the top layer)", names, want)
	}
}

// mountTestSnapshot prepares and mounts a snapshot, undoing both at the end.
func mountTestSnapshot(t *testing.T, s *Store, key, id string) string {
	t.Helper()
	ctx := context.Background()
	if err := s.PrepareSnapshot(ctx, key, id); err != nil {
		t.Fatalf("prepare snapshot: %v", err)
	}
	target := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.MountSnapshot(ctx, key, target); err != nil {
		t.Fatalf("mount snapshot: %v", err)
	}
	t.Cleanup(func() {
		if err := s.UnmountSnapshot(ctx, target); err != nil {
			t.Error(err)
		}
		if err := s.RemoveSnapshot(ctx, key); err != nil {
			t.Error(err)
		}
	})
	return target
}

func TestImagesSharingABaseStoreItOnceAndRemoveKeepsTheOther(t *testing.T) {
	reg := newTestRegistry(t)
	refA, refB, _ := pushTwoOnABase(t, reg)
	s := openTestStore(t, Config{})
	ctx := context.Background()
	idA := mustPull(t, s, refA)
	idB := mustPull(t, s, refB)

	if n := len(layerDirs(t, s)); n != 3 {
		t.Fatalf("%d layer directories, want 3 (the base once)", n)
	}
	imgsBefore, _, _ := s.FsInfo(ctx)
	if err := s.Remove(ctx, idA); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, idA); !errdefs.IsNotFound(err) {
		t.Fatalf("removed image still resolves: %v", err)
	}
	if n := len(layerDirs(t, s)); n != 2 {
		t.Fatalf("%d layer directories after removing a, want 2 (base and b)", n)
	}
	target := mountTestSnapshot(t, s, "c1", idB)
	if names := readdirNames(t, target); !slices.Equal(names, []string{"b", "base"}) {
		t.Fatalf("b's rootfs has %v after removing a", names)
	}
	imgsAfter, _, _ := s.FsInfo(ctx)
	if imgsAfter[0].UsedBytes >= imgsBefore[0].UsedBytes || imgsAfter[0].InodesUsed >= imgsBefore[0].InodesUsed {
		t.Fatalf("image fs usage %+v did not shrink from %+v", imgsAfter[0], imgsBefore[0])
	}
	if err := s.Remove(ctx, idA); err != nil {
		t.Fatalf("removing an unknown image: %v", err)
	}
}

// pushTwoOnABase pushes a:1 and b:1, images with one file each ("a",
// "b") over a shared base layer (file "base"), and returns their
// references and b's top layer.
func pushTwoOnABase(t *testing.T, reg *testRegistry) (refA, refB string, topB *memLayer) {
	t.Helper()
	base := newLayer(t, gzipped, file{name: "base", body: "b"})
	topB = newLayer(t, gzipped, file{name: "b", body: "b"})
	a := imageOf(t, v1.Config{}, base, newLayer(t, gzipped, file{name: "a", body: "a"}))
	b := imageOf(t, v1.Config{}, base, topB)
	return reg.push(t, "a:1", a), reg.push(t, "b:1", b), topB
}

func layerDirs(t *testing.T, s *Store) []string {
	t.Helper()
	return readdirNames(t, filepath.Join(s.root, dirLayers))
}

func TestConcurrentPullsDownloadEachBlobOnce(t *testing.T) {
	reg := newTestRegistry(t)
	layers := []*memLayer{
		newLayer(t, gzipped, file{name: "1", body: strings.Repeat("1", 1<<20)}),
		newLayer(t, zstded, file{name: "2", body: strings.Repeat("2", 1<<20)}),
		newLayer(t, gzipped, file{name: "3", body: "3"}),
	}
	img := imageOf(t, v1.Config{}, layers...)
	ref := reg.push(t, "busy:1", img)
	s := openTestStore(t, Config{})

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.Pull(context.Background(), ref, nil) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]string{mustConfigDigest(t, img)}, layers[0].digest(), layers[1].digest(), layers[2].digest()) {
		if n := reg.blobGets(d); n != 1 {
			t.Errorf("blob %s downloaded %d times, want once", d, n)
		}
	}
}

func TestPullFailsClearlyOnBrokenBlobsAndRetryReusesVerifiedOnes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(body []byte) func(http.ResponseWriter, *http.Request)
		want  string
	}{
		{"a corrupted blob is rejected by digest", func(body []byte) func(http.ResponseWriter, *http.Request) {
			return func(w http.ResponseWriter, r *http.Request) {
				bad := slices.Clone(body)
				bad[len(bad)/2] ^= 0xff
				w.Write(bad)
			}
		}, "digest"},
		{"a stream cut half-way is rejected", func(body []byte) func(http.ResponseWriter, *http.Request) {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.Write(body[:len(body)/2])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}
		}, "download after"},
		{"a server error fails the pull", func(body []byte) func(http.ResponseWriter, *http.Request) {
			return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }
		}, "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t)
			good := newLayer(t, gzipped, file{name: "good", body: strings.Repeat("g", 4096)})
			bad := newLayer(t, gzipped, file{name: "bad", body: strings.Repeat("b", 64<<10)})
			img := imageOf(t, v1.Config{}, good, bad)
			ref := reg.push(t, "broken:1", img)
			reg.fault(bad.digest(), tc.fault(bad.blob))
			s := openTestStore(t, Config{})

			_, err := s.Pull(context.Background(), ref, nil)
			if err == nil {
				t.Fatal("pull succeeded")
			}
			for _, want := range []string{ref, bad.digest(), tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if s.hasBlob(digestOf(bad.digest())) {
				t.Error("the broken blob was stored")
			}
			if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
				t.Errorf("a failed pull left images %v", imgs)
			}
			if ents, _ := os.ReadDir(filepath.Join(s.root, dirIngest)); len(ents) != 0 {
				t.Errorf("ingest holds %d files after the pull", len(ents))
			}

			reg.fault(bad.digest(), nil)
			mustPull(t, s, ref)
			if n := reg.blobGets(good.digest()); n != 1 {
				t.Errorf("verified layer downloaded %d times, want once", n)
			}
			if n := reg.blobGets(mustConfigDigest(t, img)); n != 1 {
				t.Errorf("config downloaded %d times, want once", n)
			}
		})
	}
}

func TestPullOfAManifestNamingAMissingBlobFails(t *testing.T) {
	reg := newTestRegistry(t)
	l := newLayer(t, gzipped, file{name: "x", body: "x"})
	ref := reg.push(t, "missing:1", imageOf(t, v1.Config{}, l))
	reg.fault(l.digest(), func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
	})
	s := openTestStore(t, Config{})
	_, err := s.Pull(context.Background(), ref, nil)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "BLOB_UNKNOWN") || !strings.Contains(err.Error(), l.digest()) {
		t.Fatalf("pull error %v, want not found naming the blob", err)
	}
}

func TestPullOfAnUnknownTagIsNotFound(t *testing.T) {
	reg := newTestRegistry(t)
	s := openTestStore(t, Config{})
	_, err := s.Pull(context.Background(), reg.host+"/nothing:here", nil)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("pull error %v, want not found", err)
	}
}

func TestABlobAtTwoPlacesInTheChainIsDownloadedOnce(t *testing.T) {
	reg := newTestRegistry(t)
	twice := newLayer(t, gzipped, file{name: "same", body: "s"})
	img := imageOf(t, v1.Config{}, twice, newLayer(t, zstded, file{name: "between", body: "b"}), twice)
	s := openTestStore(t, Config{})
	id := mustPull(t, s, reg.push(t, "twice:1", img))
	if n := reg.blobGets(twice.digest()); n != 1 {
		t.Fatalf("the repeated blob was downloaded %d times, want once", n)
	}
	if n := len(layerDirs(t, s)); n != 3 {
		t.Fatalf("%d layer dirs, want 3 (one per chain position)", n)
	}
	target := mountTestSnapshot(t, s, "c", id)
	if names := readdirNames(t, target); !slices.Equal(names, []string{"between", "same"}) {
		t.Fatalf("rootfs has %v", names)
	}
}
