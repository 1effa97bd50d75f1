package integration

// A full disk (issue 16): berthd's root on a small tmpfs the harness
// mounts. A pull that does not fit fails with ResourceExhausted and frees
// what it wrote; a container that fills its writable layer or its log
// fills the disk, not berthd; and after each, the databases open again
// and list the same objects.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// freeBytes is what statfs says is free for unprivileged use at path.
func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill writes a file of zeros at path until free bytes are left on its
// filesystem, and returns a function removing it.
func fill(t *testing.T, path string, leave int64) func() {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := freeBytes(t, path) - leave; n > 0 {
		if _, err := f.Write(make([]byte, n)); err != nil {
			t.Fatalf("fill %s: %v", path, err)
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// imageIDs lists the IDs of the images berthd reports, sorted.
func imageIDs(t *testing.T, d *harness.Daemon) []string {
	t.Helper()
	var ids []string
	for _, img := range listImages(t, d) {
		ids = append(ids, img.Id)
	}
	slices.Sort(ids)
	return ids
}

// assertRestartListsTheSame restarts berthd and checks that its databases
// open and list the same images, pods and containers as before.
func assertRestartListsTheSame(t *testing.T, d *harness.Daemon) {
	t.Helper()
	objects := func() string {
		pods, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Fatalf("ListPodSandbox: %v", err)
		}
		ctrs, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{})
		if err != nil {
			t.Fatalf("ListContainers: %v", err)
		}
		var out []string
		for _, p := range pods.Items {
			out = append(out, "pod "+p.Id)
		}
		for _, c := range ctrs.Containers {
			out = append(out, "container "+c.Id)
		}
		slices.Sort(out)
		return strings.Join(append(out, imageIDs(t, d)...), "\n")
	}
	before := objects()
	d.Stop(t)
	d.Restart(t)
	if after := objects(); after != before {
		t.Fatalf("after a restart berthd lists\n%s\nbefore it listed\n%s", after, before)
	}
}

func TestAPullBelowTheFreeSpaceReserveFailsNamingTheImageAndFreesWhatItWrote(t *testing.T) {
	const reserve = 48 << 20
	reg := registry.Start(t)
	d := harness.Start(t, harness.WithDisk(160<<20), harness.WithConfig(func(c *config.Config) {
		c.Registry.MinFreeBytes = reserve
	}))
	store := filepath.Join(d.Root, "image")
	busybox := reg.Push(t, "library/busybox:1", images.Busybox())
	// 512 MiB of zeros in a blob of half a megabyte.
	bomb := reg.Push(t, "bomb:1", images.GzipBomb(512<<20))
	top := layerDigests(t, images.GzipBomb(512<<20))[1]

	before := freeBytes(t, store)
	_, err := pullImage(t, d, bomb, nil)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), bomb) ||
		!strings.Contains(err.Error(), top.String()) || !strings.Contains(err.Error(), "reserve") {
		t.Fatalf("PullImage of a layer that unpacks past the reserve: %v, want ResourceExhausted naming %s, its layer %s and the reserve", err, bomb, top)
	}
	if ids := imageIDs(t, d); len(ids) != 0 {
		t.Fatalf("the refused pull left images %v", ids)
	}
	if ents, _ := os.ReadDir(filepath.Join(store, "ingest")); len(ents) != 0 {
		t.Errorf("ingest files left: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(store, "blobs", "sha256", top.Hex)); !os.IsNotExist(err) {
		t.Errorf("the layer that did not fit was stored (%v)", err)
	}
	// Only busybox's layer, verified, stays for the next pull.
	if n := len(layerDirs(t, d)); n != 1 {
		t.Errorf("%d layer directories after the refused pull, want busybox's only", n)
	}
	if after := freeBytes(t, store); after < before-16<<20 {
		t.Errorf("%d bytes free after the refused pull, %d before: the partial layer was not removed", after, before)
	}

	// A disk filled by someone else to below the reserve: a pull fails
	// the same way, and works once space is freed.
	free := fill(t, filepath.Join(d.Disk, "filler"), reserve-1<<20)
	if _, err := pullImage(t, d, busybox, nil); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), busybox) {
		t.Fatalf("PullImage with the disk at the reserve: %v, want ResourceExhausted naming %s", err, busybox)
	}
	free()
	id := mustPullImage(t, d, busybox)
	if ids := imageIDs(t, d); !slices.Equal(ids, []string{id}) {
		t.Fatalf("images %v, want busybox's %s", ids, id)
	}
	assertRestartListsTheSame(t, d)
}
