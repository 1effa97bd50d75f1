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

// networkUsage reads the counters of every interface but lo in the network
// namespace pinned at path, through a netlink socket opened in it (no
// thread of berthd stays in the namespace). The default interface is
// eth0, else the first.
func networkUsage(path string) (*runtimeapi.NetworkUsage, error) {
	var links []netlink.Link
	if err := cni.WithNetNS(path, func(h *netlink.Handle) (err error) {
		links, err = h.LinkList()
		return err
	}); err != nil {
		return nil, fmt.Errorf("list interfaces in %s: %w", path, err)
	}
	out := &runtimeapi.NetworkUsage{Timestamp: time.Now().UnixNano()}
	for _, l := range links {
		a := l.Attrs()
		if a == nil || a.Name == "lo" {
			continue
		}
		var st netlink.LinkStatistics
		if a.Statistics != nil {
			st = *a.Statistics
		}
		iface := &runtimeapi.NetworkInterfaceUsage{
			Name:     a.Name,
			RxBytes:  &runtimeapi.UInt64Value{Value: st.RxBytes},
			RxErrors: &runtimeapi.UInt64Value{Value: st.RxErrors},
			TxBytes:  &runtimeapi.UInt64Value{Value: st.TxBytes},
			TxErrors: &runtimeapi.UInt64Value{Value: st.TxErrors},
		}
		if a.Name == defaultInterface && out.DefaultInterface == nil {
			out.DefaultInterface = iface
			continue
		}
		out.Interfaces = append(out.Interfaces, iface)
	}
	if out.DefaultInterface == nil && len(out.Interfaces) > 0 {
		out.DefaultInterface, out.Interfaces = out.Interfaces[0], out.Interfaces[1:]
	}
	return out, nil
}
