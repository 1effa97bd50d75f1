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
	"time"

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
	before := listedObjects(t, d)
	d.Stop(t)
	d.Restart(t)
	if after := listedObjects(t, d); after != before {
		t.Fatalf("after a restart berthd lists\n%s\nbefore it listed\n%s", after, before)
	}
}

// listedObjects lists the containers, pods and image IDs berthd reports,
// one a line, sorted by kind.
func listedObjects(t *testing.T, d *harness.Daemon) string {
	t.Helper()
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

// noReserve turns the pull reserve off, which the default 1 GiB would make
// larger than a test disk.
var noReserve = harness.WithConfig(func(c *config.Config) { c.Registry.MinFreeBytes = 0 })

// diskPod runs a pod on the host's network whose log directory is logDir,
// and a container in it running sh -c script.
func diskPod(t *testing.T, d *harness.Daemon, image, name, logDir, script string) (pod, ctr string) {
	t.Helper()
	cfg := podConfig(d, name)
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.LogDirectory = logDir
	pod = mustRunPod(t, d, cfg)
	resp, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"/bin/sh", "-c", script},
			LogPath:  name + ".log",
		}})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := d.Runtime.StartContainer(ctxFor(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	return pod, resp.ContainerId
}

// assertAlive checks that berthd answers and that the container still runs
// and can exec.
func assertAlive(t *testing.T, d *harness.Daemon, ctr string) {
	t.Helper()
	if !d.Running() {
		t.Fatalf("berthd is gone; log:\n%s", d.Logs())
	}
	st, err := d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: ctr})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("ContainerStatus: %v, %v; want RUNNING", st.GetStatus().GetState(), err)
	}
	if out := mustPodExec(t, d, ctr, "echo", "alive"); out != "alive" {
		t.Fatalf("exec said %q", out)
	}
}

// removeAndCheckSpace stops and removes pod (and logDir, as kubelet
// would), checks that nothing of it is left and that the disk got back at
// least want free bytes.
func removeAndCheckSpace(t *testing.T, d *harness.Daemon, pod, logDir string, want int64) {
	t.Helper()
	mustStopPod(t, d, pod)
	mustRemovePod(t, d, pod)
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, d)
	if free := freeBytes(t, d.Disk); free < want {
		t.Fatalf("%d bytes free after removing the pod, want at least %d", free, want)
	}
}

func TestAContainerFillingItsWritableLayerGetsENOSPCAndBerthdCarriesOn(t *testing.T) {
	reg := registry.Start(t)
	d := harness.Start(t, harness.WithDisk(96<<20), noReserve)
	ref := mustPullImage(t, d, reg.Push(t, "library/busybox:1", images.Busybox()))
	logDir := t.TempDir()
	pod, ctr := diskPod(t, d, ref, "fill-layer", logDir, "exec sleep 100000")
	emptyish := freeBytes(t, d.Disk)

	code, out := podExec(t, d, ctr, "dd", "if=/dev/zero", "of=/fill", "bs=1M")
	if code == 0 || !strings.Contains(out, "No space left on device") {
		t.Fatalf("dd filling the writable layer: exit %d, %q; want ENOSPC", code, out)
	}
	if free := freeBytes(t, d.Disk); free > 1<<20 {
		t.Fatalf("%d bytes still free after dd", free)
	}
	assertAlive(t, d, ctr)
	// Calls that write with the disk full fail or succeed whole.
	cfg := podConfig(d, "while-full")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	if _, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg}); status.Code(err) != codes.ResourceExhausted ||
		!strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("RunPodSandbox with the disk full: %v, want ResourceExhausted saying the disk is full", err)
	}
	if _, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "second"}, Image: &runtimeapi.ImageSpec{Image: ref},
			Command: []string{"sleep", "1000"}}}); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("CreateContainer with the disk full: %v, want ResourceExhausted saying the disk is full", err)
	}
	if got := listedObjects(t, d); got != "container "+ctr+"\npod "+pod+"\n"+ref {
		t.Fatalf("after the calls refused for want of space berthd lists\n%s\nwant only the first pod and container", got)
	}
	// The databases open and list the same with the disk full...
	assertRestartListsTheSame(t, d)
	assertAlive(t, d, ctr)
	// ... and once the container is gone, its layer is freed.
	removeAndCheckSpace(t, d, pod, logDir, emptyish-1<<20)
	assertRestartListsTheSame(t, d)
}

func TestAContainerLogFillingTheDiskLeavesBerthdAndTheMonitorRunning(t *testing.T) {
	reg := registry.Start(t)
	d := harness.Start(t, harness.WithDisk(64<<20), noReserve)
	ref := mustPullImage(t, d, reg.Push(t, "library/busybox:1", images.Busybox()))
	logDir := filepath.Join(d.Disk, "logs")
	emptyish := freeBytes(t, d.Disk)
	free := fill(t, filepath.Join(d.Disk, "filler"), 40<<20) // freed later
	// 1 MiB of 4 KiB lines every 50 ms, for ever.
	pod, ctr := diskPod(t, d, ref, "fill-log", logDir,
		`line=$(head -c 4000 /dev/zero | tr '\0' x); while :; do yes "$line" | head -c 1048576; sleep 0.05; done`)
	logPath := filepath.Join(logDir, "fill-log.log")

	waitUntil(t, "the log to fill the disk", func() bool { return freeBytes(t, d.Disk) < 64<<10 })
	assertAlive(t, d, ctr)
	full, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Space freed: the monitor writes the log again.
	free()
	waitUntil(t, "the log to grow again", func() bool {
		st, err := os.Stat(logPath)
		return err == nil && st.Size() > full.Size()+1<<20
	})
	assertAlive(t, d, ctr)
	assertRestartListsTheSame(t, d)
	removeAndCheckSpace(t, d, pod, logDir, emptyish-1<<20)
	assertRestartListsTheSame(t, d)
}

// waitUntil polls cond until it holds, failing the test after two minutes
// (a bound on a hang, not a measure of speed).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited two minutes for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
