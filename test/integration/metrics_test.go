package integration

// ListMetricDescriptors and ListPodSandboxMetrics, as kubelet's
// PodAndContainerStatsFromCRI reads them: cAdvisor's names, labels that
// match their descriptors, and figures that follow what the pod does.

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podMetrics is ListPodSandboxMetrics' entry for pod, nil if absent.
func podMetrics(t *testing.T, rt runtimeapi.RuntimeServiceClient, pod string) *runtimeapi.PodSandboxMetrics {
	t.Helper()
	resp, err := rt.ListPodSandboxMetrics(ctxFor(t), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatalf("ListPodSandboxMetrics: %v", err)
	}
	for _, p := range resp.PodMetrics {
		if p.PodSandboxId == pod {
			return p
		}
	}
	return nil
}

// metricValue is the value of the metric called name whose label values
// end with tail, and whether there is one.
func metricValue(ms []*runtimeapi.Metric, name string, tail ...string) (uint64, bool) {
	for _, m := range ms {
		if m.Name != name || len(m.LabelValues) < len(tail) {
			continue
		}
		ok := true
		for i, v := range tail {
			if m.LabelValues[len(m.LabelValues)-len(tail)+i] != v {
				ok = false
			}
		}
		if ok {
			return m.GetValue().GetValue(), true
		}
	}
	return 0, false
}

func containerMetrics(p *runtimeapi.PodSandboxMetrics, id string) []*runtimeapi.Metric {
	for _, c := range p.GetContainerMetrics() {
		if c.ContainerId == id {
			return c.Metrics
		}
	}
	return nil
}

func TestPodSandboxMetricsFollowCPUAndCarryMemoryNetworkAndFilesystemAsDescribed(t *testing.T) {
	var sock string
	e := startNetDaemon(t, 24, func(c *config.Config) {
		sock = filepath.Join(filepath.Dir(c.Socket), "metrics.sock")
		c.Metrics.Address = sock
	})
	e.withBusybox(t)
	for _, h := range handlers {
		t.Run(h, func(t *testing.T) {
			cfg := podConfig(e.d, "metrics-"+h)
			cfg.LogDirectory = t.TempDir()
			p := &ctrEnv{d: e.d, image: e.image, podCfg: cfg, logDir: cfg.LogDirectory}
			p.pod = mustRunPodWith(t, e.d, cfg, h)
			// Half a core at most: the machine is shared.
			hogCfg := statsContainer(p, "hog", "hog", "while :; do :; done")
			hogCfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000}
			hog := p.mustRun(t, hogCfg)

			descs, err := e.d.Runtime.ListMetricDescriptors(ctxFor(t), &runtimeapi.ListMetricDescriptorsRequest{})
			if err != nil {
				t.Fatalf("ListMetricDescriptors: %v", err)
			}
			keys := map[string][]string{}
			for _, d := range descs.Descriptors {
				keys[d.Name] = d.LabelKeys
			}
			for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
				"container_network_receive_bytes_total", "container_fs_usage_bytes"} {
				if keys[name] == nil {
					t.Errorf("ListMetricDescriptors lacks %s (has %v)", name, keys)
				}
			}

			first := podMetrics(t, e.d.Runtime, p.pod)
			if first == nil {
				t.Fatalf("ListPodSandboxMetrics has no entry for the ready pod %s", p.pod)
			}
			cpu0, ok := metricValue(containerMetrics(first, hog), "container_cpu_usage_seconds_total", "total")
			if !ok {
				t.Fatalf("hog's metrics lack container_cpu_usage_seconds_total: %v", containerMetrics(first, hog))
			}
			// Whole seconds: half a core adds one every two seconds.
			deadline := time.Now().Add(30 * time.Second)
			var last *runtimeapi.PodSandboxMetrics
			for {
				last = podMetrics(t, e.d.Runtime, p.pod)
				if cpu, _ := metricValue(containerMetrics(last, hog), "container_cpu_usage_seconds_total", "total"); cpu > cpu0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("hog's CPU seconds stayed at %d for 30 s of spinning", cpu0)
				}
				time.Sleep(500 * time.Millisecond)
			}
			if v, ok := metricValue(last.Metrics, "container_cpu_usage_seconds_total", "total"); !ok || v == 0 {
				t.Errorf("the pod's own CPU seconds %d (present %v), want some (the hog spins)", v, ok)
			}

			// Every metric is described, with as many label values as keys.
			all := append([]*runtimeapi.Metric(nil), last.Metrics...)
			for _, c := range last.ContainerMetrics {
				all = append(all, c.Metrics...)
			}
			for _, m := range all {
				k, ok := keys[m.Name]
				if !ok {
					t.Errorf("metric %s is not in ListMetricDescriptors", m.Name)
				} else if len(k) != len(m.LabelValues) {
					t.Errorf("metric %s has label values %q for keys %q", m.Name, m.LabelValues, k)
				}
			}
			if v, ok := metricValue(containerMetrics(last, hog), "container_memory_working_set_bytes"); !ok || v == 0 {
				t.Errorf("hog's working set %d (present %v)", v, ok)
			}
			if _, ok := metricValue(containerMetrics(last, hog), "container_fs_usage_bytes"); !ok {
				t.Errorf("hog has no container_fs_usage_bytes: %v", containerMetrics(last, hog))
			}
			if _, ok := metricValue(last.Metrics, "container_network_receive_bytes_total", "eth0"); !ok {
				t.Errorf("the pod has no container_network_receive_bytes_total for eth0: %v", last.Metrics)
			}
			// The pod's CNI ADD is in berthd's own metrics.
			if n := scrape(t, sock)[`berth_cni_operation_duration_seconds_count{operation="ADD",result="ok"}`]; n < 1 {
				t.Errorf("berthd's metrics count %v CNI ADDs with a pod on the network", n)
			}
			if ms := containerMetrics(last, hog); len(ms) > 0 && (ms[0].LabelValues[0] != hog || ms[0].LabelValues[1] != "hog" || ms[0].LabelValues[2] != e.image) {
				t.Errorf("hog's labels %q, want its ID, name and image", ms[0].LabelValues)
			}
		})
	}
}
