package sandbox

// Pod and container metrics for the CRI's ListMetricDescriptors and
// ListPodSandboxMetrics, which kubelet's PodAndContainerStatsFromCRI
// feature gate serves on its /metrics/cadvisor endpoint in place of
// cAdvisor's.
//
// The figures are those of the stats calls, from the same samples
// (stats.go): a ListPodSandboxMetrics is a ListPodSandboxStats put in
// cAdvisor's names. Names, help and labels are cAdvisor's, as CRI-O sends
// them: every metric has the labels id, name and image (a pod's own
// metrics have name "POD" and no image), plus its own (cpu, interface,
// failure_type and scope). kubelet turns each into a Prometheus sample
// with the descriptor's label keys, so a metric's label values always
// match its descriptor's keys. container_fs_inodes_used is Berth's own
// (cAdvisor reports the filesystem's free and total inodes instead): the
// writable layer's inodes, as the stats calls count them. Values are unsigned integers (the CRI's
// type): seconds of CPU are whole seconds, as CRI-O sends them.

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var baseLabels = []string{"id", "name", "image"}

func labelKeys(extra ...string) []string {
	return append(append([]string(nil), baseLabels...), extra...)
}

// The metrics Berth sends.
var metricDescriptors = []*runtimeapi.MetricDescriptor{
	{Name: "container_cpu_usage_seconds_total", Help: "Cumulative cpu time consumed in seconds.", LabelKeys: labelKeys("cpu")},
	{Name: "container_memory_usage_bytes", Help: "Current memory usage in bytes, including all memory regardless of when it was accessed", LabelKeys: labelKeys()},
	{Name: "container_memory_working_set_bytes", Help: "Current working set in bytes.", LabelKeys: labelKeys()},
	{Name: "container_memory_rss", Help: "Size of RSS in bytes.", LabelKeys: labelKeys()},
	{Name: "container_memory_failures_total", Help: "Cumulative count of memory allocation failures.", LabelKeys: labelKeys("failure_type", "scope")},
	{Name: "container_network_receive_bytes_total", Help: "Cumulative count of bytes received", LabelKeys: labelKeys("interface")},
	{Name: "container_network_receive_errors_total", Help: "Cumulative count of errors encountered while receiving", LabelKeys: labelKeys("interface")},
	{Name: "container_network_transmit_bytes_total", Help: "Cumulative count of bytes transmitted", LabelKeys: labelKeys("interface")},
	{Name: "container_network_transmit_errors_total", Help: "Cumulative count of errors encountered while transmitting", LabelKeys: labelKeys("interface")},
	{Name: "container_network_receive_packets_total", Help: "Cumulative count of packets received", LabelKeys: labelKeys("interface")},
	{Name: "container_network_receive_packets_dropped_total", Help: "Cumulative count of packets dropped while receiving", LabelKeys: labelKeys("interface")},
	{Name: "container_network_transmit_packets_total", Help: "Cumulative count of packets transmitted", LabelKeys: labelKeys("interface")},
	{Name: "container_network_transmit_packets_dropped_total", Help: "Cumulative count of packets dropped while transmitting", LabelKeys: labelKeys("interface")},
	{Name: "container_fs_usage_bytes", Help: "Number of bytes that are consumed by the container on this filesystem.", LabelKeys: labelKeys()},
	{Name: "container_fs_inodes_used", Help: "Number of inodes used by the container on this filesystem.", LabelKeys: labelKeys()},
	{Name: "container_processes", Help: "Number of processes running inside the container.", LabelKeys: labelKeys()},
}

// MetricDescriptors describes every metric ListPodMetrics sends.
func MetricDescriptors() []*runtimeapi.MetricDescriptor { return metricDescriptors }

// metricSet collects one owner's metrics.
type metricSet struct {
	base []string // id, name, image
	out  []*runtimeapi.Metric
}

func (s *metricSet) add(name string, typ runtimeapi.MetricType, ts int64, v *runtimeapi.UInt64Value, extra ...string) {
	if v == nil {
		return
	}
	s.out = append(s.out, &runtimeapi.Metric{
		Name: name, Timestamp: ts, MetricType: typ, Value: &runtimeapi.UInt64Value{Value: v.Value},
		LabelValues: append(append([]string(nil), s.base...), extra...),
	})
}

const (
	metricCounter = runtimeapi.MetricType_COUNTER
	metricGauge   = runtimeapi.MetricType_GAUGE
)

func (s *metricSet) cpuMemory(cpu *runtimeapi.CpuUsage, mem *runtimeapi.MemoryUsage) {
	if cpu != nil && cpu.UsageCoreNanoSeconds != nil {
		secs := &runtimeapi.UInt64Value{Value: cpu.UsageCoreNanoSeconds.Value / uint64(time.Second)}
		s.add("container_cpu_usage_seconds_total", metricCounter, cpu.Timestamp, secs, "total")
	}
	if mem != nil {
		ts := mem.Timestamp
		s.add("container_memory_usage_bytes", metricGauge, ts, mem.UsageBytes)
		s.add("container_memory_working_set_bytes", metricGauge, ts, mem.WorkingSetBytes)
		s.add("container_memory_rss", metricGauge, ts, mem.RssBytes)
		s.add("container_memory_failures_total", metricCounter, ts, mem.PageFaults, "pgfault", "container")
		s.add("container_memory_failures_total", metricCounter, ts, mem.MajorPageFaults, "pgmajfault", "container")
	}
}

// ListPodMetrics reports every ready pod's metrics and its containers',
// oldest pod first.
func (m *Manager) ListPodMetrics(ctx context.Context) []*runtimeapi.PodSandboxMetrics {
	samples := m.listPodSamples(ctx, nil)
	out := make([]*runtimeapi.PodSandboxMetrics, 0, len(samples))
	for _, s := range samples {
		out = append(out, m.podMetrics(s))
	}
	return out
}

func (m *Manager) podMetrics(s podSample) *runtimeapi.PodSandboxMetrics {
	st := s.stats
	id := st.GetAttributes().GetId()
	linux := st.GetLinux()
	pod := metricSet{base: []string{id, "POD", ""}}
	pod.cpuMemory(linux.GetCpu(), linux.GetMemory())
	if n := s.net; n != nil {
		for _, l := range n.links {
			for _, c := range []struct {
				name string
				v    uint64
			}{
				{"container_network_receive_bytes_total", l.rxBytes},
				{"container_network_receive_packets_total", l.rxPackets},
				{"container_network_receive_errors_total", l.rxErrors},
				{"container_network_receive_packets_dropped_total", l.rxDropped},
				{"container_network_transmit_bytes_total", l.txBytes},
				{"container_network_transmit_packets_total", l.txPackets},
				{"container_network_transmit_errors_total", l.txErrors},
				{"container_network_transmit_packets_dropped_total", l.txDropped},
			} {
				pod.add(c.name, metricCounter, n.timestamp, &runtimeapi.UInt64Value{Value: c.v}, l.name)
			}
		}
	}
	if p := linux.GetProcess(); p != nil {
		pod.add("container_processes", metricGauge, p.Timestamp, p.ProcessCount)
	}
	out := &runtimeapi.PodSandboxMetrics{PodSandboxId: id, Metrics: pod.out}
	for _, cs := range linux.GetContainers() {
		a := cs.GetAttributes()
		image := ""
		if c, err := m.containerByID(a.GetId()); err == nil {
			image = c.config.GetImage().GetImage()
		}
		ctr := metricSet{base: []string{a.GetId(), a.GetMetadata().GetName(), image}}
		ctr.cpuMemory(cs.GetCpu(), cs.GetMemory())
		if l := cs.GetWritableLayer(); l != nil {
			ctr.add("container_fs_usage_bytes", metricGauge, l.Timestamp, l.UsedBytes)
			ctr.add("container_fs_inodes_used", metricGauge, l.Timestamp, l.InodesUsed)
		}
		out.ContainerMetrics = append(out.ContainerMetrics, &runtimeapi.ContainerMetrics{ContainerId: a.GetId(), Metrics: ctr.out})
	}
	return out
}
