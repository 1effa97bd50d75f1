package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/test/hostclean"
)

// The second node, as kind makes its node containers but with a network
// namespace and routes instead of a container: its own kubelet and berthd
// in the network namespace node2Netns, reached from the host over a veth
// pair (node2Link on the host, node2Iface inside) with point-to-point
// routes, and its pods' CIDR routed to it once the controller-manager has
// given the node one. Its berthd has its own socket, root, state, CNI
// directory and pod bridge (inside the namespace), and takes the node's pod
// CIDR from kubelet's UpdateRuntimeConfig. It shares the host's mount
// namespace with the first node, so kubelet's volume mounts are where its
// berthd looks for them; the only path the two kubelets share is
// /var/lib/kubelet/device-plugins, where each puts its device-manager
// socket whatever its root directory (no test uses device plugins). No
// kube-proxy runs there: pods on the second node reach others by pod IP,
// not through Services.
const (
	Node2IP    = "10.254.0.2"
	Node2Name  = "berth-e2e-node2"
	node2Netns = "berthe2e-n2"
	node2Link  = "berthe2e2h"
	node2Iface = "node0"
	node2Cgrp  = "/berth-e2e-2"
	node2Pods  = "berthe2e20"
)

// node is what differs between the cluster's nodes: each has its own
// kubelet and berthd.
type node struct {
	name, ip    string
	suffix      string // of its process, file and directory names: "" or "-2"
	netns       string // path of its network namespace; "" for the host's
	cgroupRoot  string // kubelet's cgroupRoot
	socket      string // berthd's CRI socket
	berthConfig string
	podBridge   string
	podSubnet   string // berthd's default subnet until kubelet sends the node's pod CIDR
}

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// StartNode2 starts the second node and waits until it is Ready and its
// pod CIDR is routed to it. StopNode2 undoes it; Teardown does too.
func (c *Cluster) StartNode2(ctx context.Context) (retErr error) {
	n := &node{name: Node2Name, ip: Node2IP, suffix: "-2", netns: netnsPath(node2Netns),
		cgroupRoot: node2Cgrp, socket: c.path("berth-2", "state", "berth.sock"),
		berthConfig: c.path("berth-2", "config.toml"), podBridge: node2Pods,
		// A placeholder until kubelet sends the node's pod CIDR.
		podSubnet: "10.245.0.0/24"}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, c.StopNode2())
		}
	}()
	if err := c.saveState(func(s *state) {
		s.Netns = append(s.Netns, node2Netns)
		s.Links = append(s.Links, node2Link)
		s.Sockets2 = append(s.Sockets2, n.socket)
	}); err != nil {
		return err
	}
	steps := [][]string{
		{"netns", "add", node2Netns},
		{"link", "add", node2Link, "type", "veth", "peer", "name", node2Iface, "netns", node2Netns},
		{"link", "set", node2Link, "up"},
		{"route", "add", Node2IP + "/32", "dev", node2Link},
		{"-n", node2Netns, "link", "set", "lo", "up"},
		{"-n", node2Netns, "link", "set", node2Iface, "up"},
		{"-n", node2Netns, "addr", "add", Node2IP + "/32", "dev", node2Iface},
		{"-n", node2Netns, "route", "add", NodeIP + "/32", "dev", node2Iface},
		{"-n", node2Netns, "route", "add", "default", "via", NodeIP, "dev", node2Iface},
	}
	for _, args := range steps {
		if err := ip(args...); err != nil {
			return err
		}
	}
	// A new network namespace does not forward; the node's pods need it.
	if err := ip("netns", "exec", node2Netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return err
	}
	if err := c.pki.issue("kubelet-2", Node2Name, nil, []net.IP{net.ParseIP(Node2IP)}, []string{Node2Name}, x509ServerAuth); err != nil {
		return err
	}
	for _, name := range []string{"kubelet-2", "kubelet-healthz-2"} {
		p, err := freePort()
		if err != nil {
			return err
		}
		c.ports[name] = p
	}
	if err := c.startBerthd(ctx, n); err != nil {
		return err
	}
	if err := c.startKubelet(n, KubeletSettings{}); err != nil {
		return err
	}
	if err := c.waitNodeReady(ctx, n); err != nil {
		return err
	}
	var cidr string
	if err := c.waitFor(ctx, "kubelet-2", "node "+Node2Name+"'s pod CIDR", func() error {
		data, err := c.apiGet("/api/v1/nodes/" + Node2Name)
		if err != nil {
			return err
		}
		var nd struct{ Spec struct{ PodCIDR string } }
		if err := json.Unmarshal(data, &nd); err != nil {
			return err
		}
		if cidr = nd.Spec.PodCIDR; cidr == "" {
			return errors.New("no pod CIDR yet")
		}
		return nil
	}); err != nil {
		return err
	}
	return ip("route", "add", cidr, "via", Node2IP, "dev", node2Link)
}

// StopNode2 stops the second node's kubelet, removes its pods through its
// berthd, stops berthd, deletes the Node object and removes the node's
// cgroups, mounts, namespace, link (and with it the route to its pods) and
// directories. It is safe on a node that is half started or already gone;
// what it could not remove stays in the state file for Teardown.
func (c *Cluster) StopNode2() error {
	var errs []error
	for _, name := range []string{"kubelet-2", "berthd-2"} {
		if name == "berthd-2" {
			if err := removeAllPods(c.path("berth-2", "state", "berth.sock")); err != nil {
				errs = append(errs, err)
			}
		}
		c.mu.Lock()
		p := c.procs[name]
		c.mu.Unlock()
		if p == nil {
			continue
		}
		if err := c.signal(name, syscall.SIGTERM, 30*time.Second); err != nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if err := c.apiDelete("/api/v1/nodes/" + Node2Name); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, removeNode2Host(c.Dir)...)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := c.saveState(func(s *state) {
		s.Netns = nil
		s.Sockets2 = nil
		s.Links = without(s.Links, node2Link)
		s.CgroupRoots = without(s.CgroupRoots, node2Cgrp)
		delete(s.Pids, "kubelet-2")
		delete(s.Pids, "berthd-2")
	}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeNode2Host removes what the second node leaves on the host once its
// processes are gone: its cgroups, the mounts under its berthd's and
// kubelet's directories, its link and its network namespace.
func removeNode2Host(dir string) []error {
	var errs []error
	if err := hostclean.RemoveCgroupTree(node2Cgrp); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []string{"berth-2", "kubelet-2"} {
		if err := hostclean.Unmount(filepath.Join(dir, d)); err != nil {
			errs = append(errs, err)
		}
	}
	if linkExists(node2Link) {
		if err := ip("link", "del", node2Link); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(netnsPath(node2Netns)); err == nil {
		if err := ip("netns", "del", node2Netns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range []string{"berth-2", "kubelet-2", "cni-2", "pod-logs-2", "kubelet-pki-2"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func linkExists(name string) bool { return exec.Command("ip", "link", "show", name).Run() == nil }

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}
