package sandbox

// The files a pod's containers mount: /etc/hostname, /etc/hosts,
// /etc/resolv.conf (under <berthd root>/sandbox/pods/<id>) and /dev/shm (a tmpfs under
// <state>/pods/<id>).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Host files a pod copies when its config gives nothing better.
var (
	hostResolvConf = "/etc/resolv.conf"
	hostHosts      = "/etc/hosts"
)

// podHostname is the pod's hostname: the configured one, or the host's.
func podHostname(cfg *runtimeapi.PodSandboxConfig) (string, error) {
	if h := cfg.GetHostname(); h != "" {
		if len(h) > 64 || strings.ContainsAny(h, "/\x00\n ") {
			return "", fmt.Errorf("hostname %q is not a valid host name: %w", h, errdefs.ErrInvalidArgument)
		}
		return h, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	return h, nil
}

// writePodFiles writes hostname, hosts and resolv.conf into the pod's dir.
func writePodFiles(p *Pod, hostname string, ips []string) error {
	if err := os.WriteFile(p.hostnamePath(), []byte(hostname+"\n"), 0o644); err != nil {
		return fmt.Errorf("write hostname: %w", err)
	}
	hosts, err := hostsFile(p.hostNetwork(), hostname, ips)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.hostsPath(), hosts, 0o644); err != nil {
		return fmt.Errorf("write hosts: %w", err)
	}
	resolv, err := resolvConf(p.config.GetDnsConfig())
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.resolvConfPath(), resolv, 0o644); err != nil {
		return fmt.Errorf("write resolv.conf: %w", err)
	}
	return nil
}

// hostsFile is the pod's /etc/hosts: the host's for host-network pods,
// else localhost and the pod's own name on its addresses.
func hostsFile(hostNetwork bool, hostname string, ips []string) ([]byte, error) {
	if hostNetwork {
		data, err := os.ReadFile(hostHosts)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read host %s: %w", hostHosts, err)
		}
		return data, nil
	}
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return []byte(b.String()), nil
}

// resolvConf renders the pod's DNS config, or copies the host's
// resolv.conf when the config has none.
func resolvConf(dns *runtimeapi.DNSConfig) ([]byte, error) {
	if len(dns.GetServers()) == 0 && len(dns.GetSearches()) == 0 && len(dns.GetOptions()) == 0 {
		data, err := os.ReadFile(hostResolvConf)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read host %s: %w", hostResolvConf, err)
		}
		return data, nil
	}
	var b strings.Builder
	for _, f := range [][]string{dns.GetServers(), dns.GetSearches(), dns.GetOptions()} {
		for _, v := range f {
			if v == "" || strings.ContainsAny(v, "\n\x00") {
				return nil, fmt.Errorf("DNS config value %q: %w", v, errdefs.ErrInvalidArgument)
			}
		}
	}
	if s := dns.GetSearches(); len(s) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(s, " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if o := dns.GetOptions(); len(o) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(o, " "))
	}
	return []byte(b.String()), nil
}

// mountShm mounts the pod's /dev/shm tmpfs at path.
func mountShm(path string) error {
	if err := os.Mkdir(path, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create shm dir: %w", err)
	}
	opts := fmt.Sprintf("mode=1777,size=%d", shmSize)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		os.Remove(path)
		return fmt.Errorf("mount shm tmpfs at %s: %w", path, err)
	}
	return nil
}

// removePodDirs removes the pod's state and root dirs once nothing is
// mounted in them (unpin and unmount first).
func removePodDirs(p *Pod) error {
	for _, dir := range []string{filepath.Join(p.stateDir, "ns"), p.stateDir, p.dir} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove pod dir: %w", err)
		}
	}
	return nil
}
