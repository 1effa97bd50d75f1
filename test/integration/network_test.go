package integration

// Pod networking through CNI with Debian's plugins (containernetworking-
// plugins in /usr/lib/cni): Berth's default network on a bridge and range
// private to each test, pods reaching each other, the host's bridge address
// and host port mappings, PodSandboxStatus addresses, teardown at stop and
// remove (also after berthd is killed), NetworkReady following the conf
// dir, and plugin failures that leave nothing behind.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/hostnet"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// netSeq numbers the networks of this process; netBase, random per
// process, keeps concurrent test binaries apart: each network is
// 10.198.<base+seq>.0/24.
var (
	netSeq  atomic.Int32
	netBase = func() byte { b := make([]byte, 1); rand.Read(b); return b[0] }()
)

// netEnv is a berthd whose default network has its own bridge and range.
type netEnv struct {
	d       *harness.Daemon
	bridge  string
	subnet  *net.IPNet
	gateway net.IP
	image   string // busybox, pulled when asked for
}

// startNetDaemon starts a berthd with Berth's default network on a bridge
// and /24 of its own (or prefix, e.g. 30, for a tiny range).
func startNetDaemon(t *testing.T, prefix int, opts ...func(*config.Config)) *netEnv {
	t.Helper()
	third := netBase + byte(netSeq.Add(1))
	_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.198.%d.0/%d", third, prefix))
	b := make([]byte, 5)
	rand.Read(b)
	e := &netEnv{bridge: "bn" + hex.EncodeToString(b), subnet: subnet, gateway: net.IPv4(10, 198, third, 1).To4()}
	t.Cleanup(func() { exec.Command("ip", "link", "del", e.bridge).Run() })
	e.d = harness.Start(t, harness.WithConfig(func(c *config.Config) {
		c.CNI.DefaultNetwork = true
		c.CNI.DefaultBridge = e.bridge
		c.CNI.DefaultSubnet = subnet.String()
		for _, o := range opts {
			o(c)
		}
	}))
	return e
}

// withBusybox pulls busybox from a loopback registry.
func (e *netEnv) withBusybox(t *testing.T) {
	t.Helper()
	reg := registry.Start(t)
	e.image = reg.Push(t, "library/busybox:latest", images.Busybox())
	if _, err := e.d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.image}}); err != nil {
		t.Fatalf("PullImage %s: %v", e.image, err)
	}
}

// pod runs a pod on the network and removes it when the test ends.
func (e *netEnv) pod(t *testing.T, name string, ports ...*runtimeapi.PortMapping) *ctrEnv {
	t.Helper()
	cfg := podConfig(e.d, name)
	cfg.PortMappings = ports
	cfg.LogDirectory = t.TempDir()
	id := mustRunPod(t, e.d, cfg)
	t.Cleanup(func() { e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}) })
	return &ctrEnv{d: e.d, image: e.image, pod: id, podCfg: cfg, logDir: cfg.LogDirectory}
}

// container runs sh -c script in the pod's network namespace.
func container(p *ctrEnv, name, script string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: p.image},
		Command:  []string{"/bin/sh", "-c", script},
		LogPath:  name + ".log",
	}
}

// echoServer is a container answering every TCP connection on port with
// what it reads.
func echoServer(p *ctrEnv, port int) *runtimeapi.ContainerConfig {
	return container(p, "echo", fmt.Sprintf("exec nc -ll -p %d -e /bin/cat", port))
}

// podIP is the pod's primary address as PodSandboxStatus reports it.
func podIP(t *testing.T, p *ctrEnv) string {
	t.Helper()
	ip := mustPodStatus(t, p.d, p.pod).GetStatus().GetNetwork().GetIp()
	if net.ParseIP(ip) == nil {
		t.Fatalf("pod %s reports IP %q", p.pod, ip)
	}
	return ip
}

// eventuallyEcho retries hostDial while the server container starts.
func eventuallyEcho(t *testing.T, addr, msg string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := hostnet.Echo(addr, msg)
		if err == nil && got == msg {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo via %s = %q, %v", addr, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// podEcho sends msg from inside client's container to addr with nc,
// retrying while the server starts, and returns the answer.
func podEcho(t *testing.T, client *ctrEnv, ctr, host string, port int, msg string) string {
	t.Helper()
	cmd := fmt.Sprintf("for i in $(seq 1 100); do out=$(echo %s | nc -w 5 %s %d) && [ -n \"$out\" ] && echo \"$out\" && exit 0; sleep 0.1; done; exit 1", msg, host, port)
	resp, err := client.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"/bin/sh", "-c", cmd}, Timeout: 60})
	if err != nil {
		t.Fatalf("ExecSync nc %s:%d: %v", host, port, err)
	}
	if resp.ExitCode != 0 {
		stderr := resp.Stderr
		if len(stderr) > 200 {
			stderr = stderr[len(stderr)-200:] // the retries repeat one message
		}
		t.Fatalf("nc %s:%d from pod %s: exit %d, stderr ...%q", host, port, client.pod, resp.ExitCode, stderr)
	}
	return strings.TrimSpace(string(resp.Stdout))
}

// bridgePorts lists the veths on the network's bridge.
func (e *netEnv) bridgePorts(t *testing.T) []string {
	t.Helper()
	return hostnet.BridgePorts(t, e.bridge)
}

// reservations lists the addresses host-local holds for the daemon.
func (e *netEnv) reservations(t *testing.T) []string {
	t.Helper()
	return hostnet.Reservations(t, filepath.Join(e.d.State, "cni", "networks", cni.DefaultNetworkName))
}

// assertPodNetworkGone fails when anything of pod id is left on the host:
// veth, address reservation, or firewall rule naming the pod or in one of
// its chains (hostnet.PodChains, taken while it ran).
func (e *netEnv) assertPodNetworkGone(t *testing.T, id string, chains ...string) {
	t.Helper()
	if got := e.bridgePorts(t); len(got) != 0 {
		t.Errorf("veths left on %s: %v", e.bridge, got)
	}
	if got := e.reservations(t); len(got) != 0 {
		t.Errorf("host-local still reserves %v", got)
	}
	if got := hostnet.FirewallLeft(t, id, chains); len(got) != 0 {
		t.Errorf("firewall rules left for pod %s:\n%s", id, strings.Join(got, "\n"))
	}
}

func TestNetworkPodsReachEachOtherAndTheHostBridge(t *testing.T) {
	e := startNetDaemon(t, 24)
	e.withBusybox(t)
	server, client := e.pod(t, "server"), e.pod(t, "client")
	server.mustRun(t, echoServer(server, 8080))
	clientCtr := client.mustRun(t, container(client, "sleeper", "exec sleep 3600"))
	serverIP, clientIP := podIP(t, server), podIP(t, client)
	if serverIP == clientIP || !e.subnet.Contains(net.ParseIP(serverIP)) || !e.subnet.Contains(net.ParseIP(clientIP)) {
		t.Fatalf("pod IPs %s and %s, want two addresses in %s", serverIP, clientIP, e.subnet)
	}

	t.Run("PodSandboxStatus reports the address the pod has on eth0", func(t *testing.T) {
		inside := client.mustExec(t, clientCtr, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if !strings.Contains(inside, " "+clientIP+"/") {
			t.Errorf("eth0 inside the pod: %q, want %s", inside, clientIP)
		}
		if lo := client.mustExec(t, clientCtr, "ip", "-o", "link", "show", "dev", "lo"); !strings.Contains(lo, "UP") {
			t.Errorf("lo inside the pod is not up: %s", lo)
		}
	})
	t.Run("a pod reaches another pod by IP", func(t *testing.T) {
		if got := podEcho(t, client, clientCtr, serverIP, 8080, "hello-pod"); got != "hello-pod" {
			t.Errorf("echo from the other pod = %q", got)
		}
	})
	t.Run("a pod reaches the host's bridge address", func(t *testing.T) {
		l, err := net.Listen("tcp", net.JoinHostPort(e.gateway.String(), "0"))
		if err != nil {
			t.Fatalf("listen on the bridge address: %v", err)
		}
		defer l.Close()
		hostnet.EchoServer(l)
		port := l.Addr().(*net.TCPAddr).Port
		if got := podEcho(t, client, clientCtr, e.gateway.String(), port, "hello-host"); got != "hello-host" {
			t.Errorf("echo from the host = %q", got)
		}
	})
}

func TestNetworkHostPortMappingReachesThePodFromTheHost(t *testing.T) {
	e := startNetDaemon(t, 24)
	e.withBusybox(t)
	hostPort := 20000 + int(netBase)*100 + int(netSeq.Load())%100
	p := e.pod(t, "web", &runtimeapi.PortMapping{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: int32(hostPort)})
	p.mustRun(t, echoServer(p, 8080))
	eventuallyEcho(t, fmt.Sprintf("127.0.0.1:%d", hostPort), "via-loopback")

	hostIP := defaultRouteAddress(t)
	eventuallyEcho(t, net.JoinHostPort(hostIP, fmt.Sprint(hostPort)), "via-host-address")

	mustStopPod(t, e.d, p.pod)
	if got, err := hostnet.Echo(fmt.Sprintf("127.0.0.1:%d", hostPort), "after-stop"); err == nil {
		t.Errorf("host port still answers after StopPodSandbox: %q", got)
	}
	if got := hostnet.FirewallRules(t, fmt.Sprintf("dport %d", hostPort)); len(got) != 0 {
		t.Errorf("port mapping rules left after StopPodSandbox:\n%s", strings.Join(got, "\n"))
	}
}

// defaultRouteAddress is the host's IPv4 address on the interface of its
// default route, where a client elsewhere would reach a host port.
func defaultRouteAddress(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "-4", "route", "show", "default").Output()
	f := strings.Fields(string(out))
	dev := ""
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" {
			dev = f[i+1]
			break
		}
	}
	if err != nil || dev == "" {
		t.Fatalf("no default route: %v %q", err, out)
	}
	out, err = exec.Command("ip", "-o", "-4", "addr", "show", "dev", dev, "scope", "global").Output()
	f = strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "inet" {
			return strings.SplitN(f[i+1], "/", 2)[0]
		}
	}
	t.Fatalf("no IPv4 address on %s: %v %q", dev, err, out)
	return ""
}

func TestNetworkStopAndRemoveFreeTheAddressAndLeaveNoTrace(t *testing.T) {
	// A /30 holds the gateway and exactly one pod address: a second pod
	// gets one only if removing the first freed it.
	e := startNetDaemon(t, 30)
	first := e.pod(t, "first", &runtimeapi.PortMapping{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: int32(21000 + int(netBase))})
	ip := podIP(t, first)
	if got := e.reservations(t); len(got) != 1 || got[0] != ip {
		t.Fatalf("reservations %v, want [%s]", got, ip)
	}
	chains := hostnet.PodChains(t, first.pod)
	if len(hostnet.FirewallRules(t, first.pod)) == 0 || len(chains) < 2 {
		t.Fatalf("pod chains %v: want rules naming the pod and its masquerade and DNAT chains, or the leak check below proves nothing", chains)
	}
	netns := filepath.Join(pinDir(e.d, first.pod), "net")

	t.Run("a pod finding the range full fails with host-local's message and leaves nothing", func(t *testing.T) {
		cfg := podConfig(e.d, "second")
		_, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err == nil || !strings.Contains(err.Error(), "no IP addresses available") {
			t.Fatalf("RunPodSandbox in a full range = %v, want host-local's error", err)
		}
		pods, err := e.d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
		if err != nil || len(pods.Items) != 1 {
			t.Errorf("ListPodSandbox = %v, %v; want only the first pod", pods, err)
		}
		if got := e.bridgePorts(t); len(got) != 1 {
			t.Errorf("bridge ports %v, want the first pod's only", got)
		}
	})

	mustStopPod(t, e.d, first.pod)
	e.assertPodNetworkGone(t, first.pod, chains...)
	mustRemovePod(t, e.d, first.pod)
	if isNamespaceFile(netns) {
		t.Errorf("network namespace pin %s still mounted after RemovePodSandbox", netns)
	}

	next := e.pod(t, "next")
	if got := podIP(t, next); got != ip {
		t.Errorf("next pod got %s, want the freed %s", got, ip)
	}
}

// confEnv is a berthd whose network is whatever conflist the test writes
// into its conf dir, with plugins from Debian and from bin.
type confEnv struct {
	d       *harness.Daemon
	bridge  string
	subnet  *net.IPNet
	ipamDir string
}

// startConfDaemon starts a berthd with no network configured, searching
// bin for plugins after Debian's.
func startConfDaemon(t *testing.T, bin string) *confEnv {
	t.Helper()
	_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.198.%d.0/24", netBase+byte(netSeq.Add(1))))
	b := make([]byte, 5)
	rand.Read(b)
	e := &confEnv{bridge: "bn" + hex.EncodeToString(b), subnet: subnet}
	t.Cleanup(func() { exec.Command("ip", "link", "del", e.bridge).Run() })
	e.d = harness.Start(t, harness.WithConfig(func(c *config.Config) {
		c.CNI.BinDirs = []string{"/usr/lib/cni", bin}
	}))
	e.ipamDir = filepath.Join(e.d.State, "ipam")
	return e
}

// writeConf replaces the conflist "fixme" (10-fixme.conflist) atomically.
func (e *confEnv) writeConf(t *testing.T, plugins string) {
	t.Helper()
	conf := `{"cniVersion": "1.0.0", "name": "fixme", "plugins": [` + plugins + `]}`
	tmp := filepath.Join(e.d.Config.CNI.ConfDir, ".tmp")
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.d.Config.CNI.ConfDir, "10-fixme.conflist")); err != nil {
		t.Fatal(err)
	}
}

// bridgePlugin is a bridge + host-local entry on the env's bridge and range.
func (e *confEnv) bridgePlugin() string {
	return fmt.Sprintf(`{"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
		"ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}}`,
		e.bridge, e.subnet.String(), e.ipamDir)
}

// waitReady waits until NetworkReady is want with msg in its message.
func (e *confEnv) waitReady(t *testing.T, want bool, msg string) *runtimeapi.RuntimeCondition {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := e.d.Runtime.Status(ctxFor(t), &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		var c *runtimeapi.RuntimeCondition
		for _, cond := range st.GetStatus().GetConditions() {
			if cond.Type == runtimeapi.NetworkReady {
				c = cond
			}
		}
		if c == nil {
			t.Fatal("Status has no NetworkReady condition")
		}
		if c.Status == want && strings.Contains(c.Message, msg) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("NetworkReady = %v (%s: %s), want %v with %q", c.Status, c.Reason, c.Message, want, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNetworkBrokenConfAndFailingPluginFailClearlyUntilFixed(t *testing.T) {
	bin := t.TempDir()
	fail := `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":100,"msg":"fake plugin refuses: quota exhausted"}'; exit 1;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}';;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "refuse"), []byte(fail), 0o755); err != nil {
		t.Fatal(err)
	}
	e := startConfDaemon(t, bin)
	d, subnet, bridge := e.d, e.subnet, e.bridge
	writeConf := func(plugins string) { t.Helper(); e.writeConf(t, plugins) }
	bridgePlugin := e.bridgePlugin()
	waitReady := func(want bool, msg string) *runtimeapi.RuntimeCondition { t.Helper(); return e.waitReady(t, want, msg) }
	assertNoPods := func() {
		t.Helper()
		pods, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
		if err != nil || len(pods.Items) != 0 {
			t.Errorf("ListPodSandbox = %v, %v; want no pod", pods, err)
		}
		if entries, _ := os.ReadDir(filepath.Join(d.State, "pods")); len(entries) != 0 {
			t.Errorf("pod state left: %v", entries)
		}
		if entries, _ := os.ReadDir(filepath.Join(d.State, "cni", "pods")); len(entries) != 0 {
			t.Errorf("network records left: %v", entries)
		}
	}

	t.Run("a broken conflist makes the network not ready and pods fail", func(t *testing.T) {
		writeConf(`{"type": "bridge",`)
		c := waitReady(false, "10-fixme.conflist")
		if c.Reason == "" {
			t.Errorf("NetworkReady false without a reason")
		}
		_, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(d, "broken")})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "10-fixme.conflist") {
			t.Errorf("RunPodSandbox = %v, want FailedPrecondition naming the file", err)
		}
		assertNoPods()
	})
	t.Run("a plugin refusing ADD fails the pod with its message and undoes the network", func(t *testing.T) {
		writeConf(bridgePlugin + `, {"type": "refuse"}`)
		waitReady(true, "")
		_, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(d, "refused")})
		if err == nil || !strings.Contains(err.Error(), "fake plugin refuses: quota exhausted") {
			t.Fatalf("RunPodSandbox = %v, want the plugin's message", err)
		}
		assertNoPods()
		if entries, _ := os.ReadDir(filepath.Join(d.State, "ipam", "fixme")); len(entries) > 2 { // last_reserved_ip.0 and lock
			t.Errorf("host-local store after the failed pod: %v", entries)
		}
		if got := hostnet.BridgePorts(t, bridge); len(got) != 0 {
			t.Errorf("veths left on the bridge: %v", got)
		}
	})
	t.Run("fixing the conf dir makes the network ready and pods run, without a restart", func(t *testing.T) {
		writeConf(bridgePlugin)
		waitReady(true, "")
		id := mustRunPod(t, d, podConfig(d, "fixed"))
		if ip := mustPodStatus(t, d, id).GetStatus().GetNetwork().GetIp(); !subnet.Contains(net.ParseIP(ip)) {
			t.Errorf("pod IP %q, want one in %s", ip, subnet)
		}
		mustStopPod(t, d, id)
		mustRemovePod(t, d, id)
	})
	t.Run("a plugin missing from every bin dir makes the network not ready", func(t *testing.T) {
		writeConf(bridgePlugin + `, {"type": "not-installed"}`)
		waitReady(false, `"not-installed"`)
	})
}

func TestNetworkFailedTeardownIsRetriedAtTheNextStopAndThenGivenUp(t *testing.T) {
	bin := t.TempDir()
	broken := filepath.Join(t.TempDir(), "broken")
	// First in the chain, so DEL (run in reverse) reaches it last, after
	// the bridge plugin released the address.
	flaky := `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0"}';;
DEL) if [ -e ` + broken + ` ]; then echo '{"cniVersion":"1.0.0","code":999,"msg":"fake teardown failure"}'; exit 1; fi;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}';;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "flaky"), []byte(flaky), 0o755); err != nil {
		t.Fatal(err)
	}
	e := startConfDaemon(t, bin)
	e.writeConf(t, `{"type": "flaky"}, `+e.bridgePlugin())
	e.waitReady(t, true, "")
	record := func(id string) string { return filepath.Join(e.d.State, "cni", "pods", id+".json") }
	stop := func(id string) error {
		_, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		return err
	}

	t.Run("a DEL that failed at stop runs again at the next stop", func(t *testing.T) {
		id := mustRunPod(t, e.d, podConfig(e.d, "retried"))
		os.WriteFile(broken, nil, 0o644)
		if err := stop(id); err == nil || !strings.Contains(err.Error(), "fake teardown failure") {
			t.Fatalf("StopPodSandbox with DEL failing = %v, want the plugin's message", err)
		}
		if _, err := os.Stat(record(id)); err != nil {
			t.Fatalf("the network record of a failed teardown is gone: %v", err)
		}
		os.Remove(broken)
		mustStopPod(t, e.d, id)
		if _, err := os.Stat(record(id)); !os.IsNotExist(err) {
			t.Errorf("network record after the retried teardown: %v", err)
		}
		mustRemovePod(t, e.d, id)
		if got := hostnet.BridgePorts(t, e.bridge); len(got) != 0 {
			t.Errorf("veths left on the bridge: %v", got)
		}
	})
	t.Run("a DEL that keeps failing is given up and the pod can be removed", func(t *testing.T) {
		id := mustRunPod(t, e.d, podConfig(e.d, "given-up"))
		os.WriteFile(broken, nil, 0o644)
		defer os.Remove(broken)
		var err error
		attempts := 0
		for attempts = 1; attempts <= 10; attempts++ {
			if err = stop(id); err == nil {
				break
			}
		}
		if err != nil || attempts < 2 {
			t.Fatalf("StopPodSandbox with DEL always failing: %v after %d attempts, want failures and then success", err, attempts)
		}
		mustRemovePod(t, e.d, id)
		if _, err := os.Stat(record(id)); !os.IsNotExist(err) {
			t.Errorf("network record of a given-up pod: %v", err)
		}
		if got := hostnet.BridgePorts(t, e.bridge); len(got) != 0 {
			t.Errorf("veths left on the bridge: %v", got)
		}
	})
}

func TestNetworkIsTornDownAfterBerthdIsKilledAndRestarted(t *testing.T) {
	e := startNetDaemon(t, 24)
	p := e.pod(t, "survivor", &runtimeapi.PortMapping{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: int32(22000 + int(netBase))})
	ip := podIP(t, p)
	chains := hostnet.PodChains(t, p.pod)
	e.d.Kill(t)
	e.d.Restart(t)
	if got := podIP(t, p); got != ip {
		t.Errorf("IP after restart = %s, want %s", got, ip)
	}
	if len(e.bridgePorts(t)) != 1 {
		t.Fatalf("bridge ports after restart: %v, want the pod's veth", e.bridgePorts(t))
	}
	mustStopPod(t, e.d, p.pod)
	mustRemovePod(t, e.d, p.pod)
	e.assertPodNetworkGone(t, p.pod, chains...)
}

func TestNetworkHostNetworkPodReportsTheHostIP(t *testing.T) {
	e := startNetDaemon(t, 24)
	id := mustRunPod(t, e.d, hostNetwork(podConfig(e.d, "hostnet")))
	t.Cleanup(func() { mustRemovePod(t, e.d, id) })
	ip := net.ParseIP(mustPodStatus(t, e.d, id).GetStatus().GetNetwork().GetIp())
	if ip == nil {
		t.Fatal("host-network pod reports no IP")
	}
	found := false
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			found = true
		}
	}
	if !found || ip.IsLoopback() {
		t.Errorf("host-network pod reports %s, not a host address (%v)", ip, addrs)
	}
	if got := e.bridgePorts(t); len(got) != 0 {
		t.Errorf("host-network pod got a veth: %v", got)
	}
}

func TestNetworkPodCIDRFromUpdateRuntimeConfigGivesDualStackPods(t *testing.T) {
	e := startNetDaemon(t, 24)
	v6 := fmt.Sprintf("fd00:198:%x::/64", int(netBase)<<8|int(netSeq.Add(1)))
	_, n6, _ := net.ParseCIDR(v6)
	if _, err := e.d.Runtime.UpdateRuntimeConfig(ctxFor(t), &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "not-a-cidr"},
	}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("UpdateRuntimeConfig with a bad CIDR = %v, want InvalidArgument", err)
	}
	if _, err := e.d.Runtime.UpdateRuntimeConfig(ctxFor(t), &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: e.subnet.String() + "," + v6},
	}}); err != nil {
		t.Fatalf("UpdateRuntimeConfig: %v", err)
	}
	p := e.pod(t, "dual")
	st := mustPodStatus(t, e.d, p.pod).GetStatus().GetNetwork()
	if !e.subnet.Contains(net.ParseIP(st.GetIp())) || len(st.GetAdditionalIps()) != 1 || !n6.Contains(net.ParseIP(st.GetAdditionalIps()[0].GetIp())) {
		t.Errorf("pod network status %v, want an IP in %s and an additional one in %s", st, e.subnet, v6)
	}
	mustStopPod(t, e.d, p.pod)
	mustRemovePod(t, e.d, p.pod)
	e.assertPodNetworkGone(t, p.pod)
}

func TestNetworkConcurrentPodsGetDistinctAddresses(t *testing.T) {
	const n = 20
	e := startNetDaemon(t, 24)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(e.d, fmt.Sprintf("many-%d", i))})
			if err != nil {
				t.Errorf("RunPodSandbox %d: %v", i, err)
				return
			}
			ids[i] = resp.PodSandboxId
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, id := range ids {
			if id != "" {
				e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	seen := map[string]string{}
	for _, id := range ids {
		ip := mustPodStatus(t, e.d, id).GetStatus().GetNetwork().GetIp()
		if other, dup := seen[ip]; dup {
			t.Errorf("pods %s and %s both got %s", other, id, ip)
		}
		seen[ip] = id
	}
	if got := e.reservations(t); len(got) != n {
		t.Errorf("host-local reserves %d addresses, want %d", len(got), n)
	}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Errorf("StopPodSandbox: %v", err)
			}
			if _, err := e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Errorf("RemovePodSandbox: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := e.reservations(t); len(got) != 0 {
		t.Errorf("stale host-local reservations after removing every pod: %v", got)
	}
	if got := e.bridgePorts(t); len(got) != 0 {
		t.Errorf("veths left on the bridge: %v", got)
	}
}
