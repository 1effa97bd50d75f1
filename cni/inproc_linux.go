package cni

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// addInProcess attaches the pod of rec as the default network's bridge,
// host-local and portmap plugins would (see inproc.go). Whatever it made
// before failing is left for the caller's teardown, which finds it all
// from the pod's ID.
func (m *Manager) addInProcess(ctx context.Context, n *inprocNet, rec *record, rt *libcni.RuntimeConf, list *libcni.NetworkConfigList) (types.Result, error) {
	ipamConf, _, err := allocator.LoadIPAMConfig(n.ipamConf, cniArgs(rt.Args))
	if err != nil {
		return nil, fmt.Errorf("host-local configuration: %w", err)
	}
	ips, err := allocate(ipamConf, rt.ContainerID, rt.IfName)
	if err != nil {
		return nil, err
	}
	br, err := m.ensureBridge(n.bridge, ips)
	if err != nil {
		return nil, err
	}
	host, pod, err := addVeth(br, rt.NetNS, rt.IfName)
	if err != nil {
		return nil, err
	}
	// The bridge takes its lowest port's MAC until it has one of its own:
	// read it again, as the bridge plugin does, for the result CHECK compares.
	if br, err = netlink.LinkByName(n.bridge); err != nil {
		return nil, fmt.Errorf("find bridge %s: %w", n.bridge, err)
	}
	res := &types100.Result{CNIVersion: n.cniVersion}
	res.Interfaces = append(res.Interfaces, &types100.Interface{Name: br.Attrs().Name, Mac: br.Attrs().HardwareAddr.String()}, host, pod)
	podIface := 2
	for _, ip := range ips {
		res.IPs = append(res.IPs, &types100.IPConfig{Interface: &podIface, Address: ip.Address, Gateway: ip.Gateway})
	}
	for _, r := range ipamConf.Routes {
		res.Routes = append(res.Routes, &types.Route{Dst: r.Dst, GW: r.GW})
	}
	if err := configurePod(rt.NetNS, rt.IfName, res); err != nil {
		return nil, err
	}
	if err := setupMasquerade(rec.Network, rec.ID, ips); err != nil {
		return nil, err
	}
	var out types.Result = res
	if rec.portMappings() {
		if out, err = m.runPortmap(ctx, n, rec, rt, "ADD", res); err != nil {
			return nil, err
		}
	}
	if err := m.cacheResult(out, list, rt); err != nil {
		return nil, err
	}
	return out, nil
}

// delInProcess detaches the pod of rec, whether plugins or berthd attached
// it; netns is empty when the namespace is gone. It is idempotent.
func (m *Manager) delInProcess(ctx context.Context, n *inprocNet, rec *record, netns string) error {
	rt := rec.runtimeConf(netns)
	ipamConf, _, err := allocator.LoadIPAMConfig(n.ipamConf, cniArgs(rt.Args))
	if err != nil {
		return fmt.Errorf("host-local configuration: %w", err)
	}
	store, err := disk.New(ipamConf.Name, ipamConf.DataDir)
	if err != nil {
		return fmt.Errorf("open host-local store: %w", err)
	}
	defer store.Close()
	store.Lock()
	leased := store.GetByID(rt.ContainerID, rt.IfName)
	store.Unlock()

	if netns != "" {
		if err := WithNetNS(netns, func(h *netlink.Handle) error {
			link, err := h.LinkByName(rt.IfName)
			if err != nil {
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) {
					return nil
				}
				return fmt.Errorf("find %s: %w", rt.IfName, err)
			}
			if err := h.LinkDel(link); err != nil {
				return fmt.Errorf("delete %s: %w", rt.IfName, err)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if rec.portMappings() {
		prev, _ := m.cni.GetNetworkListCachedResult(&libcni.NetworkConfigList{Name: rec.Network, CNIVersion: rec.CNIVersion}, rt)
		if _, err := m.runPortmap(ctx, n, rec, rt, "DEL", prev); err != nil {
			return err
		}
	}
	ips := append([]string(nil), rec.IPs...)
	for _, ip := range leased {
		ips = append(ips, ip.String())
	}
	if err := releaseMasquerade(rec.Network, rec.ID, ips); err != nil {
		return err
	}
	store.Lock()
	err = store.ReleaseByID(rt.ContainerID, rt.IfName)
	store.Unlock()
	if err != nil {
		return fmt.Errorf("release host-local addresses: %w", err)
	}
	m.forgetCache(rec)
	return nil
}

// allocate takes an address from each range set of conf, as host-local's
// ADD does; on failure none stays taken.
func allocate(conf *allocator.IPAMConfig, id, ifName string) (_ []*types100.IPConfig, retErr error) {
	store, err := disk.New(conf.Name, conf.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open host-local store: %w", err)
	}
	defer store.Close()
	var allocs []*allocator.IPAllocator
	defer func() {
		if retErr != nil {
			for _, a := range allocs {
				_ = a.Release(id, ifName)
			}
		}
	}()
	var ips []*types100.IPConfig
	for idx, set := range conf.Ranges {
		a := allocator.NewIPAllocator(&set, store, idx)
		ip, err := a.Get(id, ifName, nil)
		if err != nil {
			// host-local's own words, which callers and tests know
			return nil, fmt.Errorf("failed to allocate for range %d: %w", idx, err)
		}
		allocs = append(allocs, a)
		ips = append(ips, ip)
	}
	return ips, nil
}

// ensureBridge makes the bridge, up, with each range's gateway, and turns
// on IPv4 forwarding, as the bridge plugin with isGateway does.
func (m *Manager) ensureBridge(name string, ips []*types100.IPConfig) (netlink.Link, error) {
	m.bridgeMu.Lock()
	defer m.bridgeMu.Unlock()
	br, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("find bridge %s: %w", name, err)
		}
		err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: -1}})
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if br, err = netlink.LinkByName(name); err != nil {
			return nil, fmt.Errorf("find bridge %s: %w", name, err)
		}
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("%s is a %s, not a bridge", name, br.Type())
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("set bridge %s up: %w", name, err)
		}
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	for _, ip := range ips {
		gw := &net.IPNet{IP: ip.Gateway, Mask: ip.Address.Mask}
		present := false
		for _, a := range addrs {
			if a.IPNet.String() == gw.String() {
				present = true
			} else if a.IPNet.Contains(gw.IP) || gw.Contains(a.IP) {
				return nil, fmt.Errorf("%q already has an IP address different from %v", name, gw)
			}
		}
		if present {
			continue
		}
		if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("add gateway %s to %s: %w", gw, name, err)
		}
	}
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(data)) != "1" {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return nil, fmt.Errorf("enable IPv4 forwarding: %w", err)
		}
	}
	return br, nil
}

// addVeth makes a veth pair in one request: a random host end on br, up
// and in hairpin mode, and its peer ifName created in the pod's namespace.
func addVeth(br netlink.Link, podNS, ifName string) (host, pod *types100.Interface, retErr error) {
	nsh, err := netns.GetFromPath(podNS)
	if err != nil {
		return nil, nil, fmt.Errorf("open network namespace %s: %w", podNS, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink in %s: %w", podNS, err)
	}
	defer h.Close()
	if _, err := h.LinkByName(ifName); err == nil {
		return nil, nil, fmt.Errorf("container veth name provided (%s) already exists", ifName)
	}
	var link netlink.Link
	for range 10 {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		veth := &netlink.Veth{
			// txqueuelen 0 on both ends, as pkg/ip's SetupVeth leaves it
			LinkAttrs:     netlink.LinkAttrs{Name: "veth" + hex.EncodeToString(b), Flags: net.FlagUp},
			PeerName:      ifName,
			PeerNamespace: netlink.NsFd(int(nsh)),
		}
		err = netlink.LinkAdd(veth)
		if err == nil {
			if link, err = netlink.LinkByName(veth.Name); err != nil {
				return nil, nil, fmt.Errorf("find %s: %w", veth.Name, err)
			}
			break
		}
		if !errors.Is(err, syscall.EEXIST) {
			return nil, nil, fmt.Errorf("create veth pair: %w", err)
		}
	}
	if link == nil {
		return nil, nil, fmt.Errorf("create veth pair: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = netlink.LinkDel(link) // its peer goes with it
		}
	}()
	if err := netlink.LinkSetMaster(link, br); err != nil {
		return nil, nil, fmt.Errorf("connect %s to bridge %s: %w", link.Attrs().Name, br.Attrs().Name, err)
	}
	if err := netlink.LinkSetHairpin(link, true); err != nil {
		return nil, nil, fmt.Errorf("set hairpin mode on %s: %w", link.Attrs().Name, err)
	}
	peer, err := h.LinkByName(ifName)
	if err != nil {
		return nil, nil, fmt.Errorf("find %s in %s: %w", ifName, podNS, err)
	}
	return &types100.Interface{Name: link.Attrs().Name, Mac: link.Attrs().HardwareAddr.String()},
		&types100.Interface{Name: ifName, Mac: peer.Attrs().HardwareAddr.String(), Sandbox: podNS}, nil
}

// configurePod gives the pod's interface res's addresses and routes, as
// the plugins' ipam.ConfigureIface does, after turning on arp_notify (the
// bridge plugin's gratuitous ARP when the interface comes up).
func configurePod(podNS, ifName string, res *types100.Result) error {
	podNSH, err := ns.GetNS(podNS)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", podNS, err)
	}
	defer podNSH.Close()
	if err := podNSH.Do(func(ns.NetNS) error {
		return os.WriteFile(filepath.Join("/proc/sys/net/ipv4/conf", ifName, "arp_notify"), []byte("1"), 0o644)
	}); err != nil {
		return fmt.Errorf("set arp_notify on %s: %w", ifName, err)
	}
	return WithNetNS(podNS, func(h *netlink.Handle) error {
		link, err := h.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifName, err)
		}
		for _, ip := range res.IPs {
			addr := ip.Address
			if err := h.AddrAdd(link, &netlink.Addr{IPNet: &addr}); err != nil {
				return fmt.Errorf("add address %s to %s: %w", addr.String(), ifName, err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %s up: %w", ifName, err)
		}
		for _, r := range res.Routes {
			gw := r.GW
			if gw == nil {
				for _, ip := range res.IPs {
					if (ip.Address.IP.To4() != nil) == (r.Dst.IP.To4() != nil) {
						gw = ip.Gateway
						break
					}
				}
			}
			dst := r.Dst
			if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: &dst, Gw: gw}); err != nil && !errors.Is(err, syscall.EEXIST) {
				return fmt.Errorf("add route %s via %s: %w", dst.String(), gw, err)
			}
		}
		return nil
	})
}

// setupMasquerade adds the bridge plugin's outbound masquerading for ips
// (pkg/ip SetupIPMasq: a chain of the pod accepting the pod's own network
// and masquerading the rest but multicast, and a POSTROUTING jump per
// address), in one iptables-restore transaction.
func setupMasquerade(network, id string, ips []*types100.IPConfig) error {
	chain, comment := masqChain(network, id)
	var b strings.Builder
	b.WriteString("*nat\n:" + chain + " - [0:0]\n")
	q := quoteRestore(comment)
	for _, ip := range ips {
		b.WriteString(fmt.Sprintf("-A %s -d %s -j ACCEPT -m comment --comment %s\n", chain, ip.Address.String(), q))
	}
	b.WriteString(fmt.Sprintf("-A %s ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment %s\n", chain, q))
	for _, ip := range ips {
		b.WriteString(fmt.Sprintf("-A POSTROUTING -s %s -j %s -m comment --comment %s\n", ip.Address.IP, chain, q))
	}
	b.WriteString("COMMIT\n")
	cmd := exec.Command("iptables-restore", "-w", "--noflush")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("add masquerade rules: iptables-restore: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// masqChain is the bridge plugin's chain and comment for a pod (pkg/utils
// FormatChainName, FormatComment).
func masqChain(network, id string) (chain, comment string) {
	sum := sha512.Sum512([]byte(network + id))
	return "CNI-" + hex.EncodeToString(sum[:])[:24], fmt.Sprintf("name: %q id: %q", network, id)
}

// quoteRestore quotes s as one iptables-restore argument.
func quoteRestore(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// runPortmap runs the network's portmap plugin alone, chained on prev as
// libcni would chain it after bridge.
func (m *Manager) runPortmap(ctx context.Context, n *inprocNet, rec *record, rt *libcni.RuntimeConf, command string, prev types.Result) (types.Result, error) {
	var conf map[string]any
	if err := json.Unmarshal(n.portmap, &conf); err != nil {
		return nil, fmt.Errorf("portmap configuration: %w", err)
	}
	conf["name"], conf["cniVersion"] = rec.Network, n.cniVersion
	conf["runtimeConfig"] = map[string]any{capPortMappings: rt.CapabilityArgs[capPortMappings]}
	if prev != nil {
		conf["prevResult"] = prev
	}
	stdin, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	path, err := m.exec.FindInPath("portmap", m.cfg.BinDirs)
	if err != nil {
		return nil, fmt.Errorf("find portmap: %w", err)
	}
	args := &invoke.Args{Command: command, ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: rt.IfName,
		PluginArgs: rt.Args, Path: strings.Join(m.cfg.BinDirs, string(os.PathListSeparator))}
	if command == "DEL" {
		if err := invoke.ExecPluginWithoutResult(ctx, path, stdin, args, m.exec); err != nil {
			return nil, fmt.Errorf("plugin type=\"portmap\" name=%q failed (delete): %w", rec.Network, err)
		}
		return nil, nil
	}
	res, err := invoke.ExecPluginWithResult(ctx, path, stdin, args, m.exec)
	if err != nil {
		return nil, fmt.Errorf("plugin type=\"portmap\" name=%q failed (add): %w", rec.Network, err)
	}
	return res, nil
}

// cacheResult writes res where libcni caches a network's ADD result.
func (m *Manager) cacheResult(res types.Result, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	// libcni's cachedInfo, field for field
	cached, err := json.Marshal(struct {
		Kind           string         `json:"kind"`
		ContainerID    string         `json:"containerId"`
		Config         []byte         `json:"config"`
		IfName         string         `json:"ifName"`
		NetworkName    string         `json:"networkName"`
		NetNS          string         `json:"netns,omitempty"`
		CniArgs        [][2]string    `json:"cniArgs,omitempty"`
		CapabilityArgs map[string]any `json:"capabilityArgs,omitempty"`
		RawResult      map[string]any `json:"result,omitempty"`
	}{libcni.CNICacheV1, rt.ContainerID, list.Bytes, rt.IfName, list.Name, rt.NetNS, rt.Args, rt.CapabilityArgs, raw})
	if err != nil {
		return err
	}
	path := filepath.Join(m.stateDir, "cache", "results", fmt.Sprintf("%s-%s-%s", list.Name, rt.ContainerID, rt.IfName))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(path, cached, 0o600); err != nil {
		return fmt.Errorf("cache network result: %w", err)
	}
	return nil
}

// cniArgs is CNI_ARGS as libcni passes it.
func cniArgs(args [][2]string) string {
	parts := make([]string, len(args))
	for i, kv := range args {
		parts[i] = kv[0] + "=" + kv[1]
	}
	return strings.Join(parts, ";")
}
