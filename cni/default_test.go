package cni

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestDefaultNetworkIsWrittenIntoAnEmptyConfDir(t *testing.T) {
	tn, m := standardNet(t)
	data, err := os.ReadFile(filepath.Join(tn.confDir, DefaultConfFile))
	if err != nil {
		t.Fatalf("default network not written: %v", err)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPAM   struct {
				Type   string                `json:"type"`
				Ranges [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range conf.Plugins {
		types = append(types, p.Type)
	}
	if got := strings.Join(types, ","); got != "bridge,portmap" {
		t.Errorf("plugins = %s, want bridge,portmap (Setup brings lo up itself)", got)
	}
	if br := conf.Plugins[0]; br.Bridge != tn.bridge || br.IPAM.Type != "host-local" || br.IPAM.Ranges[0][0]["subnet"] != tn.subnet.String() {
		t.Errorf("bridge plugin = %+v, want bridge %s with host-local on %s", br, tn.bridge, tn.subnet)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}
	res := mustSetup(t, m, newPod(t, "a"))
	if !tn.subnet.Contains(res.IPs[0]) {
		t.Errorf("pod got %s, want an address in %s", res.IPs[0], tn.subnet)
	}
}

func TestDefaultNetworkLeavesAnOperatorsConfigurationAlone(t *testing.T) {
	tn := newTestNet(t)
	tn.standard(t)
	tn.writeConf(t, "20-mine.conf", []byte(`{"cniVersion": "1.0.0", "name": "mine", "type": "bridge"}`))
	m := tn.manager(t)
	if _, err := os.Stat(filepath.Join(tn.confDir, DefaultConfFile)); !os.IsNotExist(err) {
		t.Errorf("default network written beside an operator's file: %v", err)
	}
	if err := m.UpdatePodCIDR("10.55.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tn.confDir, DefaultConfFile)); !os.IsNotExist(err) {
		t.Errorf("UpdatePodCIDR wrote the default network beside an operator's file: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(tn.confDir, "20-mine.conf")); !strings.Contains(string(data), `"mine"`) {
		t.Errorf("operator's file changed: %s", data)
	}
}

func TestDefaultNetworkIsNotWrittenUnlessAskedFor(t *testing.T) {
	tn := newTestNet(t)
	m := tn.manager(t)
	if entries, _ := os.ReadDir(tn.confDir); len(entries) != 0 {
		t.Errorf("conf dir holds %v", entries)
	}
	if err := m.UpdatePodCIDR("10.55.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tn.confDir); len(entries) != 0 {
		t.Errorf("conf dir holds %v after UpdatePodCIDR", entries)
	}
}

func TestUpdatePodCIDRMovesTheDefaultNetworkOnceNoPodUsesIt(t *testing.T) {
	tn, m := standardNet(t)
	first := newPod(t, "a")
	if res := mustSetup(t, m, first); !tn.subnet.Contains(res.IPs[0]) {
		t.Fatalf("first pod got %s", res.IPs[0])
	}
	before, _ := os.ReadFile(filepath.Join(tn.confDir, DefaultConfFile))

	// A range of its own, as kubelet's node pod CIDR would be.
	moved := newTestNet(t)
	if err := m.UpdatePodCIDR(moved.subnet.String()); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("UpdatePodCIDR with a pod attached = %v, want failed precondition", err)
	}
	if after, _ := os.ReadFile(filepath.Join(tn.confDir, DefaultConfFile)); string(after) != string(before) {
		t.Errorf("refused UpdatePodCIDR changed the network:\n%s", after)
	}
	if err := m.UpdatePodCIDR(tn.subnet.String()); err != nil {
		t.Errorf("UpdatePodCIDR with the range in use = %v, want nothing to do", err)
	}

	if err := m.Teardown(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdatePodCIDR(moved.subnet.String()); err != nil {
		t.Fatalf("UpdatePodCIDR: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(tn.confDir, DefaultConfFile))
	if !strings.Contains(string(data), moved.subnet.String()) {
		t.Errorf("default network after UpdatePodCIDR:\n%s", data)
	}
	pod := newPod(t, "b")
	next := mustSetup(t, m, pod)
	if !moved.subnet.Contains(next.IPs[0]) {
		t.Errorf("pod after UpdatePodCIDR got %s, want an address in %s", next.IPs[0], moved.subnet)
	}
	// The bridge carries the new gateway: the host can listen there.
	mustEchoServer(t, "", net.JoinHostPort(moved.gateway.String(), "0"))
	// A restarted berthd keeps kubelet's range rather than the configured one.
	m.Close()
	tn.manager(t)
	if data2, _ := os.ReadFile(filepath.Join(tn.confDir, DefaultConfFile)); string(data2) != string(data) {
		t.Errorf("restart rewrote the default network:\n%s", data2)
	}
}

func TestUpdatePodCIDRValidatesTheRange(t *testing.T) {
	tn, m := standardNet(t)
	before, _ := os.ReadFile(filepath.Join(tn.confDir, DefaultConfFile))
	for _, tc := range []struct {
		name, cidr string
	}{
		{"a bare address is refused", "10.1.2.3"},
		{"garbage is refused", "pods please"},
		{"a /32 has no room for pods", "10.1.2.3/32"},
		{"two IPv4 ranges are refused", "10.1.0.0/24,10.2.0.0/24"},
		{"a bad second range is refused", "10.1.0.0/24,fd00::/200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.UpdatePodCIDR(tc.cidr); !errdefs.IsInvalidArgument(err) {
				t.Errorf("UpdatePodCIDR(%q) = %v, want invalid argument", tc.cidr, err)
			}
		})
	}
	if err := m.UpdatePodCIDR(""); err != nil {
		t.Errorf("UpdatePodCIDR(\"\") = %v, want nothing to do", err)
	}
	if after, _ := os.ReadFile(filepath.Join(tn.confDir, DefaultConfFile)); string(after) != string(before) {
		t.Errorf("refused ranges changed the default network:\n%s", after)
	}
}

func TestUpdatePodCIDRWithIPv6MakesTheDefaultNetworkDualStack(t *testing.T) {
	tn, m := standardNet(t)
	v6 := "fd00:b1:" + randHex(2) + "::/64"
	if err := m.UpdatePodCIDR(tn.subnet.String() + "," + v6); err != nil {
		t.Fatal(err)
	}
	pod := newPod(t, "a")
	res := mustSetup(t, m, pod)
	_, n6, _ := net.ParseCIDR(v6)
	if len(res.IPs) != 2 || !tn.subnet.Contains(res.IPs[0]) || !n6.Contains(res.IPs[1]) {
		t.Fatalf("IPs = %v, want one in %s then one in %s", res.IPs, tn.subnet, v6)
	}
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, tn, m, pod)
}

func TestNewRefusesBadDefaultNetworkSettings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"a default subnet that is no range is refused", func(c *Config) { c.DefaultSubnet = "10.0.0.1" }},
		{"a bridge name longer than an interface name is refused", func(c *Config) { c.DefaultBridge = "a-very-long-bridge-name" }},
		{"a relative conf dir is refused", func(c *Config) { c.ConfDir = "net.d" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ConfDir = t.TempDir()
			tc.mutate(&cfg)
			if m, err := New(Options{Config: cfg, StateDir: t.TempDir()}); !errdefs.IsInvalidArgument(err) {
				if m != nil {
					m.Close()
				}
				t.Errorf("New = %v, want invalid argument", err)
			}
		})
	}
}

func TestPodCIDRSurvivesARestart(t *testing.T) {
	tn, m := standardNet(t)
	moved := newTestNet(t)
	if err := m.UpdatePodCIDR(moved.subnet.String()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	// The default network file is gone too: the new Manager writes it for
	// kubelet's range, not the configured one.
	if err := os.Remove(filepath.Join(tn.confDir, DefaultConfFile)); err != nil {
		t.Fatal(err)
	}
	m2 := tn.manager(t)
	rt, err := m2.runtimeConf(newPod(t, "a"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := rt.CapabilityArgs[capIPRanges].([][]ipRange); !ok || len(got) != 1 || got[0][0].Subnet != moved.subnet.String() {
		t.Errorf("ipRanges after restart = %#v, want %s", rt.CapabilityArgs[capIPRanges], moved.subnet)
	}
	res := mustSetup(t, m2, newPod(t, "b"))
	if !moved.subnet.Contains(res.IPs[0]) {
		t.Errorf("pod after restart got %s, want an address in %s", res.IPs[0], moved.subnet)
	}
}
