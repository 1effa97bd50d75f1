package integration

// A pod's network counters as kubelet reads them with
// PodAndContainerStatsFromCRI: ListPodSandboxStats (the summary API's
// network block: bytes and errors per interface) and ListPodSandboxMetrics
// (/metrics/cadvisor's container_network_* series: bytes, packets, errors
// and drops). Traffic sent from the host into the pod makes them grow.

import (
	"net"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// listedPodStats is ListPodSandboxStats' entry for pod (the call kubelet
// makes), nil if absent.
func listedPodStats(t *testing.T, rt runtimeapi.RuntimeServiceClient, pod string) *runtimeapi.PodSandboxStats {
	t.Helper()
	resp, err := rt.ListPodSandboxStats(ctxFor(t), &runtimeapi.ListPodSandboxStatsRequest{})
	if err != nil {
		t.Fatalf("ListPodSandboxStats: %v", err)
	}
	for _, s := range resp.Stats {
		if s.GetAttributes().GetId() == pod {
			return s
		}
	}
	return nil
}

func TestPodNetworkCountersGrowWithTrafficFromTheHost(t *testing.T) {
	e := startNetDaemon(t, 24)
	e.withBusybox(t)
	p := e.pod(t, "netstats")
	p.mustRun(t, container(p, "idle", "exec sleep 3600"))
	ip := podIP(t, p)

	eth0 := func() (*runtimeapi.NetworkInterfaceUsage, []*runtimeapi.Metric) {
		st := listedPodStats(t, e.d.Runtime, p.pod)
		if st == nil {
			t.Fatalf("ListPodSandboxStats has no entry for the ready pod %s", p.pod)
		}
		m := podMetrics(t, e.d.Runtime, p.pod)
		if m == nil {
			t.Fatalf("ListPodSandboxMetrics has no entry for the ready pod %s", p.pod)
		}
		return st.GetLinux().GetNetwork().GetDefaultInterface(), m.Metrics
	}
	iface0, metrics0 := eth0()
	if iface0.GetName() != "eth0" {
		t.Fatalf("default interface %q, want eth0", iface0.GetName())
	}
	packets0, ok := metricValue(metrics0, "container_network_receive_packets_total", "eth0")
	if !ok {
		t.Fatalf("the pod has no container_network_receive_packets_total for eth0: %v", metrics0)
	}

	// 50 datagrams of 1000 bytes to a port nothing listens on: eth0
	// receives them all (the pod answers with ICMP, which the kernel
	// rate-limits).
	const n, size = 50, 1000
	conn, err := net.Dial("udp", net.JoinHostPort(ip, "9"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := []byte(strings.Repeat("x", size))
	for i := 0; i < n; i++ {
		_, _ = conn.Write(payload) // a refused earlier datagram may fail a write; count what the pod got
	}

	var iface *runtimeapi.NetworkInterfaceUsage
	var metrics []*runtimeapi.Metric
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		iface, metrics = eth0()
		packets, _ := metricValue(metrics, "container_network_receive_packets_total", "eth0")
		if iface.GetRxBytes().GetValue() >= iface0.GetRxBytes().GetValue()+n*size/2 && packets >= packets0+n/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("eth0 after %d datagrams of %d bytes from the host: rx %d→%d bytes, %d→%d packets",
				n, size, iface0.GetRxBytes().GetValue(), iface.GetRxBytes().GetValue(), packets0, packets)
		}
	}
	if iface.GetTxBytes().GetValue() <= iface0.GetTxBytes().GetValue() {
		t.Errorf("eth0 tx %d→%d bytes: the pod's ICMP answers are not counted", iface0.GetTxBytes().GetValue(), iface.GetTxBytes().GetValue())
	}
	if iface.GetRxErrors() == nil || iface.GetTxErrors() == nil {
		t.Errorf("eth0 lacks error counters: %v", iface)
	}
	for _, name := range []string{"container_network_receive_bytes_total", "container_network_transmit_bytes_total",
		"container_network_transmit_packets_total", "container_network_receive_errors_total", "container_network_transmit_errors_total",
		"container_network_receive_packets_dropped_total", "container_network_transmit_packets_dropped_total"} {
		if _, ok := metricValue(metrics, name, "eth0"); !ok {
			t.Errorf("the pod has no %s for eth0", name)
		}
	}
	if rx, _ := metricValue(metrics, "container_network_receive_bytes_total", "eth0"); rx < iface0.GetRxBytes().GetValue()+n*size/2 {
		t.Errorf("container_network_receive_bytes_total %d, want at least %d", rx, iface0.GetRxBytes().GetValue()+n*size/2)
	}
	if tx, _ := metricValue(metrics, "container_network_transmit_packets_total", "eth0"); tx == 0 {
		t.Errorf("container_network_transmit_packets_total 0: the pod's ICMP answers are not counted")
	}
}
