package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

// summaryPodNetwork is the part of kubelet's /stats/summary this test reads.
type summaryPodNetwork struct {
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Network *struct {
			Name    string  `json:"name"`
			RxBytes *uint64 `json:"rxBytes"`
			TxBytes *uint64 `json:"txBytes"`
		} `json:"network"`
	} `json:"pods"`
}

// nodeProxyGet fetches a path of kubelet's server through the API server's
// node proxy, as kubectl get --raw and metrics-server do.
func nodeProxyGet(ctx context.Context, path string) ([]byte, error) {
	return kube.CoreV1().RESTClient().Get().
		AbsPath("/api/v1/nodes", cluster.NodeName, "proxy", path).DoRaw(ctx)
}

// podRxBytes is the pod's rxBytes in kubelet's summary; ok is false while
// the summary has no network block for it.
func podRxBytes(ctx context.Context, ns, name string) (rx uint64, ok bool, err error) {
	data, err := nodeProxyGet(ctx, "stats/summary")
	if err != nil {
		return 0, false, err
	}
	var s summaryPodNetwork
	if err := json.Unmarshal(data, &s); err != nil {
		return 0, false, err
	}
	for _, p := range s.Pods {
		if p.PodRef.Namespace == ns && p.PodRef.Name == name && p.Network != nil && p.Network.RxBytes != nil {
			return *p.Network.RxBytes, true, nil
		}
	}
	return 0, false, nil
}

// With PodAndContainerStatsFromCRI, kubelet takes every pod statistic from
// the CRI (ListPodSandboxStats, ListPodSandboxMetrics). Berth reads a pod's
// interfaces in its pinned network namespace, so kubelet's summary and
// /metrics/cadvisor show the pod's network, and the counters grow with the
// traffic the pod receives. (With kubelet's default gates a pause-free
// runtime cannot feed them: see the README's "Pod network statistics and
// kubelet".)
func TestKubeletWithStatsFromCRIShowsAPodsNetworkGrowingWithTraffic(t *testing.T) {
	ctx := setUp(t)
	withKubelet(t, ctx, cluster.KubeletSettings{FeatureGates: map[string]bool{"PodAndContainerStatsFromCRI": true}})
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, webPod("web"))
	web := waitPod(t, ctx, ns, "web", "Ready", podTimeout, ready)

	var before uint64
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, shortTimeout, true, func(ctx context.Context) (bool, error) {
		rx, ok, err := podRxBytes(ctx, ns, "web")
		before = rx
		return ok, err
	})
	if err != nil {
		t.Fatalf("kubelet's /stats/summary has no network block for pod %s/web: %v", ns, err)
	}
	// 20 requests from the node: each is well over 100 bytes into the pod.
	for i := 0; i < 20; i++ {
		if body, err := hostGet(fmt.Sprintf("http://%s:8080/", web.Status.PodIP)); err != nil || body != "web\n" {
			t.Fatalf("GET the pod from the node: %v, %q", err, body)
		}
	}
	var after uint64
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, shortTimeout, true, func(ctx context.Context) (bool, error) {
		rx, ok, err := podRxBytes(ctx, ns, "web")
		after = rx
		return ok && rx >= before+20*100, err
	})
	if err != nil {
		t.Errorf("the pod's rxBytes in kubelet's summary went from %d to %d after 20 requests, want at least 2000 more: %v", before, after, err)
	}

	// The CRI's metrics carry cAdvisor's labels as CRI-O sends them: the
	// pod's own have id = the sandbox ID and name = "POD".
	sbs := sandboxes(t, ctx, ns)
	if len(sbs) != 1 {
		t.Fatalf("namespace %s has %d sandboxes, want 1", ns, len(sbs))
	}
	metrics, err := nodeProxyGet(ctx, "metrics/cadvisor")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, l := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(l, "container_network_receive_bytes_total{") &&
			strings.Contains(l, `id="`+sbs[0].Id+`"`) && strings.Contains(l, `interface="eth0"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("kubelet's /metrics/cadvisor has no container_network_receive_bytes_total for eth0 of pod %s/web (sandbox %s)", ns, sbs[0].Id)
	}
}

// kubelet's metrics endpoints (what Prometheus and metrics-server scrape)
// answer with Berth's pods on the node: a runtime that lists a container
// twice in its stats makes kubelet's /metrics fail whole, since a metric
// may not be collected twice.
func TestKubeletsMetricsEndpointsServeBerthsPods(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, busyboxPod("runs", "echo hi; sleep 3600"))
	waitPod(t, ctx, ns, "runs", "Running", podTimeout, running)
	for _, path := range []string{"metrics", "metrics/cadvisor", "metrics/resource", "stats/summary"} {
		data, err := nodeProxyGet(ctx, path)
		if err != nil {
			if len(err.Error()) > 2000 {
				err = fmt.Errorf("%.2000s...", err.Error())
			}
			t.Errorf("GET kubelet's /%s: %v", path, err)
			continue
		}
		if path == "metrics" && !strings.Contains(string(data), `kubelet_container_log_filesystem_used_bytes{container="main",namespace="`+ns+`",pod="runs"`) {
			t.Errorf("kubelet's /metrics has no log size for pod %s/runs", ns)
		}
	}
}
