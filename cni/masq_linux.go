package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// masquerades reports whether a plugin of the record sets up outbound
// masquerading (bridge and ptp with "ipMasq": true).
func (r *record) masquerades() bool {
	for _, raw := range r.Plugins {
		var p struct {
			IPMasq bool `json:"ipMasq"`
		}
		if json.Unmarshal(raw, &p) == nil && p.IPMasq {
			return true
		}
	}
	return false
}

// releaseMasquerade removes the nat rules bridge and ptp add for a pod's
// addresses: a POSTROUTING jump per address into a chain of the pod.
// Those plugins find the addresses to release on the pod's interface, so
// when DEL runs after the namespace is gone, Debian's plugins (1.1.1)
// leave the rules behind; Berth knows the addresses from the record. The
// names follow the plugins' (pkg/utils FormatChainName, FormatComment).
func releaseMasquerade(network, id string, ips []string) error {
	chain, comment := masqChain(network, id)
	ips = dedupe(ips)
	var errs []error
	for _, tool := range []struct {
		cmd string
		v4  bool
	}{{"iptables", true}, {"ip6tables", false}} {
		if !hasFamily(ips, tool.v4) {
			continue // the plugins add rules per address family
		}
		if _, err := exec.LookPath(tool.cmd); err != nil {
			continue // without the tool no plugin could have added rules
		}
		if iptables(tool.cmd, "-t", "nat", "-S", chain) != nil {
			continue // no chain: nothing left
		}
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil || (ip.To4() != nil) != tool.v4 {
				continue
			}
			// Absent when DEL got far enough; either way no error.
			_ = iptables(tool.cmd, "-t", "nat", "-D", "POSTROUTING", "-s", ip.String(), "-j", chain, "-m", "comment", "--comment", comment)
		}
		if err := iptables(tool.cmd, "-t", "nat", "-F", chain); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := iptables(tool.cmd, "-t", "nat", "-X", chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func iptables(cmd string, args ...string) error {
	out, err := exec.Command(cmd, append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", cmd, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func hasFamily(ips []string, v4 bool) bool {
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil && (ip.To4() != nil) == v4 {
			return true
		}
	}
	return false
}

// dedupe drops repeated addresses, keeping the order.
func dedupe(ips []string) []string {
	seen := map[string]bool{}
	out := ips[:0:0]
	for _, ip := range ips {
		if !seen[ip] {
			seen[ip] = true
			out = append(out, ip)
		}
	}
	return out
}
