package integration

// Hostile images by what they hold rather than where they unpack (issue
// 16): device nodes, a great many files, symlinks that a mount destination
// names; and CRI requests of great size. Layers that write outside the
// store are in image_test.go, the gzip bomb in disk_full_test.go.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDeviceNodesOfALayerAreCreatedButCannotBeOpenedInAContainer: a
// layer's device nodes are unpacked as containerd unpacks them (images
// legitimately carry /dev entries), but a container that is not
// privileged cannot open them: the device cgroup allows only the default
// devices, so a node for the host's memory or its root disk is useless.
func TestDeviceNodesOfALayerAreCreatedButCannotBeOpenedInAContainer(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	// /dev/mem, and the block device the host's root is on.
	img := images.DeviceNodes(1, 1, int64(unix.Major(st.Dev)), int64(unix.Minor(st.Dev)))
	reg := registry.Start(t)
	ref := reg.Push(t, "devices:1", img)
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		mustPullImage(t, e.d, ref)
		cfg := e.config("devices", "exec sleep 100000")
		cfg.Image.Image = ref
		id := e.mustRun(t, cfg)
		if out := e.mustExec(t, id, "ls", "-l", images.DeviceNodesDir); !strings.Contains(out, "crw-rw-rw-") || !strings.Contains(out, "brw-rw-rw-") {
			t.Fatalf("the layer's device nodes in the container:\n%s\nwant a char and a block device", out)
		}
		for _, node := range []string{"char", "block"} {
			code, out := podExec(t, e.d, id, "head", "-c", "1", images.DeviceNodesDir+"/"+node)
			if code == 0 || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("reading the layer's %s device: exit %d, %q; want EPERM from the device cgroup", node, code, out)
			}
		}
	})
}

func TestALayerOfFiftyThousandFilesUnpacksWholeAndGoesWithItsImage(t *testing.T) {
	const n = 50000
	reg := registry.Start(t)
	d := harness.Start(t)
	ref := reg.Push(t, "many:1", images.ManyFiles(n))
	id := mustPullImage(t, d, ref)
	pod, ctr := diskPod(t, d, id, "many-files", t.TempDir(), "exec sleep 100000")
	if out := mustPodExec(t, d, ctr, "sh", "-c", "find /many -type f | wc -l"); out != strconv.Itoa(n) {
		t.Fatalf("the container sees %s files of the layer's %d", out, n)
	}
	if out := mustPodExec(t, d, ctr, "cat", images.ManyFilesPath(n-1)); out != "x" {
		t.Fatalf("the last file holds %q", out)
	}
	mustStopPod(t, d, pod)
	mustRemovePod(t, d, pod)
	removeImage(t, d, id)
	if dirs := layerDirs(t, d); len(dirs) != 0 {
		t.Fatalf("layer directories %v left after removing the image", dirs)
	}
}

// TestAMountDestinationThroughAnImageSymlinkStaysInTheRootfs: the image's
// /hostroot -> / and /up -> ../../.. lead out of the rootfs if followed on
// the host; a mount destination through them must resolve inside the
// container's root, so the host's /tmp gets no mount and no directory.
func TestAMountDestinationThroughAnImageSymlinkStaysInTheRootfs(t *testing.T) {
	reg := registry.Start(t)
	ref := reg.Push(t, "symlinks:1", images.EscapingSymlinks())
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "marker"), []byte("mounted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		mustPullImage(t, e.d, ref)
		name := fmt.Sprintf("berth-escape-mount-%s-%d", filepath.Base(t.Name()), os.Getpid())
		cfg := e.config("symlinked-mount", "exec sleep 100000")
		cfg.Image.Image = ref
		cfg.Mounts = []*runtimeapi.Mount{
			{ContainerPath: "/hostroot/tmp/" + name + "-a", HostPath: host},
			{ContainerPath: "/up/tmp/" + name + "-b", HostPath: host},
		}
		id := e.mustRun(t, cfg)
		for _, suffix := range []string{"-a", "-b"} {
			if out := e.mustExec(t, id, "cat", "/tmp/"+name+suffix+"/marker"); out != "mounted" {
				t.Errorf("the mount through a symlink is not at /tmp/%s%s in the container: %q", name, suffix, out)
			}
			p := "/tmp/" + name + suffix
			if isMountPoint(t, p) {
				unix.Unmount(p, unix.MNT_DETACH)
				t.Errorf("the mount escaped the rootfs to the host's %s", p)
			}
			if _, err := os.Lstat(p); err == nil {
				os.Remove(p)
				t.Errorf("the mount destination was made on the host at %s", p)
			}
		}
	})
}

// TestTenThousandLabelsAndAnnotationsAreKeptWhole: nothing in the CRI
// bounds a pod's labels; ten thousand labels and annotations on a pod and
// its container are stored, returned, filtered on and kept across a
// restart, and the pod goes without a leak.
func TestTenThousandLabelsAndAnnotationsAreKeptWhole(t *testing.T) {
	const n = 10000
	reg := registry.Start(t)
	d := harness.Start(t)
	ref := mustPullImage(t, d, reg.Push(t, "library/busybox:1", images.Busybox()))
	many := func(prefix string) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("%s.example.com/key-%05d", prefix, i)] = fmt.Sprintf("value-%05d", i)
		}
		return m
	}
	cfg := podConfig(d, "many-labels")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.Labels, cfg.Annotations = many("label"), many("annotation")
	pod := mustRunPod(t, d, cfg)
	resp, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "many-labels"},
			Image:    &runtimeapi.ImageSpec{Image: ref},
			Command:  []string{"sleep", "100000"},
			Labels:   many("clabel"), Annotations: many("cannotation"),
		}})
	if err != nil {
		t.Fatalf("CreateContainer with %d labels: %v", n, err)
	}
	ctr := resp.ContainerId
	check := func() {
		t.Helper()
		ps := mustPodStatus(t, d, pod).Status
		if len(ps.Labels) != n || len(ps.Annotations) != n || ps.Labels["label.example.com/key-09999"] != "value-09999" {
			t.Fatalf("PodSandboxStatus has %d labels and %d annotations, want %d each", len(ps.Labels), len(ps.Annotations), n)
		}
		cs, err := d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: ctr})
		if err != nil || len(cs.Status.Labels) != n || len(cs.Status.Annotations) != n {
			t.Fatalf("ContainerStatus: %v; %d labels, %d annotations, want %d each", err, len(cs.GetStatus().GetLabels()), len(cs.GetStatus().GetAnnotations()), n)
		}
		pods, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
			LabelSelector: map[string]string{"label.example.com/key-05000": "value-05000", "label.example.com/key-00001": "value-00001"}}})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Id != pod {
			t.Fatalf("ListPodSandbox by two of its labels: %v, %v", pods, err)
		}
		ctrs, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
			LabelSelector: map[string]string{"clabel.example.com/key-07777": "value-07777"}}})
		if err != nil || len(ctrs.Containers) != 1 || ctrs.Containers[0].Id != ctr {
			t.Fatalf("ListContainers by one of its labels: %v, %v", ctrs, err)
		}
	}
	check()
	d.Stop(t)
	d.Restart(t)
	check()
	mustStopPod(t, d, pod)
	mustRemovePod(t, d, pod)
	assertNothingLeft(t, d)
}
