package sandbox

import (
	"fmt"
	"time"

	"github.com/berth-runtime/berth/cni"
	"github.com/vishvananda/netlink"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultInterface is the pod's interface the CNI plugins make.
const defaultInterface = "eth0"

// linkStats is one interface's counters: more than the CRI's
// NetworkInterfaceUsage carries (packets and drops), which
// ListPodSandboxMetrics sends as cAdvisor's container_network_* series.
type linkStats struct {
	name                                    string
	rxBytes, rxPackets, rxErrors, rxDropped uint64
	txBytes, txPackets, txErrors, txDropped uint64
}

// podNetwork is a pod's interfaces, read at once.
type podNetwork struct {
	timestamp int64
	links     []linkStats // default interface first
}

// readPodNetwork reads the counters of every interface but lo in the
// network namespace pinned at path, through a netlink socket opened in it
// (no thread of berthd stays in the namespace). The default interface is
// eth0, else the first.
func readPodNetwork(path string) (*podNetwork, error) {
	var links []netlink.Link
	if err := cni.WithNetNS(path, func(h *netlink.Handle) (err error) {
		links, err = h.LinkList()
		return err
	}); err != nil {
		return nil, fmt.Errorf("list interfaces in %s: %w", path, err)
	}
	out := &podNetwork{timestamp: time.Now().UnixNano()}
	for _, l := range links {
		a := l.Attrs()
		if a == nil || a.Name == "lo" {
			continue
		}
		var st netlink.LinkStatistics
		if a.Statistics != nil {
			st = *a.Statistics
		}
		ls := linkStats{name: a.Name,
			rxBytes: st.RxBytes, rxPackets: st.RxPackets, rxErrors: st.RxErrors, rxDropped: st.RxDropped,
			txBytes: st.TxBytes, txPackets: st.TxPackets, txErrors: st.TxErrors, txDropped: st.TxDropped,
		}
		if a.Name == defaultInterface {
			out.links = append([]linkStats{ls}, out.links...)
			continue
		}
		out.links = append(out.links, ls)
	}
	return out, nil
}

// usage is n in the CRI's terms: bytes and errors per interface.
func (n *podNetwork) usage() *runtimeapi.NetworkUsage {
	out := &runtimeapi.NetworkUsage{Timestamp: n.timestamp}
	for i, l := range n.links {
		iface := &runtimeapi.NetworkInterfaceUsage{
			Name:     l.name,
			RxBytes:  &runtimeapi.UInt64Value{Value: l.rxBytes},
			RxErrors: &runtimeapi.UInt64Value{Value: l.rxErrors},
			TxBytes:  &runtimeapi.UInt64Value{Value: l.txBytes},
			TxErrors: &runtimeapi.UInt64Value{Value: l.txErrors},
		}
		if i == 0 {
			out.DefaultInterface = iface
			continue
		}
		out.Interfaces = append(out.Interfaces, iface)
	}
	return out
}
