package cni

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPluginsGetTheRuntimeConfigTheyDeclare(t *testing.T) {
	tn := newTestNet(t)
	bin := filepath.Join(t.TempDir(), "bin")
	out := t.TempDir()
	tn.binDirs = []string{bin}
	// record keeps what each call got and answers like a plugin that gave
	// the pod 10.1.2.3.
	writePlugin(t, bin, "record", `cat > `+out+`/$CNI_COMMAND.stdin
env > `+out+`/$CNI_COMMAND.env
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'$CNI_NETNS'"}],"ips":[{"address":"10.1.2.3/24","interface":0},{"address":"fd00::3/64","interface":0}]}';;
`+versionCase+`esac
exit 0
`)
	tn.writeConf(t, "10-net.conflist", tn.conflist(map[string]any{"type": "record", "capabilities": map[string]any{
		"portMappings": true, "bandwidth": true, "ipRanges": true, "dns": true, "cgroupPath": true,
		"io.kubernetes.cri.pod-annotations": true,
	}}))
	m := tn.manager(t)
	if err := m.UpdatePodCIDR("10.77.0.0/24,fd77::/64"); err != nil {
		t.Fatal(err)
	}
	pod := newPod(t, "web")
	pod.CgroupDir = "/kubepods/besteffort/podabc"
	pod.Config.Annotations = map[string]string{
		annotationIngressBandwidth: "10M",
		annotationEgressBandwidth:  "1Mi",
		"team":                     "net",
	}
	pod.Config.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}}
	pod.Config.PortMappings = []*runtimeapi.PortMapping{
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080},
		{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
		{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 99, HostPort: 9999},
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 81},
	}
	res := mustSetup(t, m, pod)
	if len(res.IPs) != 2 || res.IPs[0].String() != "10.1.2.3" || res.IPs[1].String() != "fd00::3" {
		t.Errorf("IPs = %v, want 10.1.2.3 and fd00::3", res.IPs)
	}

	var add struct {
		RuntimeConfig map[string]any `json:"runtimeConfig"`
	}
	data, err := os.ReadFile(filepath.Join(out, "ADD.stdin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &add); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"portMappings": []any{
			map[string]any{"hostPort": 8080.0, "containerPort": 80.0, "protocol": "tcp"},
			map[string]any{"hostPort": 5353.0, "containerPort": 53.0, "protocol": "udp", "hostIP": "127.0.0.1"},
			map[string]any{"hostPort": 9999.0, "containerPort": 99.0, "protocol": "sctp"},
		},
		"bandwidth": map[string]any{
			"ingressRate": 10e6, "ingressBurst": float64(math.MaxUint32),
			"egressRate": float64(1 << 20), "egressBurst": float64(math.MaxUint32),
		},
		"ipRanges":   []any{[]any{map[string]any{"subnet": "10.77.0.0/24"}}, []any{map[string]any{"subnet": "fd77::/64"}}},
		"dns":        map[string]any{"servers": []any{"10.96.0.10"}, "searches": []any{"default.svc.cluster.local"}, "options": []any{"ndots:5"}},
		"cgroupPath": "/kubepods/besteffort/podabc",
		"io.kubernetes.cri.pod-annotations": map[string]any{
			annotationIngressBandwidth: "10M", annotationEgressBandwidth: "1Mi", "team": "net",
		},
	}
	for k, v := range want {
		if !reflect.DeepEqual(add.RuntimeConfig[k], v) {
			t.Errorf("runtimeConfig.%s = %#v, want %#v", k, add.RuntimeConfig[k], v)
		}
	}
	env, _ := os.ReadFile(filepath.Join(out, "ADD.env"))
	for _, kv := range []string{
		"CNI_CONTAINERID=" + pod.ID, "CNI_NETNS=" + pod.NetNS, "CNI_IFNAME=eth0",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=" + pod.ID + ";K8S_POD_UID=uid-web",
	} {
		if !strings.Contains(string(env), kv+"\n") {
			t.Errorf("plugin environment lacks %s:\n%s", kv, env)
		}
	}

	// DEL gets the same arguments, and the result ADD returned.
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	var del struct {
		RuntimeConfig map[string]any `json:"runtimeConfig"`
		PrevResult    map[string]any `json:"prevResult"`
	}
	data, _ = os.ReadFile(filepath.Join(out, "DEL.stdin"))
	if err := json.Unmarshal(data, &del); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(del.RuntimeConfig["portMappings"], want["portMappings"]) || del.PrevResult == nil {
		t.Errorf("DEL got runtimeConfig %v and prevResult %v, want ADD's", del.RuntimeConfig, del.PrevResult)
	}
}

func TestPluginsWithoutCapabilitiesGetNoRuntimeConfig(t *testing.T) {
	tn := newTestNet(t)
	bin := filepath.Join(t.TempDir(), "bin")
	out := t.TempDir()
	tn.binDirs = []string{bin}
	writePlugin(t, bin, "record", `cat > `+out+`/$CNI_COMMAND.stdin
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/24"}]}';;
esac
exit 0
`)
	tn.writeConf(t, "10-net.conflist", tn.conflist(map[string]any{"type": "record"}))
	m := tn.manager(t)
	pod := newPod(t, "web")
	pod.Config.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080}}
	mustSetup(t, m, pod)
	data, _ := os.ReadFile(filepath.Join(out, "ADD.stdin"))
	if strings.Contains(string(data), "runtimeConfig") {
		t.Errorf("plugin declaring no capability got %s", data)
	}
}

func TestBandwidthAnnotationsShapeThePodsTraffic(t *testing.T) {
	tn := newTestNet(t)
	tn.writeConf(t, "10-net.conflist", tn.conflist(tn.bridgePlugin(),
		map[string]any{"type": "bandwidth", "capabilities": map[string]any{"bandwidth": true}}))
	m := tn.manager(t)
	pod := newPod(t, "slow")
	pod.Config.Annotations = map[string]string{annotationIngressBandwidth: "1M", annotationEgressBandwidth: "2M"}
	mustSetup(t, m, pod)
	ports := tn.bridgePorts(t)
	if len(ports) != 1 {
		t.Fatalf("bridge ports %v", ports)
	}
	out, err := exec.Command("tc", "qdisc", "show", "dev", ports[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("tc: %v: %s", err, out)
	}
	// Ingress to the pod leaves the host through its veth: a tbf there.
	if !strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "rate 1Mbit") {
		t.Errorf("host veth %s qdiscs lack a 1Mbit tbf:\n%s", ports[0], out)
	}
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, tn, m, pod)
}

func TestParseQuantity(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want uint64
		bad  bool
	}{
		{name: "a plain number is bits", in: "1000", want: 1000},
		{name: "k is a thousand", in: "100k", want: 100e3},
		{name: "M is a million", in: "10M", want: 10e6},
		{name: "Mi is two to the twenty", in: "1Mi", want: 1 << 20},
		{name: "a fraction is scaled", in: "1.5G", want: 1.5e9},
		{name: "a fraction left after scaling rounds up", in: "0.0001k", want: 1},
		{name: "P is the largest allowed unit used", in: "1P", want: 1e15},
		{name: "a word is refused", in: "fast", bad: true},
		{name: "a negative number is refused", in: "-5M", bad: true},
		{name: "a bare suffix is refused", in: "M", bad: true},
		{name: "an exponent is refused", in: "1e6", bad: true},
		{name: "an unknown suffix is refused", in: "5X", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseQuantity(tc.in)
			if tc.bad {
				if err == nil {
					t.Errorf("parseQuantity(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("parseQuantity(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestPodBandwidthBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want *bandwidth
		bad  bool
	}{
		{name: "no annotation means no shaping", ann: map[string]string{"x": "y"}},
		{name: "ingress alone shapes ingress", ann: map[string]string{annotationIngressBandwidth: "1M"},
			want: &bandwidth{IngressRate: 1e6, IngressBurst: math.MaxUint32}},
		{name: "a rate under 1k is refused", ann: map[string]string{annotationEgressBandwidth: "999"}, bad: true},
		{name: "a rate over 1P is refused", ann: map[string]string{annotationEgressBandwidth: "2P"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := podBandwidth(tc.ann)
			if tc.bad {
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("podBandwidth = %v, %v; want invalid argument", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("podBandwidth = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestPortMappingsTranslation(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []*runtimeapi.PortMapping
		want []portMapping
		bad  bool
	}{
		{name: "protocols are lower-case names", in: []*runtimeapi.PortMapping{
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 1, HostPort: 2},
			{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 3, HostPort: 4, HostIp: "::1"},
			{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 5, HostPort: 6},
		}, want: []portMapping{{2, 1, "tcp", ""}, {4, 3, "udp", "::1"}, {6, 5, "sctp", ""}}},
		{name: "mappings without a host port are dropped", in: []*runtimeapi.PortMapping{{ContainerPort: 80}}},
		{name: "a container port of zero is refused", in: []*runtimeapi.PortMapping{{HostPort: 80}}, bad: true},
		{name: "an unknown protocol is refused", in: []*runtimeapi.PortMapping{{Protocol: 7, ContainerPort: 1, HostPort: 1}}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := portMappings(tc.in)
			if tc.bad {
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("portMappings = %v, %v; want invalid argument", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("portMappings = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
