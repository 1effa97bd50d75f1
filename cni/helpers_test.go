package cni

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-runtime/berth/test/hostnet"
	"github.com/vishvananda/netns"
	"go.uber.org/zap/zaptest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// debianPlugins is where Debian's containernetworking-plugins installs.
const debianPlugins = "/usr/lib/cni"

// subnetSeq hands every test network its own 10.199.N.0/24, so tests
// never share addresses with each other or with a real setup.
var subnetSeq atomic.Int32

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testNet is a private bridge network: its own bridge, range and
// host-local store.
type testNet struct {
	name    string
	bridge  string
	subnet  *net.IPNet
	gateway net.IP
	dataDir string
	confDir string
	state   string
	binDirs []string
	// builtin: the network is Berth's default one, written by New.
	builtin bool
}

// newTestNet makes the directories of a private network and deletes its
// bridge when the test ends. Call writeConf to put its conflist in place.
func newTestNet(t testing.TB) *testNet {
	t.Helper()
	n := subnetSeq.Add(1)
	_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.199.%d.0/24", n))
	dir := t.TempDir()
	tn := &testNet{
		name:    "bt" + randHex(4),
		bridge:  "bt" + randHex(5),
		subnet:  subnet,
		gateway: net.IPv4(10, 199, byte(n), 1).To4(),
		state:   filepath.Join(dir, "state"),
		dataDir: filepath.Join(dir, "state", "networks"),
		confDir: filepath.Join(dir, "net.d"),
		binDirs: []string{debianPlugins},
	}
	if err := os.MkdirAll(tn.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", tn.bridge).Run() })
	return tn
}

// bridgePlugin is the network's bridge + host-local plugin entry.
func (tn *testNet) bridgePlugin(extraRanges ...string) map[string]any {
	ranges := []any{[]any{map[string]any{"subnet": tn.subnet.String()}}}
	routes := []any{map[string]any{"dst": "0.0.0.0/0"}}
	for _, r := range extraRanges {
		ranges = append(ranges, []any{map[string]any{"subnet": r}})
		routes = append(routes, map[string]any{"dst": "::/0"})
	}
	return map[string]any{
		"type": "bridge", "bridge": tn.bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
		"ipam": map[string]any{"type": "host-local", "ranges": ranges, "routes": routes, "dataDir": tn.dataDir},
	}
}

// conflist renders a conflist of plugins for the network.
func (tn *testNet) conflist(plugins ...map[string]any) []byte {
	data, err := json.MarshalIndent(map[string]any{"cniVersion": "1.0.0", "name": tn.name, "plugins": plugins}, "", "  ")
	if err != nil {
		panic(err)
	}
	return data
}

// writeConf writes file into the conf dir.
func (tn *testNet) writeConf(t *testing.T, file string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tn.confDir, file), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// standard makes the network Berth's default one (bridge with
// host-local, portmap), on the test's own bridge, range and store.
func (tn *testNet) standard(t testing.TB) {
	t.Helper()
	tn.builtin = true
	tn.name = DefaultNetworkName
}

// standardNet makes a private network Berth's default one and starts a
// Manager on it.
func standardNet(t testing.TB) (*testNet, *Manager) {
	t.Helper()
	tn := newTestNet(t)
	tn.standard(t)
	return tn, tn.manager(t)
}

// manager starts a Manager on the network, with the test's state dir.
// Managers of one test share it, as a restarted berthd does.
func (tn *testNet) manager(t testing.TB, mutate ...func(*Config)) *Manager {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ConfDir = tn.confDir
	cfg.BinDirs = tn.binDirs
	if tn.builtin {
		cfg.DefaultNetwork = true
		cfg.DefaultSubnet = tn.subnet.String()
		cfg.DefaultBridge = tn.bridge
	}
	for _, f := range mutate {
		f(&cfg)
	}
	m, err := New(Options{Config: cfg, StateDir: tn.state, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// reservations lists the addresses host-local holds in the network's store.
func (tn *testNet) reservations(t *testing.T) []string {
	t.Helper()
	return hostnet.Reservations(t, filepath.Join(tn.dataDir, tn.name))
}

// bridgePorts lists the links enslaved to the network's bridge (the host
// ends of pods' veths).
func (tn *testNet) bridgePorts(t *testing.T) []string {
	t.Helper()
	return hostnet.BridgePorts(t, tn.bridge)
}

// newNetNS pins a fresh network namespace, as the sandbox does for a pod,
// and removes it when the test ends.
func newNetNS(t testing.TB) string {
	t.Helper()
	name := "berth-cni-test-" + randHex(6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// deleteNetNS removes a pinned namespace before the test ends.
func deleteNetNS(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(path)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
}

// inNetNS runs fn on a thread inside the namespace at path. Sockets fn
// opens stay in that namespace.
func inNetNS(t *testing.T, path string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Errorf("get netns: %v", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			t.Errorf("open netns %s: %v", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			t.Errorf("enter netns %s: %v", path, err)
			return
		}
		fn()
		if err := netns.Set(orig); err != nil {
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	<-done
}

// ipIn runs `ip args...` inside the namespace at path.
func ipIn(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", filepath.Base(path)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %v: %v: %s", filepath.Base(path), args, err, out)
	}
	return string(out)
}

// mustEchoServer listens on TCP addr inside the namespace (the host when
// path is empty) and echoes one line per connection until the test ends.
func mustEchoServer(t *testing.T, path, addr string) net.Listener {
	t.Helper()
	var (
		l   net.Listener
		err error
	)
	listen := func() { l, err = net.Listen("tcp", addr) }
	if path == "" {
		listen()
	} else {
		inNetNS(t, path, listen)
	}
	if err != nil {
		t.Fatalf("listen on %s in %q: %v", addr, path, err)
	}
	t.Cleanup(func() { l.Close() })
	hostnet.EchoServer(l)
	return l
}

// echo dials addr from inside the namespace (the host when path is empty)
// and returns what the server sent back.
func echo(t *testing.T, path, addr, msg string) (string, error) {
	t.Helper()
	var (
		c   net.Conn
		err error
	)
	dial := func() { c, err = net.DialTimeout("tcp", addr, 5*time.Second) }
	if path == "" {
		dial()
	} else {
		inNetNS(t, path, dial)
	}
	if err != nil {
		return "", err
	}
	return hostnet.Exchange(c, msg)
}

// podConfig is a minimal pod for the network.
func podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name},
	}
}

// newPod makes a pod with a fresh namespace.
func newPod(t *testing.T, name string) Pod {
	t.Helper()
	return Pod{ID: "pod" + randHex(8), NetNS: newNetNS(t), Config: podConfig(name)}
}

// mustSetup attaches pod and detaches it when the test ends.
func mustSetup(t *testing.T, m *Manager, pod Pod) Result {
	t.Helper()
	res, err := m.Setup(context.Background(), pod)
	if err != nil {
		t.Fatalf("Setup %s: %v", pod.ID, err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), pod) })
	return res
}

// writePlugin writes an executable shell plugin into dir.
func writePlugin(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNoTrace fails when anything of pod is left: address, veth,
// iptables rule, record or eth0 in its namespace.
func assertNoTrace(t *testing.T, tn *testNet, m *Manager, pod Pod) {
	t.Helper()
	assertNetworkEmpty(t, tn)
	if got := hostnet.FirewallRules(t, pod.ID); len(got) != 0 {
		t.Errorf("iptables rules left for the pod:\n%s", strings.Join(got, "\n"))
	}
	if _, err := os.Stat(m.recordPath(pod.ID)); !os.IsNotExist(err) {
		t.Errorf("network record left: %v", err)
	}
	if isNetNS(pod.NetNS) {
		if got := ipIn(t, pod.NetNS, "-o", "link", "show"); strings.Contains(got, "eth0") {
			t.Errorf("eth0 left in the pod: %s", got)
		}
	}
}

// assertNetworkEmpty fails when host-local still reserves an address or a
// veth is left on the bridge.
func assertNetworkEmpty(t *testing.T, tn *testNet) {
	t.Helper()
	if got := tn.reservations(t); len(got) != 0 {
		t.Errorf("host-local still reserves %v", got)
	}
	if got := tn.bridgePorts(t); len(got) != 0 {
		t.Errorf("veths left on the bridge: %v", got)
	}
}

// plugin installs a shell plugin into the network's own bin dir, searched
// after Debian's.
func (tn *testNet) plugin(t *testing.T, name, script string) {
	t.Helper()
	bin := filepath.Join(filepath.Dir(tn.confDir), "bin")
	if !slices.Contains(tn.binDirs, bin) {
		tn.binDirs = append(tn.binDirs, bin)
	}
	writePlugin(t, bin, name, script)
}
