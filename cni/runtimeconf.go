package cni

import (
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Capability arguments, named as the CNI conventions and containerd name
// them; libcni hands each only to plugins declaring it.
const (
	capPortMappings   = "portMappings"
	capBandwidth      = "bandwidth"
	capIPRanges       = "ipRanges"
	capDNS            = "dns"
	capCgroupPath     = "cgroupPath"
	capPodAnnotations = "io.kubernetes.cri.pod-annotations"
)

// Pod annotations kubelet's bandwidth shaping is asked for with.
const (
	annotationIngressBandwidth = "kubernetes.io/ingress-bandwidth"
	annotationEgressBandwidth  = "kubernetes.io/egress-bandwidth"
)

type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

type bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

type ipRange struct {
	Subnet string `json:"subnet"`
}

type dns struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// runtimeConf builds the plugins' invocation for pod.
func (m *Manager) runtimeConf(pod Pod, netns string) (*libcni.RuntimeConf, error) {
	cfg := pod.Config
	meta := cfg.GetMetadata()
	rt := &libcni.RuntimeConf{
		ContainerID: pod.ID,
		NetNS:       netns,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", meta.GetNamespace()},
			{"K8S_POD_NAME", meta.GetName()},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ID},
			{"K8S_POD_UID", meta.GetUid()},
		},
		CapabilityArgs: map[string]any{},
	}
	ports, err := portMappings(cfg.GetPortMappings())
	if err != nil {
		return nil, err
	}
	if len(ports) > 0 {
		rt.CapabilityArgs[capPortMappings] = ports
	}
	bw, err := podBandwidth(cfg.GetAnnotations())
	if err != nil {
		return nil, err
	}
	if bw != nil {
		rt.CapabilityArgs[capBandwidth] = bw
	}
	m.mu.Lock()
	cidrs := m.podCIDRs
	m.mu.Unlock()
	if len(cidrs) > 0 {
		ranges := make([][]ipRange, len(cidrs))
		for i, c := range cidrs {
			ranges[i] = []ipRange{{Subnet: c.String()}}
		}
		rt.CapabilityArgs[capIPRanges] = ranges
	}
	if d := cfg.GetDnsConfig(); d != nil {
		rt.CapabilityArgs[capDNS] = dns{Servers: d.GetServers(), Searches: d.GetSearches(), Options: d.GetOptions()}
	}
	if pod.CgroupDir != "" {
		rt.CapabilityArgs[capCgroupPath] = pod.CgroupDir
	}
	if a := cfg.GetAnnotations(); len(a) > 0 {
		rt.CapabilityArgs[capPodAnnotations] = a
	}
	return rt, nil
}

// portMappings translates the CRI's port mappings; those without a host
// port only document the pod and are left out, as containerd does.
func portMappings(in []*runtimeapi.PortMapping) ([]portMapping, error) {
	var out []portMapping
	for _, p := range in {
		if p.GetHostPort() <= 0 {
			continue
		}
		if p.GetHostPort() > 65535 || p.GetContainerPort() <= 0 || p.GetContainerPort() > 65535 {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("port mapping %d->%d: ports must be 1-65535", p.GetHostPort(), p.GetContainerPort()))
		}
		var proto string
		switch p.GetProtocol() {
		case runtimeapi.Protocol_TCP:
			proto = "tcp"
		case runtimeapi.Protocol_UDP:
			proto = "udp"
		case runtimeapi.Protocol_SCTP:
			proto = "sctp"
		default:
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("port mapping %d: unknown protocol %v", p.GetHostPort(), p.GetProtocol()))
		}
		out = append(out, portMapping{
			HostPort:      p.GetHostPort(),
			ContainerPort: p.GetContainerPort(),
			Protocol:      proto,
			HostIP:        p.GetHostIp(),
		})
	}
	return out, nil
}

// podBandwidth reads kubelet's bandwidth annotations. Rates are bits per
// second; the burst is unbounded (the largest the bandwidth plugin takes),
// as containerd sets it.
func podBandwidth(annotations map[string]string) (*bandwidth, error) {
	var bw bandwidth
	for _, a := range []struct {
		key         string
		rate, burst *uint64
	}{
		{annotationIngressBandwidth, &bw.IngressRate, &bw.IngressBurst},
		{annotationEgressBandwidth, &bw.EgressRate, &bw.EgressBurst},
	} {
		v, ok := annotations[a.key]
		if !ok {
			continue
		}
		rate, err := parseQuantity(v)
		if err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("annotation %s: %v", a.key, err))
		}
		// kubelet's own bounds for these annotations.
		if rate < 1000 || rate > 1e15 {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("annotation %s: %s is outside 1k to 1P", a.key, v))
		}
		*a.rate, *a.burst = rate, math.MaxUint32
	}
	if bw == (bandwidth{}) {
		return nil, nil
	}
	return &bw, nil
}

// quantitySuffixes are the Kubernetes resource quantity suffixes.
var quantitySuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
	{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
}

// parseQuantity reads a Kubernetes quantity such as "10M", "1.5Gi" or
// "500k", rounding a fraction up as resource.Quantity.Value does.
func parseQuantity(s string) (uint64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, q := range quantitySuffixes {
		if strings.HasSuffix(num, q.suffix) {
			num, mult = strings.TrimSuffix(num, q.suffix), q.mult
			break
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if num == "" || !ok || strings.ContainsAny(num, "/eE") || r.Sign() < 0 {
		return 0, fmt.Errorf("%q is not a quantity", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	v := new(big.Int).Quo(r.Num(), r.Denom())
	if new(big.Rat).SetInt(v).Cmp(r) != 0 {
		v.Add(v, big.NewInt(1))
	}
	if !v.IsUint64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v.Uint64(), nil
}
