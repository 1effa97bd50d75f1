package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// startWithHosts starts berthd with a hosts directory holding hosts.toml
// files (registry host -> content). Registries on loopback need none: they
// are plain http by default.
func startWithHosts(t *testing.T, hosts map[string]string, opts ...func(*config.Config)) *harness.Daemon {
	t.Helper()
	dir := t.TempDir()
	for host, content := range hosts {
		if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return harness.Start(t, harness.WithConfig(func(c *config.Config) {
		c.Registry.ConfigPath = dir
		for _, o := range opts {
			o(c)
		}
	}))
}

func pullImage(t *testing.T, d *harness.Daemon, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	t.Helper()
	resp, err := d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	return resp.GetImageRef(), err
}

func mustPullImage(t *testing.T, d *harness.Daemon, ref string) string {
	t.Helper()
	id, err := pullImage(t, d, ref, nil)
	if err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	return id
}

func configDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func listImages(t *testing.T, d *harness.Daemon) []*runtimeapi.Image {
	t.Helper()
	resp, err := d.Images.ListImages(ctxFor(t), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Images
}

func imageStatus(t *testing.T, d *harness.Daemon, ref string, verbose bool) *runtimeapi.ImageStatusResponse {
	t.Helper()
	resp, err := d.Images.ImageStatus(ctxFor(t), &runtimeapi.ImageStatusRequest{
		Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: verbose})
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	return resp
}

func removeImage(t *testing.T, d *harness.Daemon, ref string) {
	t.Helper()
	if _, err := d.Images.RemoveImage(ctxFor(t), &runtimeapi.RemoveImageRequest{
		Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage %s: %v", ref, err)
	}
}

// layerDirs are the unpacked layers on disk.
func layerDirs(t *testing.T, d *harness.Daemon) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.Root, "image", "layers"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestImagePullByTagDigestAndSecondTagResolveToOneImage(t *testing.T) {
	reg := registry.Start(t)
	img := images.Configured()
	ref := reg.Push(t, "team/app:v1", img)
	ref2 := reg.Push(t, "team/app:v2", img)
	manifest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	byDigest := reg.Ref("team/app@" + manifest.String())
	d := harness.Start(t)

	id := mustPullImage(t, d, ref)
	if want := configDigest(t, img); id != want {
		t.Fatalf("PullImage returned %s, want the config digest %s", id, want)
	}
	// name:tag@digest is the digest reference, as kubelet and containerd
	// read it: the tag neither chooses the image nor gets recorded.
	tagAndDigest := reg.Ref("team/app:not-a-tag@" + manifest.String())
	for _, r := range []string{byDigest, ref2, tagAndDigest} {
		if got := mustPullImage(t, d, r); got != id {
			t.Fatalf("PullImage %s returned %s, want %s", r, got, id)
		}
	}
	imgs := listImages(t, d)
	if len(imgs) != 1 {
		t.Fatalf("ListImages has %d images, want 1: %v", len(imgs), imgs)
	}
	got := imgs[0]
	if got.Id != id || !slices.Equal(got.RepoTags, []string{ref, ref2}) || !slices.Equal(got.RepoDigests, []string{byDigest}) {
		t.Fatalf("image %v: want ID %s, tags [%s %s], digests [%s]", got, id, ref, ref2, byDigest)
	}
	if got.Size == 0 {
		t.Error("image size is 0")
	}
	cfg := images.ConfiguredConfig()
	st := imageStatus(t, d, byDigest, true)
	if st.Image.GetId() != id {
		t.Fatalf("ImageStatus by digest: %v", st.Image)
	}
	if st.Image.Username != cfg.User || st.Image.Uid != nil {
		t.Errorf("ImageStatus username %q uid %v, want the config's user %q", st.Image.Username, st.Image.Uid, cfg.User)
	}
	if st.Image.Pinned {
		t.Errorf("an image not configured pinned is reported pinned")
	}
	var info struct {
		ImageSpec v1.ConfigFile `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", st.Info["info"], err)
	}
	if !slices.Equal(info.ImageSpec.Config.Entrypoint, cfg.Entrypoint) || !slices.Equal(info.ImageSpec.Config.Env, cfg.Env) ||
		info.ImageSpec.Config.WorkingDir != cfg.WorkingDir {
		t.Fatalf("verbose config %+v, want %+v", info.ImageSpec.Config, cfg)
	}
	filtered, err := d.Images.ListImages(ctxFor(t), &runtimeapi.ListImagesRequest{
		Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: ref2}}})
	if err != nil || len(filtered.Images) != 1 || filtered.Images[0].Id != id {
		t.Fatalf("ListImages filtered by %s: %v, %v", ref2, filtered, err)
	}
	if st := imageStatus(t, d, reg.Ref("team/other:v1"), false); st.Image != nil {
		t.Fatalf("ImageStatus of an image never pulled: %v, want none", st.Image)
	}

	removeImage(t, d, ref)
	if st := imageStatus(t, d, id, false); !slices.Equal(st.Image.GetRepoTags(), []string{ref2}) {
		t.Fatalf("after removing tag %s: %v, want the image with only %s", ref, st.Image, ref2)
	}
	removeImage(t, d, ref2)
	if imgs := listImages(t, d); len(imgs) != 0 {
		t.Fatalf("images left after removing the last tag: %v", imgs)
	}
	removeImage(t, d, ref2) // unknown now: CRI wants success
}

func TestImageStatusReportsConfiguredPinnedImagesPinned(t *testing.T) {
	reg := registry.Start(t)
	pause := reg.Push(t, "pause:3.10", images.Pause())
	other := reg.Push(t, "library/busybox:1", images.Busybox())
	d := harness.Start(t, harness.WithConfig(func(c *config.Config) { c.Registry.PinnedImages = []string{pause} }))
	mustPullImage(t, d, pause)
	mustPullImage(t, d, other)
	if !imageStatus(t, d, pause, false).Image.GetPinned() {
		t.Errorf("ImageStatus of the configured pinned image: not pinned")
	}
	if imageStatus(t, d, other, false).Image.GetPinned() {
		t.Errorf("ImageStatus of another image: pinned")
	}
	for _, img := range listImages(t, d) {
		if img.Pinned != slices.Contains(img.RepoTags, pause) {
			t.Errorf("ListImages: %v pinned=%v", img.RepoTags, img.Pinned)
		}
	}
}

func TestImagePullFromAnIndexTakesTheHostPlatform(t *testing.T) {
	for _, f := range []images.Format{images.OCI, images.Docker} {
		t.Run(f.String(), func(t *testing.T) {
			reg := registry.Start(t)
			idx := images.Index(images.WithFormat(f))
			ref := reg.PushIndex(t, "multi:1", idx)
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			host := images.IndexPlatforms()[0]
			var want string
			for _, m := range im.Manifests {
				if m.Platform != nil && m.Platform.Equals(host) {
					child, err := idx.Image(m.Digest)
					if err != nil {
						t.Fatal(err)
					}
					want = configDigest(t, child)
				}
			}
			d := harness.Start(t)
			if got := mustPullImage(t, d, ref); got != want {
				t.Fatalf("pulled %s, want the %s image %s", got, host.String(), want)
			}
		})
	}
}

func TestImagePullDecodesEveryFormatAndCompression(t *testing.T) {
	reg := registry.Start(t)
	d := harness.Start(t)
	for _, f := range []images.Format{images.OCI, images.Docker} {
		for _, c := range []images.Compression{images.Gzip, images.Zstd, images.Uncompressed} {
			t.Run(f.String()+"-"+c.String(), func(t *testing.T) {
				img := images.Layered(images.WithFormat(f), images.WithCompression(c))
				ref := reg.Push(t, fmt.Sprintf("layered:%s-%s", f, c), img)
				if got, want := mustPullImage(t, d, ref), configDigest(t, img); got != want {
					t.Fatalf("pulled %s, want %s", got, want)
				}
			})
		}
	}
	// Every variant holds the same files, so every layer chain is stored
	// once however it was encoded.
	if n, want := len(layerDirs(t, d)), len(layerDigests(t, images.Layered())); n != want {
		t.Fatalf("%d layer directories for six encodings of one %d-layer image", n, want)
	}
}

func TestImagePullThroughAMirrorWhenTheUpstreamIsUnreachable(t *testing.T) {
	reg := registry.Start(t)
	img := images.Pause()
	reg.Push(t, "pause:3.10", img)
	reg.Push(t, "library/busybox:latest", img)
	// Upstream and the first mirror are closed loopback ports; the second
	// mirror is the test registry. Nothing points beyond this machine.
	hosts := fmt.Sprintf(`server = "http://127.0.0.1:1"

[host."http://127.0.0.1:2"]
  capabilities = ["pull", "resolve"]

[host."%s"]
  capabilities = ["pull", "resolve"]
`, reg.URL())
	d := startWithHosts(t, map[string]string{"registry.k8s.io": hosts, "docker.io": hosts})
	want := configDigest(t, img)
	for _, ref := range []string{"registry.k8s.io/pause:3.10", "busybox"} {
		if got := mustPullImage(t, d, ref); got != want {
			t.Fatalf("pull %s gave %s, want %s", ref, got, want)
		}
	}
	st := imageStatus(t, d, "docker.io/library/busybox:latest", false)
	if !slices.Contains(st.Image.GetRepoTags(), "registry.k8s.io/pause:3.10") {
		t.Fatalf("image %v: want both normalised names", st.Image)
	}
}

func TestImagePullFailsClearlyOnABrokenRegistryAndRetryReusesVerifiedBlobs(t *testing.T) {
	faults := []registry.Fault{registry.FaultCorrupt, registry.FaultTruncate, registry.FaultServerError,
		registry.FaultNotFound, registry.FaultHang, registry.FaultStall}
	for _, fault := range faults {
		t.Run(fault.String(), func(t *testing.T) {
			reg := registry.Start(t)
			img := images.Configured()
			ref := reg.Push(t, "broken:1", img)
			layers := layerDigests(t, img)
			base, top := layers[0], layers[len(layers)-1]
			reg.InjectFault(top, fault, 100)
			// A registry that stops talking fails the pull after 2s.
			d := harness.Start(t, harness.WithConfig(func(c *config.Config) { c.Registry.StallTimeoutSeconds = 2 }))

			_, err := pullImage(t, d, ref, nil)
			if err == nil {
				t.Fatal("PullImage succeeded from a broken registry")
			}
			for _, want := range []string{ref, top.String()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			if imgs := listImages(t, d); len(imgs) != 0 {
				t.Fatalf("a failed pull left images: %v", imgs)
			}
			if _, err := os.Stat(filepath.Join(d.Root, "image", "blobs", "sha256", top.Hex)); !os.IsNotExist(err) {
				t.Fatalf("the broken blob was stored (%v)", err)
			}

			reg.ClearFaults()
			if got := mustPullImage(t, d, ref); got != configDigest(t, img) {
				t.Fatalf("retry pulled %s", got)
			}
			if n := reg.BlobFetches(base); n != 1 {
				t.Errorf("verified base layer fetched %d times, want once", n)
			}
		})
	}
}

func TestImagePullRejectsHostileLayersAndWritesNothingOutsideTheStore(t *testing.T) {
	reg := registry.Start(t)
	d := harness.Start(t)
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	layers := filepath.Join(d.Root, "image", "layers") + "/"
	for _, kind := range images.HostileKinds() {
		t.Run(string(kind), func(t *testing.T) {
			ref := reg.Push(t, "hostile:"+string(kind), images.Hostile(kind))
			_, err := pullImage(t, d, ref, nil)
			// An unpacker may confine an absolute path below the layer
			// root instead of refusing it; everything else is refused.
			if kind != images.AbsolutePath && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("PullImage: %v, want InvalidArgument", err)
			}
			marker := images.HostileMarker(kind)
			for _, p := range []string{"/tmp/" + marker, "/" + marker, filepath.Join(d.Dir, marker), filepath.Join(d.Root, marker)} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("hostile layer wrote %s", p)
				}
			}
			filepath.Walk(d.Dir, func(p string, info os.FileInfo, err error) error {
				if err == nil && (info.Name() == marker || info.Name() == "escape" && kind == images.PathTraversal) &&
					!strings.HasPrefix(p, layers) {
					t.Errorf("hostile layer wrote %s outside the layer store", p)
				}
				return nil
			})
		})
	}
	if now, _ := os.ReadFile("/etc/passwd"); string(now) != string(passwd) {
		t.Fatal("/etc/passwd changed")
	}
}

func TestImagesSharingABaseStoreItOnceAndRemoveKeepsTheOther(t *testing.T) {
	reg := registry.Start(t)
	busybox, configured := images.Busybox(), images.Configured()
	if layerDigests(t, busybox)[0] != layerDigests(t, configured)[0] {
		t.Fatal("test images do not share their base layer")
	}
	busyRef := reg.Push(t, "library/busybox:1", busybox)
	appRef := reg.Push(t, "app:1", configured)
	d := harness.Start(t)
	busyID := mustPullImage(t, d, busyRef)
	appID := mustPullImage(t, d, appRef)
	if n, want := len(layerDirs(t, d)), len(layerDigests(t, configured)); n != want {
		t.Fatalf("%d layer directories for two images sharing a base, want %d", n, want)
	}
	before := imageFsInfo(t, d)

	removeImage(t, d, appID)
	if n, want := len(layerDirs(t, d)), len(layerDigests(t, busybox)); n != want {
		t.Fatalf("%d layer directories after removing the app, want %d", n, want)
	}
	if imgs := listImages(t, d); len(imgs) != 1 || imgs[0].Id != busyID {
		t.Fatalf("images after removing the app: %v", imgs)
	}
	after := imageFsInfo(t, d)
	if after.UsedBytes.GetValue() >= before.UsedBytes.GetValue() || after.InodesUsed.GetValue() >= before.InodesUsed.GetValue() {
		t.Fatalf("ImageFsInfo %v did not shrink from %v", after, before)
	}
	if after.FsId.GetMountpoint() != filepath.Join(d.Root, "image") || after.Timestamp == 0 {
		t.Fatalf("ImageFsInfo %v: want the store's mountpoint and a timestamp", after)
	}
	// The remaining image is whole: a fresh pull downloads nothing.
	reg.ResetCounts()
	mustPullImage(t, d, busyRef)
	if n := reg.TotalBlobFetches(); n != 0 {
		t.Fatalf("re-pulling the kept image fetched %d blobs", n)
	}
}

func imageFsInfo(t *testing.T, d *harness.Daemon) *runtimeapi.FilesystemUsage {
	t.Helper()
	resp, err := d.Images.ImageFsInfo(ctxFor(t), &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ImageFilesystems) != 1 || len(resp.ContainerFilesystems) != 1 {
		t.Fatalf("ImageFsInfo %v: want one image and one container filesystem", resp)
	}
	// Containers' writable layers are counted apart, where they live.
	if c := resp.ContainerFilesystems[0]; c.GetFsId().GetMountpoint() != filepath.Join(d.Root, "image", "snapshots") ||
		c.Timestamp == 0 || c.GetUsedBytes() == nil || c.GetInodesUsed() == nil {
		t.Fatalf("ImageFsInfo container filesystem %v: want the snapshots dir with usage and a timestamp", c)
	}
	return resp.ImageFilesystems[0]
}

func TestImageConcurrentPullsDownloadEachBlobOnce(t *testing.T) {
	reg := registry.Start(t)
	img := images.Large(4, 8<<20, 1)
	ref := reg.Push(t, "large:1", img)
	d := harness.Start(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = pullImage(t, d, ref, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
	}
	cfg, _ := img.ConfigName()
	for _, h := range append(layerDigests(t, img), cfg) {
		if n := reg.BlobFetches(h); n != 1 {
			t.Errorf("blob %s fetched %d times by 8 concurrent pulls, want once", h, n)
		}
	}
}

func TestImagesSurviveARestart(t *testing.T) {
	reg := registry.Start(t)
	ref := reg.Push(t, "kept:1", images.Busybox())
	d := harness.Start(t)
	id := mustPullImage(t, d, ref)
	d.Stop(t)
	d.Restart(t)
	if st := imageStatus(t, d, ref, false); st.Image.GetId() != id {
		t.Fatalf("after a restart ImageStatus %s = %v, want %s", ref, st.Image, id)
	}
	reg.ResetCounts()
	mustPullImage(t, d, ref)
	if n := reg.TotalBlobFetches(); n != 0 {
		t.Fatalf("pull after restart fetched %d blobs", n)
	}
}

func TestImageRestartCleansUpAPullKilledHalfWay(t *testing.T) {
	reg := registry.Start(t)
	img := images.Large(2, 4<<20, 7)
	ref := reg.Push(t, "interrupted:1", img)
	layers := layerDigests(t, img)
	top := layers[len(layers)-1]
	reg.InjectFault(top, registry.FaultStall, 1) // half the blob, then silence
	d := harness.Start(t)
	pulled := make(chan error, 1)
	go func() { _, err := pullImage(t, d, ref, nil); pulled <- err }()

	// Wait until the top layer is half downloaded and half unpacked.
	ingest := filepath.Join(d.Root, "image", "ingest")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if entries, _ := os.ReadDir(ingest); len(entries) > 0 && reg.FaultsServed(top) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pull never started the stalled layer")
		}
	}
	before := len(layerDirs(t, d))
	d.Kill(t)
	if err := <-pulled; err == nil {
		t.Fatal("the pull succeeded although berthd was killed during it")
	}
	d.Restart(t)

	if entries, _ := os.ReadDir(ingest); len(entries) != 0 {
		t.Fatalf("partial downloads survived the restart: %v", entries)
	}
	if after := len(layerDirs(t, d)); after >= before {
		t.Fatalf("%d layer dirs after the restart, %d before: the half-unpacked one was not removed", after, before)
	}
	if imgs := listImages(t, d); len(imgs) != 0 {
		t.Fatalf("an interrupted pull left images: %v", imgs)
	}
	reg.ClearFaults()
	if got := mustPullImage(t, d, ref); got != configDigest(t, img) {
		t.Fatalf("pull after restart gave %s", got)
	}
}

func TestImageCallsRefuseMissingAndMalformedReferences(t *testing.T) {
	d := harness.Start(t)
	ctx := ctxFor(t)
	const garbage = "!!!garbage@@@::::"
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"PullImage without an image", func() error {
			_, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{})
			return err
		}},
		{"PullImage of a malformed reference", func() error {
			_, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "Not/A:Valid:Ref"}})
			return err
		}},
		{"ImageStatus without an image", func() error {
			_, err := d.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{})
			return err
		}},
		{"RemoveImage without an image", func() error {
			_, err := d.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{})
			return err
		}},
		{"PullImage of garbage", func() error {
			_, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: garbage}})
			return err
		}},
		{"ImageStatus of garbage", func() error {
			_, err := d.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: garbage}})
			return err
		}},
		{"RemoveImage of garbage", func() error {
			_, err := d.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: garbage}})
			return err
		}},
		{"CreateContainer with garbage for its image", func() error {
			cfg := podConfig(d, "garbage-image")
			cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			pod, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				t.Fatalf("RunPodSandbox: %v", err)
			}
			defer d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
			_, err = d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: cfg,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: garbage}}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%v, want InvalidArgument", err)
			}
		})
	}
}
