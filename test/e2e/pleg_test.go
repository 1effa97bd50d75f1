package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

// kubeletCounter is the value of an unlabelled counter in kubelet's
// /metrics, and whether kubelet has it.
func kubeletCounter(ctx context.Context, name string) (float64, bool, error) {
	data, err := nodeProxyGet(ctx, "metrics")
	if err != nil {
		return 0, false, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil, err
		}
	}
	return 0, false, nil
}

// With the EventedPLEG feature gate kubelet learns of container changes from
// GetContainerEvents and relists only every 5 minutes, so a container's exit
// reaches the pod's status in time only through Berth's events. kubelet
// counts its event stream's connections and their failures; after five
// failures it falls back to relisting every second, which would hide a
// broken stream, so the test checks the counters too.
func TestKubeletWithEventedPLEGFollowsContainersThroughBerthsEvents(t *testing.T) {
	ctx := setUp(t)
	withKubelet(t, ctx, cluster.KubeletSettings{FeatureGates: map[string]bool{"EventedPLEG": true}})
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, busyboxPod("runs", "sleep 3600"))
	exits := busyboxPod("exits", "sleep 2; exit 3")
	exits.Spec.RestartPolicy = corev1.RestartPolicyNever
	createPod(t, ctx, ns, exits)

	waitPod(t, ctx, ns, "runs", "Running", podTimeout, running)
	p := waitPod(t, ctx, ns, "exits", "Failed", podTimeout, phase(corev1.PodFailed))
	if st := p.Status.ContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 3 {
		t.Errorf("pod exits: want its container terminated with exit code 3: %s", podStatus(p))
	}

	if n, ok, err := kubeletCounter(ctx, "kubelet_evented_pleg_connection_success_count"); err != nil || !ok || n < 1 {
		t.Errorf("kubelet's event stream from berthd: %v connections (reported %v, %v), want at least 1", n, ok, err)
	}
	if n, _, err := kubeletCounter(ctx, "kubelet_evented_pleg_connection_error_count"); err != nil || n != 0 {
		t.Errorf("kubelet's event stream from berthd failed %v times (%v), want 0", n, err)
	}
}
