package cni

import (
	"errors"
	"fmt"
	"net"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// isNetNS reports whether path is a network namespace (a pinned nsfs file
// or /proc/<pid>/ns/net), as opposed to a missing or unmounted pin.
func isNetNS(path string) bool {
	if path == "" {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// WithNetNS runs fn with a netlink handle inside the namespace at path;
// no OS thread changes namespace.
func WithNetNS(path string, fn func(h *netlink.Handle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	return fn(h)
}

// loopbackUp brings up lo in the namespace at path.
func loopbackUp(path string) error {
	return WithNetNS(path, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		return nil
	})
}

// loopbackIsUp checks lo in the namespace at path.
func loopbackIsUp(path string) error {
	return WithNetNS(path, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return errors.New("loopback interface is down")
		}
		return nil
	})
}

// hostIPs returns the host's addresses a host-network pod reports: the
// global addresses of the interfaces holding the default routes, IPv4
// first; without default routes, every global address.
func hostIPs() ([]net.IP, error) {
	var ips []net.IP
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(nil, family)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		seen := map[int]bool{}
		for _, r := range routes {
			if r.LinkIndex <= 0 || seen[r.LinkIndex] || !(r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) {
				continue
			}
			seen[r.LinkIndex] = true
			link, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			ips = append(ips, globalAddrs(link, family)...)
		}
	}
	if len(ips) == 0 {
		for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			ips = append(ips, globalAddrs(nil, family)...)
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("the host has no global address")
	}
	return ips, nil
}

func globalAddrs(link netlink.Link, family int) []net.IP {
	addrs, err := netlink.AddrList(link, family)
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_UNIVERSE && a.IP.IsGlobalUnicast() {
			ips = append(ips, a.IP)
		}
	}
	return ips
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// deleteIdleBridge removes the host's bridge name, if it exists and no
// link (a pod's veth) is attached to it.
func deleteIdleBridge(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find link %s: %w", name, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == link.Attrs().Index {
			return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("bridge %s still has %s attached", name, l.Attrs().Name))
		}
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}
