package e2e

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

// imageStored reports whether berthd holds ref.
func imageStored(ctx context.Context, ref string) (bool, error) {
	st, err := criImg.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return false, err
	}
	return st.Image != nil, nil
}

// kubelet's image garbage collection lists images through ListImages,
// weighs them with ImageFsInfo and the images' sizes, and removes the unused
// ones with RemoveImage; an image a running container uses stays. kubelet
// collects as it starts and then every 5 minutes: this test restarts it with
// thresholds that make its first collection free everything it can, and
// allows for a second round in case the first came before kubelet's stats
// were ready.
func TestKubeletsImageGarbageCollectionRemovesUnusedImagesThroughBerth(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, busyboxPod("inuse", "sleep 3600"))
	waitPod(t, ctx, ns, "inuse", "Running", podTimeout, running)
	// The pause image: no pod runs it on Berth (which has no pause
	// process), and its ID is no other image's (busybox:1.36 is busybox's
	// config in Docker's format, the same image ID as the running 1.37).
	unused := cluster.Pause
	if _, err := criImg.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: unused}}); err != nil {
		t.Fatalf("pull %s: %v", unused, err)
	}

	withKubelet(t, ctx, cluster.KubeletSettings{ImageGC: true})
	err := wait.PollUntilContextTimeout(ctx, time.Second, 7*time.Minute, true, func(ctx context.Context) (bool, error) {
		stored, err := imageStored(ctx, unused)
		return !stored, err
	})
	if err != nil {
		t.Fatalf("kubelet's image garbage collection did not remove the unused image %s: %v", unused, err)
	}
	if stored, err := imageStored(ctx, busybox); err != nil || !stored {
		t.Errorf("the image %s of a running container is gone after kubelet's image garbage collection (stored %v, %v)", busybox, stored, err)
	}
	if p := waitPod(t, ctx, ns, "inuse", "Running", shortTimeout, running); p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the running pod's container restarted during image garbage collection: %s", podStatus(p))
	}
}
