package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/test/harness"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// startWithWrappedRunc starts a berthd with the default network and a
// runtime handler named handler: runc behind a shell script that runs
// onCreate (shell) first when it is asked to create a container.
func startWithWrappedRunc(t *testing.T, handler, onCreate string) *harness.Daemon {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), handler+"-runc")
	script := "#!/bin/sh\nfor a; do [ \"$a\" = create ] && " + onCreate + "; done\nexec /usr/sbin/runc \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return harness.Start(t, harness.WithConfig(func(c *config.Config) {
		c.CNI.DefaultNetwork = true
		c.Runtime.Runtimes[handler] = oci.Handler{Type: "oci", Path: wrapper}
	}))
}

// sleeperRequest creates a container named name in pod that sleeps.
func sleeperRequest(pod string, cfg *runtimeapi.PodSandboxConfig, image, name string) *runtimeapi.CreateContainerRequest {
	return &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "3600"},
		},
		SandboxConfig: cfg,
	}
}

// TestCreateContainerOutlivesItsCallersDeadline gives CreateContainer a
// deadline shorter than the runtime takes to create the container (a runc
// that waits 2 s first). The caller gets DeadlineExceeded; berthd finishes
// the create, so the container is there under its name, as kubelet expects
// when it retries, and stopping and removing the pod leaves nothing: no
// container process kept alive in the pod's cgroup.
func TestCreateContainerOutlivesItsCallersDeadline(t *testing.T) {
	d := startWithWrappedRunc(t, "slow", "sleep 2 && break")
	image := pullPodTestImage(t, d)
	cfg := podConfig(d, "deadline")
	pod := mustRunPodWith(t, d, cfg, "slow")

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := d.Runtime.CreateContainer(ctx, sleeperRequest(pod, cfg, image, "slow"))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("CreateContainer with a 500ms deadline on a 2s create: %v, want DeadlineExceeded", err)
	}

	var ctrs []*runtimeapi.Container
	for deadline := time.Now().Add(time.Minute); len(ctrs) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod}})
		if err != nil {
			t.Fatal(err)
		}
		ctrs = resp.Containers
	}
	if len(ctrs) != 1 || ctrs[0].State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("containers of the pod after the create finished: %v, want one created", ctrs)
	}
	mustStopPod(t, d, pod)
	mustRemovePod(t, d, pod)
}

// TestATTYContainerWhoseMonitorDiesInCreateLeavesNothing: the monitor
// listens for the pty master on a socket while the runtime creates the
// container. Killed there (by a runtime that kills its parent), it cleans
// up nothing itself, so the socket must be among what berthd removes when
// the create fails. It lives in the container's state dir, which must be
// gone; nothing may be left in /tmp either, where it once lived, nor, as
// the harness checks at the end, anywhere else.
func TestATTYContainerWhoseMonitorDiesInCreateLeavesNothing(t *testing.T) {
	d := startWithWrappedRunc(t, "killer", "kill -9 $PPID && exit 1")
	image := pullPodTestImage(t, d)
	cfg := podConfig(d, "monitor-dies")
	pod := mustRunPodWith(t, d, cfg, "killer")
	tmp := func() []string { // the monitor's TMPDIR is unset: /tmp
		m, _ := filepath.Glob("/tmp/berth-console-*")
		return m
	}
	before := tmp()

	_, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "tty"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "3600"},
			Tty:      true,
		},
		SandboxConfig: cfg,
	})
	if err == nil {
		t.Fatal("CreateContainer succeeded though the runtime killed the monitor")
	}
	for _, f := range tmp() {
		if !slices.Contains(before, f) {
			t.Errorf("%s left behind by the killed monitor", f)
		}
	}
	resp, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Containers) != 0 {
		t.Errorf("containers after the failed create: %v", resp.Containers)
	}
	if left, _ := os.ReadDir(filepath.Join(d.State, "containers")); len(left) != 0 {
		t.Errorf("container state left after the failed create: %v", left)
	}
	mustStopPod(t, d, pod)
	mustRemovePod(t, d, pod)
}

// TestTwoCreatesOfOneNameMakeOneContainerAndRepeatNoWork sends a second
// CreateContainer with the same name while the first is inside the
// runtime's create (held there by a runc wrapper until released), as
// kubelet does when it retries after its deadline. The second is refused
// with AlreadyExists at once, without reaching the runtime; the first
// makes the one container; nothing is left behind once the pod is gone.
func TestTwoCreatesOfOneNameMakeOneContainerAndRepeatNoWork(t *testing.T) {
	dir := t.TempDir()
	creates, release := filepath.Join(dir, "creates"), filepath.Join(dir, "release")
	d := startWithWrappedRunc(t, "gated", fmt.Sprintf("{ echo >> %s; while [ ! -e %s ]; do sleep 0.05; done; } && break", creates, release))
	image := pullPodTestImage(t, d)
	cfg := podConfig(d, "one-name")
	pod := mustRunPodWith(t, d, cfg, "gated")
	req := sleeperRequest(pod, cfg, image, "twice")
	type result struct {
		id  string
		err error
	}
	results := make(chan result, 2)
	create := func() {
		resp, err := d.Runtime.CreateContainer(ctxFor(t), req)
		results <- result{resp.GetContainerId(), err}
	}
	runtimeCreates := func() int {
		b, _ := os.ReadFile(creates)
		return len(b)
	}
	go create()
	for runtimeCreates() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	go create()
	// Until the second answers, or reaches the runtime as well.
	var got []result
	for len(got) == 0 && runtimeCreates() < 2 {
		select {
		case r := <-results:
			got = append(got, r)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := runtimeCreates(); n != 1 {
		t.Errorf("the runtime was asked to create %d times, want once: the second call repeated the work", n)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for len(got) < 2 {
		got = append(got, <-results)
	}
	var ok, exists int
	for _, r := range got {
		switch {
		case r.err == nil:
			ok++
		case status.Code(r.err) == codes.AlreadyExists:
			exists++
		default:
			t.Errorf("CreateContainer: %v, want success or AlreadyExists", r.err)
		}
	}
	if ok != 1 || exists != 1 {
		t.Errorf("%d creates succeeded and %d got AlreadyExists, want one each", ok, exists)
	}
	resp, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Containers) != 1 {
		t.Errorf("the pod has %d containers, want 1: %v", len(resp.Containers), resp.Containers)
	}
	mustStopPod(t, d, pod)
	mustRemovePod(t, d, pod)
}
