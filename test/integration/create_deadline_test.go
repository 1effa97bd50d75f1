package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/test/harness"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCreateContainerOutlivesItsCallersDeadline gives CreateContainer a
// deadline shorter than the runtime takes to create the container (a runc
// that waits 2 s first). The caller gets DeadlineExceeded; berthd finishes
// the create, so the container is there under its name, as kubelet expects
// when it retries, and stopping and removing the pod leaves nothing: no
// container process kept alive in the pod's cgroup.
func TestCreateContainerOutlivesItsCallersDeadline(t *testing.T) {
	slow := filepath.Join(t.TempDir(), "slow-runc")
	script := "#!/bin/sh\nfor a; do [ \"$a\" = create ] && sleep 2 && break; done\nexec /usr/sbin/runc \"$@\"\n"
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.WithConfig(func(c *config.Config) {
		c.CNI.DefaultNetwork = true
		c.Runtime.Runtimes["slow"] = oci.Handler{Type: "oci", Path: slow}
	}))
	image := pullPodTestImage(t, d)
	cfg := podConfig(d, "deadline")
	pod := mustRunPodWith(t, d, cfg, "slow")

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "slow"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "3600"},
		},
		SandboxConfig: cfg,
	})
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
