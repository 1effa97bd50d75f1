package integration

// Berth's default network run in berthd ([cni] default_network_in_process,
// on by default) against the same network run through Debian's plugins
// (the switch off): the same address, routes, host side and reachability;
// pods attached one way torn down the other way across a restart (an
// upgrade, and its reverse) with nothing left; and a berthd killed in the
// middle of a pod's network setup leaving nothing once it is back.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/hostnet"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func pluginPath(c *config.Config) { c.CNI.DefaultInProcess = false }

// pluginsRan counts the daemon's execs of plugin name (its debug log).
func pluginsRan(e *netEnv, name string) int {
	return strings.Count(e.d.Logs(), "/"+name+`", "command"`)
}

// restartWith kills berthd, changes its configuration and starts it again.
func (e *netEnv) restartWith(t *testing.T, fn func(*config.Config)) {
	t.Helper()
	e.d.Kill(t)
	fn(&e.d.Config)
	data, err := config.Marshal(e.d.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.d.ConfigPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e.d.Restart(t)
}

// podNetView is what a pod sees of its network, with the network's own
// addresses replaced by names, so two networks compare equal.
func podNetView(t *testing.T, e *netEnv, p *ctrEnv, ctr string) string {
	t.Helper()
	ip := podIP(t, p)
	out := p.mustExec(t, ctr, "ip", "-4", "addr", "show", "dev", "eth0") + p.mustExec(t, ctr, "ip", "-4", "route") +
		p.mustExec(t, ctr, "ip", "-o", "link", "show", "dev", "lo") +
		p.mustExec(t, ctr, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify")
	out = strings.ReplaceAll(out, ip, "POD")
	out = strings.ReplaceAll(out, e.gateway.String(), "GATEWAY")
	brd := append(net.IP(nil), e.subnet.IP.To4()...)
	for i := range brd {
		brd[i] |= ^e.subnet.Mask[i]
	}
	out = strings.ReplaceAll(out, brd.String(), "BROADCAST")
	out = strings.ReplaceAll(out, e.subnet.IP.String(), "SUBNET")
	out = regexp.MustCompile(`if\d+`).ReplaceAllString(out, "ifN")
	out = regexp.MustCompile(`(?m)^\d+: `).ReplaceAllString(out, "N: ")
	out = regexp.MustCompile(`([0-9a-f]{2}:){5}[0-9a-f]{2}`).ReplaceAllString(out, "MAC")
	return strings.ReplaceAll(out, e.subnet.String()[len(e.subnet.IP.String()):], "/PREFIX")
}

// hostNetView is what the host holds for pod p: its lease's content, its
// masquerade rules, its veth's bridge port flags and the cached result's
// shape, with the network's names replaced.
func hostNetView(t *testing.T, e *netEnv, p *ctrEnv) string {
	t.Helper()
	ip := podIP(t, p)
	lease, err := os.ReadFile(filepath.Join(e.d.State, "cni", "networks", "berth", ip))
	if err != nil {
		t.Fatalf("lease of %s: %v", ip, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lease %q\n", strings.ReplaceAll(string(lease), p.pod, "ID"))
	chains := hostnet.PodChains(t, p.pod)
	for _, r := range hostnet.FirewallLeft(t, p.pod, chains) {
		for i, c := range chains {
			r = strings.ReplaceAll(r, c, fmt.Sprintf("CHAIN%d", i))
		}
		r = strings.ReplaceAll(strings.ReplaceAll(r, p.pod, "ID"), ip, "POD")
		b.WriteString(strings.ReplaceAll(r, e.subnet.IP.String(), "SUBNET") + "\n")
	}
	ports := e.bridgePorts(t)
	if len(ports) != 1 {
		t.Fatalf("bridge ports %v, want one", ports)
	}
	for _, f := range []string{"hairpin_mode", "learning", "flood"} {
		v, _ := os.ReadFile(filepath.Join("/sys/class/net", ports[0], "brport", f))
		fmt.Fprintf(&b, "%s %s\n", f, strings.TrimSpace(string(v)))
	}
	cache, err := os.ReadFile(filepath.Join(e.d.State, "cni", "cache", "results", "berth-"+p.pod+"-eth0"))
	if err != nil {
		t.Fatalf("cached result: %v", err)
	}
	s := string(cache)
	s = regexp.MustCompile(`veth[0-9a-f]{8}`).ReplaceAllString(s, "VETH")
	s = regexp.MustCompile(`([0-9a-f]{2}:){5}[0-9a-f]{2}`).ReplaceAllString(s, "MAC")
	s = regexp.MustCompile(`"config":"[^"]*"`).ReplaceAllString(s, `"config":"..."`)
	for _, r := range [][2]string{{p.pod, "ID"}, {ip, "POD"}, {e.gateway.String(), "GATEWAY"}, {e.bridge, "BRIDGE"}, {e.d.Dir, "DIR"}, {e.d.Tag, "TAG"}, {p.podCfg.Metadata.Uid, "UID"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	b.WriteString("cache " + s + "\n")
	return b.String()
}

func TestNetworkInProcessGivesThePodWhatThePluginsGive(t *testing.T) {
	type side struct {
		e              *netEnv
		server, client *ctrEnv
		ctr            string
	}
	run := func(t *testing.T, opts ...func(*config.Config)) *side {
		e := startNetDaemon(t, 24, opts...)
		e.withBusybox(t)
		s := &side{e: e, server: e.pod(t, "server"), client: e.pod(t, "client")}
		s.server.mustRun(t, echoServer(s.server, 8080))
		s.ctr = s.client.mustRun(t, container(s.client, "sleeper", "exec sleep 3600"))
		return s
	}
	plugins, inproc := run(t, pluginPath), run(t)
	if n := pluginsRan(inproc.e, "bridge"); n != 0 {
		t.Fatalf("the in-process daemon ran the bridge plugin %d times", n)
	}
	if n := pluginsRan(plugins.e, "bridge"); n != 2 {
		t.Fatalf("the plugin daemon ran the bridge plugin %d times, want 2", n)
	}

	for _, s := range []*side{plugins, inproc} {
		name := "in-process"
		if s == plugins {
			name = "plugins"
		}
		t.Run("with "+name+" a pod reaches another pod and the host, and the host the pod", func(t *testing.T) {
			serverIP := podIP(t, s.server)
			if got := podEcho(t, s.client, s.ctr, serverIP, 8080, "pod-to-pod"); got != "pod-to-pod" {
				t.Errorf("pod to pod echo = %q", got)
			}
			if out := s.client.mustExec(t, s.ctr, "ping", "-c", "1", "-W", "5", serverIP); !strings.Contains(out, "1 packets received") {
				t.Errorf("ping pod to pod: %s", out)
			}
			if out := s.client.mustExec(t, s.ctr, "ping", "-c", "1", "-W", "5", s.e.gateway.String()); !strings.Contains(out, "1 packets received") {
				t.Errorf("ping pod to host bridge: %s", out)
			}
			eventuallyEcho(t, net.JoinHostPort(serverIP, "8080"), "host-to-pod")
		})
	}
	t.Run("the pod sees the same interface, address, routes and loopback", func(t *testing.T) {
		want, got := podNetView(t, plugins.e, plugins.client, plugins.ctr), podNetView(t, inproc.e, inproc.client, inproc.ctr)
		if want != got {
			t.Errorf("in-process pod sees\n%s\nplugin pod sees\n%s", got, want)
		}
		if !strings.Contains(got, "default via GATEWAY dev eth0") || !strings.Contains(got, "inet POD/PREFIX") {
			t.Errorf("pod view lacks the default route or the address:\n%s", got)
		}
	})
	t.Run("the host holds the same lease, rules, bridge port and cached result", func(t *testing.T) {
		// the server pod: its peer the client is the only other port, so
		// stop the client's view from counting it
		mustStopPod(t, plugins.e.d, plugins.client.pod)
		mustStopPod(t, inproc.e.d, inproc.client.pod)
		want, got := hostNetView(t, plugins.e, plugins.server), hostNetView(t, inproc.e, inproc.server)
		if want != got {
			t.Errorf("in-process host side\n%s\nplugin host side\n%s", got, want)
		}
		if !strings.Contains(got, "MASQUERADE") || !strings.Contains(got, "hairpin_mode 1") {
			t.Errorf("host side lacks masquerading or hairpin:\n%s", got)
		}
	})
}

// assertUpgradeTeardown attaches a pod with a host port under one setting
// and tears it down under the other, after a restart.
func assertUpgradeTeardown(t *testing.T, before, after func(*config.Config)) {
	e := startNetDaemon(t, 24, before)
	hostPort := 23000 + int(netBase)*10 + int(netSeq.Load())%10
	p := e.pod(t, "upgraded", &runtimeapi.PortMapping{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: int32(hostPort)})
	chains := hostnet.PodChains(t, p.pod)
	if len(chains) < 2 || len(e.reservations(t)) != 1 || len(e.bridgePorts(t)) != 1 {
		t.Fatalf("pod holds chains %v, leases %v, veths %v: want masquerade and DNAT chains, a lease and a veth", chains, e.reservations(t), e.bridgePorts(t))
	}
	e.restartWith(t, after)
	mustStopPod(t, e.d, p.pod)
	mustRemovePod(t, e.d, p.pod)
	e.assertPodNetworkGone(t, p.pod, chains...)
	if got := hostnet.FirewallRules(t, fmt.Sprintf("dport %d", hostPort)); len(got) != 0 {
		t.Errorf("port mapping rules left:\n%s", strings.Join(got, "\n"))
	}
	if _, err := os.Stat(filepath.Join(e.d.State, "cni", "cache", "results", "berth-"+p.pod+"-eth0")); !os.IsNotExist(err) {
		t.Errorf("cached result left: %v", err)
	}
	// the log holds both daemons' lines: bridge ran at ADD with the
	// plugins before, or at DEL with the plugins after, never both
	if got := pluginsRan(e, "bridge"); got != 1 {
		t.Errorf("bridge plugin ran %d times, want once", got)
	}
}

func TestNetworkPodAttachedByPluginsIsTornDownInProcessAfterAnUpgrade(t *testing.T) {
	assertUpgradeTeardown(t, pluginPath, func(c *config.Config) { c.CNI.DefaultInProcess = true })
}

func TestNetworkPodAttachedInProcessIsTornDownByPluginsAfterADowngrade(t *testing.T) {
	assertUpgradeTeardown(t, func(*config.Config) {}, pluginPath)
}

// TestNetworkBerthdKilledInPodNetworkSetupLeavesNothing kills berthd while
// the in-process ADD waits in portmap, the last step (after the lease, the
// veth and the masquerade rules), and checks the restarted berthd removes
// it all.
func TestNetworkBerthdKilledInPodNetworkSetupLeavesNothing(t *testing.T) {
	bin := t.TempDir()
	started := filepath.Join(bin, "started")
	// Blocks until berthd, gone, no longer reads its output.
	script := "#!/bin/sh\ntouch " + started + "\nwhile sleep 0.05; do printf ' ' || exit 1; done\n"
	if err := os.WriteFile(filepath.Join(bin, "portmap"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := startNetDaemon(t, 24, func(c *config.Config) { c.CNI.BinDirs = append([]string{bin}, c.CNI.BinDirs...) })
	cfg := podConfig(e.d, "killed")
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: int32(24000 + int(netBase))}}
	cfg.LogDirectory = t.TempDir()
	done := make(chan error, 1)
	go func() {
		_, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("portmap never ran; log:\n%s", e.d.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	leases, veths := e.reservations(t), e.bridgePorts(t)
	var chains []string
	for _, r := range hostnet.FirewallRules(t, "-d "+e.subnet.String()) {
		chains = append(chains, strings.Fields(r)[1]) // the pod's masquerade chain
	}
	if len(leases) != 1 || len(veths) != 1 || len(chains) != 1 {
		t.Fatalf("mid-setup the pod holds leases %v, veths %v, masquerade chains %v: want one of each", leases, veths, chains)
	}
	e.d.Kill(t)
	if err := <-done; err == nil {
		t.Fatal("RunPodSandbox succeeded although berthd was killed in it")
	}
	e.restartWith(t, func(c *config.Config) { c.CNI.BinDirs = c.CNI.BinDirs[1:] })
	deadline = time.Now().Add(30 * time.Second)
	for len(e.reservations(t)) != 0 || len(e.bridgePorts(t)) != 0 || len(hostnet.FirewallRules(t, chains[0])) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after restart: leases %v, veths %v, rules %v", e.reservations(t), e.bridgePorts(t), hostnet.FirewallRules(t, chains[0]))
		}
		time.Sleep(50 * time.Millisecond)
	}
	pods, err := e.d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("ListPodSandbox after restart = %v, %v; want no pod", pods, err)
	}
	if left, _ := os.ReadDir(filepath.Join(e.d.State, "cni", "pods")); len(left) != 0 {
		t.Errorf("network records left: %v", left)
	}
}
