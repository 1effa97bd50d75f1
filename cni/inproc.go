package cni

// Berth's default network, run in berthd.
//
// A pod's ADD through the default network's plugins is three execs of Go
// binaries (bridge, which execs host-local, then portmap), each starting a
// runtime and, for bridge, about ten iptables processes; its DEL is as
// many again. When the network of a pod's record is exactly the
// 10-berth.conflist Berth writes (inProcessNetwork) and
// Config.DefaultInProcess is on, berthd does the same work itself
// (inproc_linux.go), leaving the host as the plugins would:
//
//   - addresses from the host-local allocator and disk store of
//     github.com/containernetworking/plugins, on the same dataDir, so a
//     lease file is "<pod id>\r\neth0" named by the address either way, and
//     the store's lock keeps a plugin and berthd from handing out one
//     address twice;
//   - the bridge with the gateway address, ip_forward on, a veth pair made
//     in one netlink request with its peer (eth0) created straight in the
//     pod's namespace, hairpin on the bridge port, arp_notify, the address
//     and the routes of the IPAM configuration in the pod;
//   - the bridge plugin's masquerade chain and rules (CNI-<hash of network
//     and pod>, comment `name: "berth" id: "<pod>"`), written with one
//     iptables-restore instead of one iptables per rule;
//   - the same result cached where libcni caches it (cache/results/
//     berth-<pod>-eth0, kind cniCacheV1), so CHECK and a plugin DEL find it.
//
// hostPort mappings still run the portmap plugin, only for pods that have
// some (portmap does nothing for a pod without), chained on the in-process
// result as libcni would chain it. DEL of either kind of pod works with
// either setting: in-process DEL releases leases by pod and interface,
// deletes eth0 in the namespace (its peer goes with it), removes the
// masquerade rules of every address the pod held (taken from the leases, so
// also after a crash before the record knew them), runs portmap's DEL when
// the pod had mappings and drops the cached result; the plugins' DEL finds
// the same leases, interface and rules. IPv6 ranges (a dual-stack pod CIDR)
// keep running the plugins.

import (
	"encoding/json"
	"path/filepath"
	"strings"
)

// inprocNet is Berth's default network as recognised in a record.
type inprocNet struct {
	bridge     string
	ipamConf   []byte          // the bridge plugin's entry with the network's name and version, as host-local reads it
	portmap    json.RawMessage // the portmap entry
	cniVersion string
}

// defaultBridgeEntry is the bridge entry defaultNetwork writes; decoding
// rejects any other key.
type defaultBridgeEntry struct {
	Type        string `json:"type"`
	Bridge      string `json:"bridge"`
	IsGateway   bool   `json:"isGateway"`
	IPMasq      bool   `json:"ipMasq"`
	HairpinMode bool   `json:"hairpinMode"`
	IPAM        struct {
		Type   string `json:"type"`
		Ranges [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
		Routes []struct {
			Dst string `json:"dst"`
		} `json:"routes"`
		DataDir string `json:"dataDir"`
	} `json:"ipam"`
}

// inProcessNetwork returns the network of rec when berthd runs it itself:
// the switch is on, rec was attached with Berth's own default file, and its
// plugins are exactly what defaultNetwork writes for IPv4 ranges. Anything
// else, an operator's file above all, runs through libcni.
func (m *Manager) inProcessNetwork(rec *record) (*inprocNet, bool) {
	if !m.cfg.DefaultInProcess || rec.Network != DefaultNetworkName ||
		rec.File != filepath.Join(m.cfg.ConfDir, DefaultConfFile) || len(rec.Plugins) != 2 {
		return nil, false
	}
	var br defaultBridgeEntry
	if !strictDecode(rec.Plugins[0], &br) || br.Type != "bridge" || !br.IsGateway || !br.IPMasq || !br.HairpinMode ||
		br.IPAM.Type != "host-local" || br.IPAM.DataDir == "" || len(br.IPAM.Ranges) == 0 || validBridgeName(br.Bridge) != nil {
		return nil, false
	}
	for _, set := range br.IPAM.Ranges {
		if len(set) != 1 || !strings.Contains(set[0].Subnet, ".") {
			return nil, false
		}
	}
	for _, r := range br.IPAM.Routes {
		if r.Dst != "0.0.0.0/0" {
			return nil, false
		}
	}
	var pm struct {
		Type         string          `json:"type"`
		Capabilities map[string]bool `json:"capabilities"`
	}
	if !strictDecode(rec.Plugins[1], &pm) || pm.Type != "portmap" || len(pm.Capabilities) != 1 || !pm.Capabilities["portMappings"] {
		return nil, false
	}
	var entry map[string]any
	if json.Unmarshal(rec.Plugins[0], &entry) != nil {
		return nil, false
	}
	entry["name"], entry["cniVersion"] = rec.Network, rec.CNIVersion
	ipamConf, err := json.Marshal(entry)
	if err != nil {
		return nil, false
	}
	return &inprocNet{bridge: br.Bridge, ipamConf: ipamConf, portmap: rec.Plugins[1], cniVersion: rec.CNIVersion}, true
}

func strictDecode(data []byte, v any) bool {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}

// portMappings reports whether rec passes portmap any mapping.
func (r *record) portMappings() bool {
	pm, ok := r.Capabilities["portMappings"]
	if !ok {
		return false
	}
	list, ok := pm.([]any)
	if ok {
		return len(list) > 0
	}
	data, _ := json.Marshal(pm)
	return string(data) != "null" && string(data) != "[]"
}
