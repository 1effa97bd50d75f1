package cni

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/berth-runtime/berth/test/hostnet"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSetupGivesPodAddressRouteAndLoopback(t *testing.T) {
	tn, m := standardNet(t)
	pod := newPod(t, "a")

	res := mustSetup(t, m, pod)
	if len(res.IPs) != 1 || !tn.subnet.Contains(res.IPs[0]) {
		t.Fatalf("Setup IPs = %v, want one address in %s", res.IPs, tn.subnet)
	}
	if addrs := ipIn(t, pod.NetNS, "-o", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(addrs, " "+res.IPs[0].String()+"/") {
		t.Errorf("eth0 in the pod has %q, want %s (the reported IP)", addrs, res.IPs[0])
	}
	if lo := ipIn(t, pod.NetNS, "-o", "link", "show", "dev", "lo"); !strings.Contains(lo, "UP") {
		t.Errorf("lo in the pod is not up: %s", lo)
	}
	if routes := ipIn(t, pod.NetNS, "-4", "route", "show", "default"); !strings.Contains(routes, "via "+tn.gateway.String()) {
		t.Errorf("default route in the pod = %q, want via %s", routes, tn.gateway)
	}
	// Loopback works inside the pod.
	mustEchoServer(t, pod.NetNS, "127.0.0.1:7070")
	if got, err := echo(t, pod.NetNS, "127.0.0.1:7070", "lo"); err != nil || got != "lo" {
		t.Errorf("echo over the pod's loopback = %q, %v", got, err)
	}
}

func TestSetupIsIdempotentForAnAttachedPod(t *testing.T) {
	tn, m := standardNet(t)
	pod := newPod(t, "a")
	first := mustSetup(t, m, pod)
	again, err := m.Setup(context.Background(), pod)
	if err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if !slices.EqualFunc(first.IPs, again.IPs, net.IP.Equal) {
		t.Errorf("second Setup IPs = %v, want %v", again.IPs, first.IPs)
	}
	if got := tn.reservations(t); len(got) != 1 {
		t.Errorf("reservations after two Setups = %v, want one", got)
	}
}

func TestPodsReachEachOtherAndTheBridge(t *testing.T) {
	tn, m := standardNet(t)
	a, b := newPod(t, "a"), newPod(t, "b")
	ra, rb := mustSetup(t, m, a), mustSetup(t, m, b)
	if ra.IPs[0].Equal(rb.IPs[0]) {
		t.Fatalf("both pods got %s", ra.IPs[0])
	}

	server := net.JoinHostPort(ra.IPs[0].String(), "8080")
	mustEchoServer(t, a.NetNS, server)
	if got, err := echo(t, b.NetNS, server, "hello a"); err != nil || got != "hello a" {
		t.Errorf("pod b -> pod a %s: %q, %v", server, got, err)
	}

	host := net.JoinHostPort(tn.gateway.String(), "0")
	l := mustEchoServer(t, "", host)
	if got, err := echo(t, a.NetNS, l.Addr().String(), "hello host"); err != nil || got != "hello host" {
		t.Errorf("pod a -> bridge address %s: %q, %v", l.Addr(), got, err)
	}
}

func TestTeardownFreesAddressAndLeavesNothing(t *testing.T) {
	tn, m := standardNet(t)
	pod := newPod(t, "a")
	pod.Config.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 18081}}
	mustSetup(t, m, pod)
	if len(tn.bridgePorts(t)) != 1 || len(tn.reservations(t)) != 1 {
		t.Fatalf("after Setup: bridge ports %v, reservations %v; want one each", tn.bridgePorts(t), tn.reservations(t))
	}
	if len(hostnet.FirewallRules(t, pod.ID)) == 0 {
		t.Fatalf("after Setup no iptables rule mentions the pod; the leak check below would prove nothing")
	}
	// The masquerade chain and the port mapping's DNAT chain.
	chains := hostnet.PodChains(t, pod.ID)
	if len(chains) < 2 {
		t.Fatalf("after Setup the pod has chains %v, want its masquerade and DNAT chains", chains)
	}

	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	assertNoTrace(t, tn, m, pod)
	if left := hostnet.FirewallLeft(t, pod.ID, chains); len(left) != 0 {
		t.Errorf("firewall rules left in the pod's chains %v:\n%s", chains, strings.Join(left, "\n"))
	}
	if entries, _ := os.ReadDir(filepath.Join(m.stateDir, "cache", "results")); len(entries) != 0 {
		t.Errorf("libcni cache left behind: %v", entries)
	}
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Errorf("second Teardown: %v", err)
	}

	// The namespace is clean enough to attach again.
	next := mustSetup(t, m, Pod{ID: "pod" + randHex(8), NetNS: pod.NetNS, Config: podConfig("again")})
	if len(next.IPs) == 0 || !tn.subnet.Contains(next.IPs[0]) {
		t.Errorf("Setup after Teardown IPs = %v", next.IPs)
	}
}

func TestTeardownWorksWhenTheNamespaceIsGone(t *testing.T) {
	tn, m := standardNet(t)
	pod := newPod(t, "a")
	mustSetup(t, m, pod)
	deleteNetNS(t, pod.NetNS)

	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatalf("Teardown without namespace: %v", err)
	}
	assertNoTrace(t, tn, m, pod)
}

func TestTeardownAfterRestartUsesThePodsRecord(t *testing.T) {
	tn := newTestNet(t)
	tn.standard(t)
	m1 := tn.manager(t)
	pod := newPod(t, "a")
	if _, err := m1.Setup(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	m1.Close()
	// The operator replaced the network meanwhile: DEL must still run
	// the plugins the pod was attached with.
	if err := os.Remove(filepath.Join(tn.confDir, DefaultConfFile)); err != nil {
		t.Fatal(err)
	}

	m2 := tn.manager(t, func(c *Config) { c.DefaultNetwork = false })
	if m2.Ready() == nil {
		t.Fatal("Ready with an empty conf dir")
	}
	if err := m2.Teardown(context.Background(), Pod{ID: pod.ID}); err != nil {
		t.Fatalf("Teardown from a new Manager: %v", err)
	}
	assertNoTrace(t, tn, m2, pod)
}

func TestConcurrentSetupsGetDistinctAddresses(t *testing.T) {
	const pods = 20
	tn, m := standardNet(t)
	all := make([]Pod, pods)
	for i := range all {
		all[i] = newPod(t, "p")
		t.Cleanup(func() { m.Teardown(context.Background(), all[i]) })
	}
	ips := make([]net.IP, pods)
	var wg sync.WaitGroup
	for i := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := m.Setup(context.Background(), all[i])
			if err != nil {
				t.Errorf("Setup %d: %v", i, err)
				return
			}
			ips[i] = res.IPs[0]
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seen := map[string]bool{}
	for _, ip := range ips {
		if seen[ip.String()] {
			t.Errorf("address %s given twice", ip)
		}
		seen[ip.String()] = true
	}
	if got := tn.reservations(t); len(got) != pods {
		t.Errorf("host-local reserves %d addresses, want %d", len(got), pods)
	}

	for i := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Teardown(context.Background(), all[i]); err != nil {
				t.Errorf("Teardown %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	assertNetworkEmpty(t, tn)
}

func TestDualStackNetworkReportsBothAddressesIPv4First(t *testing.T) {
	tn := newTestNet(t)
	v6 := "fd00:b0:" + randHex(2) + "::/64"
	tn.writeConf(t, "10-test.conflist", tn.conflist(tn.bridgePlugin(v6)))
	m := tn.manager(t)
	pod := newPod(t, "a")
	res := mustSetup(t, m, pod)
	if len(res.IPs) != 2 || res.IPs[0].To4() == nil || res.IPs[1].To4() != nil {
		t.Fatalf("IPs = %v, want an IPv4 then an IPv6 address", res.IPs)
	}
	if addrs := ipIn(t, pod.NetNS, "-o", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(addrs, res.IPs[1].String()+"/") {
		t.Errorf("eth0 has %q, want %s", addrs, res.IPs[1])
	}
}

func TestHostNetworkPodGetsHostAddressesWithoutPlugins(t *testing.T) {
	tn := newTestNet(t) // no configuration at all: host-network pods need none
	m := tn.manager(t)
	cfg := podConfig("host")
	cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
	}}
	res, err := m.Setup(context.Background(), Pod{ID: "hostpod", Config: cfg})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if len(res.IPs) == 0 {
		t.Fatal("no host address reported")
	}
	addrs, _ := net.InterfaceAddrs()
	found := false
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(res.IPs[0]) {
			found = true
		}
	}
	if !found {
		t.Errorf("reported %s is not an address of this host (%v)", res.IPs[0], addrs)
	}
	if err := m.Teardown(context.Background(), Pod{ID: "hostpod", Config: cfg}); err != nil {
		t.Errorf("Teardown: %v", err)
	}
}

func TestSetupRejectsBadPods(t *testing.T) {
	tn, m := standardNet(t)
	ns := newNetNS(t)
	notNS := filepath.Join(t.TempDir(), "net")
	os.WriteFile(notNS, nil, 0o644)
	for _, tc := range []struct {
		name string
		pod  Pod
	}{
		{"a pod without a namespace is refused", Pod{ID: "p1", Config: podConfig("a")}},
		{"a pod whose namespace is a plain file is refused", Pod{ID: "p2", NetNS: notNS, Config: podConfig("a")}},
		{"a pod ID with a slash is refused", Pod{ID: "../p3", NetNS: ns, Config: podConfig("a")}},
		{"a port mapping beyond 65535 is refused", Pod{ID: "p4", NetNS: ns, Config: &runtimeapi.PodSandboxConfig{
			PortMappings: []*runtimeapi.PortMapping{{HostPort: 70000, ContainerPort: 80}}}}},
		{"a malformed bandwidth annotation is refused", Pod{ID: "p5", NetNS: ns, Config: &runtimeapi.PodSandboxConfig{
			Annotations: map[string]string{annotationIngressBandwidth: "fast"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Setup(context.Background(), tc.pod)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Setup = %v, want invalid argument", err)
			}
		})
	}
	assertNetworkEmpty(t, tn)
}

func TestSetupWithoutNetworkFailsPrecondition(t *testing.T) {
	tn := newTestNet(t)
	m := tn.manager(t)
	_, err := m.Setup(context.Background(), newPod(t, "a"))
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "no network configuration") {
		t.Errorf("Setup = %v, want failed precondition naming the missing configuration", err)
	}
}

func TestCheckPassesForAnAttachedPodAndFailsWhenItsInterfaceIsGone(t *testing.T) {
	tn, m := standardNet(t)
	pod := newPod(t, "a")
	if err := m.Check(context.Background(), pod); !errdefs.IsNotFound(err) {
		t.Errorf("Check before Setup = %v, want not found", err)
	}
	mustSetup(t, m, pod)
	if err := m.Check(context.Background(), pod); err != nil {
		t.Fatalf("Check of an attached pod: %v", err)
	}
	ipIn(t, pod.NetNS, "link", "del", "eth0")
	if err := m.Check(context.Background(), pod); err == nil {
		t.Error("Check passed with the pod's eth0 deleted")
	}
	ipIn(t, pod.NetNS, "link", "set", "lo", "down")
	if err := m.Check(context.Background(), pod); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("Check with lo down = %v, want a loopback error", err)
	}
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Errorf("Teardown of a damaged pod: %v", err)
	}
	assertNoTrace(t, tn, m, pod)
}

func TestAttachedListsThePodsOwedATeardown(t *testing.T) {
	tn, m := standardNet(t)
	a, b := newPod(t, "a"), newPod(t, "b")
	mustSetup(t, m, a)
	mustSetup(t, m, b)
	if err := m.Teardown(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m2 := tn.manager(t)
	got, err := m2.Attached()
	if err != nil || !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("Attached after a restart = %v, %v; want [%s]", got, err, b.ID)
	}
	if err := m2.Teardown(context.Background(), Pod{ID: b.ID}); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Attached(); err != nil || len(got) != 0 {
		t.Errorf("Attached after Teardown = %v, %v", got, err)
	}
}
