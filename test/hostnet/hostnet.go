// Package hostnet is what tests of pod networking need from the host: it
// reads what networking leaves there (the veths on a bridge, host-local's
// address reservations, firewall rules), so the CNI layer's tests and the
// daemon's check for leftovers the same way, and it runs and dials TCP echo
// servers to prove that traffic flows.
package hostnet

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// BridgePorts lists the links enslaved to bridge (the host ends of pods'
// veths); none when the bridge does not exist.
func BridgePorts(t testing.TB, bridge string) []string {
	t.Helper()
	ports, err := Ports(bridge)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// Ports is BridgePorts for callers without a test.
func Ports(bridge string) ([]string, error) {
	out, err := exec.Command("ip", "-o", "link", "show", "master", bridge).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "does not exist") {
			return nil, nil
		}
		return nil, fmt.Errorf("ip link show master %s: %v: %s", bridge, err, out)
	}
	var ports []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			ports = append(ports, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return ports, nil
}

// Reservations lists the addresses host-local holds in dir, its store for
// one network (<dataDir>/<network name>); none when dir does not exist.
func Reservations(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// FirewallRules lists the iptables and ip6tables rules (nftables-backed on
// Debian) and the lines of the native nftables ruleset that mention s.
func FirewallRules(t testing.TB, s string) []string {
	t.Helper()
	var found []string
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, s) {
				found = append(found, l)
			}
		}
	}
	out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, s) {
			found = append(found, "nft: "+strings.TrimSpace(l))
		}
	}
	return found
}

// EchoServer answers every connection l accepts with the first chunk it
// reads, until l is closed.
func EchoServer(l net.Listener) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				n, _ := c.Read(buf)
				c.Write(buf[:n])
			}()
		}
	}()
}

// Exchange sends msg over c, closes c's sending side and returns the
// answer; it closes c.
func Exchange(c net.Conn, msg string) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Echo sends msg to the TCP server at addr from this network namespace
// and returns the answer.
func Echo(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	return Exchange(c, msg)
}

// PodChains names the firewall chains of one pod: the CNI-… chains that
// the rules naming the pod's ID jump to or append to (the bridge plugin's
// masquerade chain, portmap's CNI-DN-… DNAT chain), but not the shared
// CNI-HOSTPORT-… ones. The DNAT rules in a pod's chain do not name the
// pod, so a leak check that looks for the ID alone misses them: take the
// chains while the pod is up and look for them after teardown.
func PodChains(t testing.TB, id string) []string {
	t.Helper()
	seen := map[string]bool{}
	var chains []string
	for _, rule := range FirewallRules(t, id) {
		f := strings.Fields(rule)
		for i := 0; i+1 < len(f); i++ {
			c := f[i+1]
			if (f[i] == "-A" || f[i] == "-j") && strings.HasPrefix(c, "CNI-") && !strings.HasPrefix(c, "CNI-HOSTPORT-") && !seen[c] {
				seen[c] = true
				chains = append(chains, c)
			}
		}
	}
	return chains
}

// FirewallLeft lists the rules that name the pod's ID or one of its
// chains (from PodChains).
func FirewallLeft(t testing.TB, id string, chains []string) []string {
	t.Helper()
	left := FirewallRules(t, id)
	for _, c := range chains {
		left = append(left, FirewallRules(t, c)...)
	}
	return left
}
