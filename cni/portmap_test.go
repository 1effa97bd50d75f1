package cni

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/test/hostnet"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostAddress is an address of this host outside loopback and the test
// bridges, as a port mapping's client elsewhere would use.
func hostAddress(t *testing.T) net.IP {
	t.Helper()
	ips, err := hostIPs()
	if err != nil || len(ips) == 0 || ips[0].To4() == nil {
		t.Fatalf("no IPv4 host address: %v %v", ips, err)
	}
	return ips[0]
}

func TestPortMappingsReachThePodFromTheHost(t *testing.T) {
	_, m := standardNet(t)
	pod := newPod(t, "web")
	hostIP := hostAddress(t)
	pod.Config.PortMappings = []*runtimeapi.PortMapping{
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 18080},
		{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 5353, HostPort: 15353},
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 9090, HostPort: 19090, HostIp: hostIP.String()},
		{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 7777, HostPort: 17777},
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 6060}, // documentation only: no host port
	}
	res := mustSetup(t, m, pod)
	podIP := res.IPs[0].String()
	mustEchoServer(t, pod.NetNS, net.JoinHostPort(podIP, "8080"))
	mustEchoServer(t, pod.NetNS, net.JoinHostPort(podIP, "9090"))
	mustUDPEchoServer(t, pod.NetNS, net.JoinHostPort(podIP, "5353"))

	for _, tc := range []struct {
		name, addr string
	}{
		{"a TCP mapping answers on the host's loopback", "127.0.0.1:18080"},
		{"a TCP mapping answers on the host's address", net.JoinHostPort(hostIP.String(), "18080")},
		{"a TCP mapping bound to a host IP answers there", net.JoinHostPort(hostIP.String(), "19090")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := echo(t, "", tc.addr, "ping"); err != nil || got != "ping" {
				t.Errorf("echo via %s = %q, %v", tc.addr, got, err)
			}
		})
	}
	t.Run("a TCP mapping bound to a host IP does not answer on other addresses", func(t *testing.T) {
		if got, err := echo(t, "", "127.0.0.1:19090", "ping"); err == nil {
			t.Errorf("echo via 127.0.0.1:19090 answered %q", got)
		}
	})
	t.Run("a UDP mapping answers on the host's address", func(t *testing.T) {
		addr := net.JoinHostPort(hostIP.String(), "15353")
		if got, err := udpEcho(addr, "dns?"); err != nil || got != "dns?" {
			t.Errorf("udp echo via %s = %q, %v", addr, got, err)
		}
	})
	t.Run("an SCTP mapping gets its own DNAT rule", func(t *testing.T) {
		rules := strings.Join(hostnet.FirewallRules(t, "17777"), "\n")
		if !strings.Contains(rules, "-p sctp") || !strings.Contains(rules, podIP+":7777") {
			t.Errorf("no sctp DNAT to %s:7777 among:\n%s", podIP, rules)
		}
	})
	t.Run("a mapping without host port maps nothing", func(t *testing.T) {
		if rules := hostnet.FirewallRules(t, podIP+":6060"); len(rules) != 0 {
			t.Errorf("rules for container port 6060:\n%s", strings.Join(rules, "\n"))
		}
	})
}

// mustUDPEchoServer echoes datagrams on addr inside the namespace.
func mustUDPEchoServer(t *testing.T, path, addr string) {
	t.Helper()
	var (
		c   net.PacketConn
		err error
	)
	inNetNS(t, path, func() { c, err = net.ListenPacket("udp", addr) })
	if err != nil {
		t.Fatalf("listen udp %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(buf[:n], from)
		}
	}()
}

// udpEcho sends msg to addr, retrying a few times (UDP may drop the first
// datagram while conntrack and ARP settle), and returns the answer.
func udpEcho(addr, msg string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 512)
	for i := 0; ; i++ {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		if i == 4 {
			return "", err
		}
	}
}
