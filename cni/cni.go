// Package cni attaches pods to networks through CNI plugins, the way kubelet
// expects of a CRI runtime and containerd and CRI-O do it.
//
// # Network configuration
//
// The network is the first file, in lexical order, with the extension
// .conflist, .conf or .json in Config.ConfDir (default /etc/cni/net.d). A
// fsnotify watch on that directory reloads it whenever it changes, so
// Ready (and with it the CRI NetworkReady condition) turns true as soon as a
// usable configuration appears, without a restart. A configuration is usable
// when it parses and every plugin it names is an executable in one of
// Config.BinDirs (default /opt/cni/bin, /usr/lib/cni; Debian's
// containernetworking-plugins installs to /usr/lib/cni).
//
// # The default network
//
// With Config.DefaultNetwork set ([cni] default_network = true in berthd's
// file; `make run` sets it), New writes DefaultConfFile (10-berth.conflist)
// into a conf dir that holds no configuration: network "berth" of Debian's
// plugins bridge (bridge berth0, Config.DefaultBridge, as the
// pods' gateway, masquerading their traffic to the outside) with
// host-local IPAM on 10.86.0.0/16 (Config.DefaultSubnet; gateway
// 10.86.0.1), and portmap for host port mappings (iptables, nftables-backed
// on Debian). 10.86.0.0/16 is private (RFC 1918) and clear of containerd's
// and Podman's 10.88.0.0/16, Podman's 10.89.x.0/24, CRI-O's 10.85.0.0/16
// and the pod and service ranges Kubernetes distributions default to
// (10.42/16, 10.43/16, 10.244/16, 10.96/12, 10.233/16). host-local keeps
// its reservations under <state>/cni/networks, so they go with the pods on
// reboot. UpdatePodCIDR (kubelet's UpdateRuntimeConfig) rewrites that file
// with kubelet's pod CIDRs (see there); a conf dir holding anything else is
// never touched. The bandwidth plugin is left out: Debian's (1.1.1) panics
// on CHECK for pods without bandwidth annotations; operators who want
// shaping list it in their own conflist.
//
// # Pods
//
// Setup brings the pod's loopback interface up (in-process, whatever the
// configuration says) and runs the network's plugins with ADD for interface
// eth0 in the pod's pinned namespace. Plugins get, as containerd passes them,
// the CNI_ARGS IgnoreUnknown, K8S_POD_NAMESPACE, K8S_POD_NAME,
// K8S_POD_INFRA_CONTAINER_ID and K8S_POD_UID, and the capability arguments
// portMappings, bandwidth, ipRanges (kubelet's pod CIDR), dns, cgroupPath and
// io.kubernetes.cri.pod-annotations, each only to plugins that declare it.
// Host-network pods run no plugin: Setup reports the host's addresses.
// Berth's own default network runs in berthd instead of through its
// plugins, with the same effect on the host (see inproc.go).
//
// Before the first plugin runs, Setup writes the pod's record (the exact
// network configuration and arguments used) to <state>/cni/pods/<id>.json;
// libcni caches the plugins' results in <state>/cni/cache. Teardown runs DEL
// from that record, so it works after a berthd restart, after the conf dir
// changed, and when the namespace is already gone (plugins then get an
// empty CNI_NETNS and release what lives outside the pod: addresses, port
// mappings; Berth removes the masquerading rules itself, which Debian's
// bridge plugin finds only through the pod's interface). A failed or timed
// out ADD is undone with DEL before Setup returns. A failed DEL keeps the
// record and is retried by the next Teardown; after maxTeardownAttempts (3)
// failures Teardown logs the error, forgets the pod and returns nil, so a
// broken plugin cannot block pod removal forever; a damaged record is torn
// down once with the network in use now, then dropped. Attached lists the
// pods with a record, for the sandbox to reconcile after a restart. Check
// runs CHECK. Every ADD, CHECK and DEL of a network is bounded by
// Config.PluginTimeout; a plugin overrunning it is killed with its process
// group.
//
// On-disk layout under Options.StateDir:
//
//	pods/<pod id>.json     record of an attached pod (see record)
//	pod-cidr               kubelet's pod CIDR, as UpdatePodCIDR last got it
//	cache/results/...      libcni's cached ADD results, prevResult for DEL and CHECK
//	networks/<network>/    host-local reservations of the default network
package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is the [cni] part of berthd's configuration.
type Config struct {
	ConfDir string   `toml:"conf_dir" comment:"directory of CNI network configurations; the first .conflist/.conf/.json in lexical order is used"`
	BinDirs []string `toml:"bin_dirs" comment:"directories searched for CNI plugin binaries"`
	// DefaultNetwork writes DefaultConfFile into an empty ConfDir.
	DefaultNetwork bool   `toml:"default_network" comment:"when conf_dir holds no network configuration, write Berth's default network there (10-berth.conflist: bridge default_bridge with host-local IPAM on default_subnet, portmap; needs Debian's containernetworking-plugins); kubelet's pod CIDR (UpdateRuntimeConfig) replaces the range"`
	DefaultSubnet  string `toml:"default_subnet" comment:"IPv4 range of the default network, until kubelet sends a pod CIDR; the gateway (bridge address) is its first address"`
	DefaultBridge  string `toml:"default_bridge" comment:"Linux bridge of the default network"`
	// DefaultInProcess runs Berth's own default network in berthd instead
	// of through its plugins (see inproc_linux.go).
	DefaultInProcess bool `toml:"default_network_in_process" comment:"set up Berth's default network (10-berth.conflist as Berth wrote it) in berthd through netlink, with the same leases, rules and cached result as its plugins (bridge, host-local; portmap still runs for pods with port mappings); false runs the plugins. Any other configuration always runs its plugins"`
	// PluginTimeout bounds each ADD, CHECK or DEL of a whole network, in seconds.
	PluginTimeout int `toml:"plugin_timeout_seconds" comment:"seconds a network's plugins may take for one ADD, CHECK or DEL before they are killed and the call fails"`
}

// DefaultConfig is the configuration of a berthd started with no file.
func DefaultConfig() Config {
	return Config{
		ConfDir:       "/etc/cni/net.d",
		BinDirs:       []string{"/opt/cni/bin", "/usr/lib/cni"},
		DefaultSubnet: "10.86.0.0/16",
		DefaultBridge: "berth0",
		PluginTimeout: 60,

		DefaultInProcess: true,
	}
}

// Options create a Manager.
type Options struct {
	Config   Config
	StateDir string // <berthd state>/cni: per-pod records for teardown
	Log      *zap.Logger
}

// Result is what a pod got from its network.
type Result struct {
	IPs []net.IP // the first is the pod's primary IP: IPv4 before IPv6
}

// Pod is what the network needs to know of a pod.
type Pod struct {
	ID        string
	NetNS     string // path of the pinned network namespace
	Config    *runtimeapi.PodSandboxConfig
	CgroupDir string
}

// ifName is the pod's interface, as kubelet and the peers name it.
const ifName = "eth0"

// maxTeardownAttempts bounds how many failed DELs a pod's record survives.
const maxTeardownAttempts = 3

// Manager runs CNI plugins for pods.
type Manager struct {
	cfg      Config
	stateDir string
	log      *zap.Logger
	cni      *libcni.CNIConfig
	exec     invoke.Exec // the plugins' exec, also for portmap run alone
	timeout  time.Duration
	watcher  *watcher

	// locks serializes Setup, Check and Teardown per pod.
	locks keyedMutex
	// bridgeMu serializes in-process bridge setup.
	bridgeMu sync.Mutex
	// rangeMu is held shared by Setup and exclusively by UpdatePodCIDR.
	rangeMu sync.RWMutex

	mu       sync.Mutex
	net      *network // the loaded configuration; never nil after New
	podCIDRs []*net.IPNet
}

// New creates a Manager and starts watching the conf dir. It writes the
// default network first when Config.DefaultNetwork asks for it.
func New(opts Options) (_ *Manager, retErr error) {
	cfg := opts.Config
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.ConfDir == "" || !filepath.IsAbs(cfg.ConfDir) {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cni conf_dir %q is not an absolute path", cfg.ConfDir))
	}
	if opts.StateDir == "" || !filepath.IsAbs(opts.StateDir) {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cni state dir %q is not an absolute path", opts.StateDir))
	}
	if cfg.PluginTimeout <= 0 {
		cfg.PluginTimeout = DefaultConfig().PluginTimeout
	}
	if cfg.DefaultSubnet == "" {
		cfg.DefaultSubnet = DefaultConfig().DefaultSubnet
	}
	if cfg.DefaultBridge == "" {
		cfg.DefaultBridge = DefaultConfig().DefaultBridge
	}
	subnet, err := parseCIDRs(cfg.DefaultSubnet)
	if err != nil {
		return nil, fmt.Errorf("cni default_subnet: %w", err)
	}
	if err := validBridgeName(cfg.DefaultBridge); err != nil {
		return nil, fmt.Errorf("cni default_bridge: %w", err)
	}
	for _, dir := range []string{filepath.Join(opts.StateDir, "pods"), filepath.Join(opts.StateDir, "cache"), cfg.ConfDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	m := &Manager{
		cfg:      cfg,
		stateDir: opts.StateDir,
		log:      log,
		timeout:  time.Duration(cfg.PluginTimeout) * time.Second,
		exec:     newExec(log),
	}
	m.cni = libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, filepath.Join(opts.StateDir, "cache"), m.exec)
	if err := m.loadPodCIDR(); err != nil {
		return nil, err
	}
	if len(m.podCIDRs) > 0 {
		subnet = m.podCIDRs
	}
	if cfg.DefaultNetwork {
		if err := m.writeDefaultNetwork(subnet, false); err != nil {
			return nil, err
		}
	}
	if m.watcher, err = watch(cfg.ConfDir, m.reload, log); err != nil {
		// Out of inotify watches, say: Ready reloads on every call instead.
		log.Warn("cni conf dir not watched; reloading on every status check", zap.Error(err))
	}
	m.reload()
	return m, nil
}

// Close stops watching.
func (m *Manager) Close() error {
	if m.watcher != nil {
		return m.watcher.close()
	}
	return nil
}

// Ready reports nil when a usable network configuration and its plugins
// exist, and otherwise says what is missing.
func (m *Manager) Ready() error {
	_, err := m.current()
	return err
}

// current returns the loaded network when it is usable. Plugins are looked
// up on every call, so installing a missing one needs no conf dir event.
func (m *Manager) current() (*network, error) {
	if m.watcher.lost() {
		m.reload()
	}
	m.mu.Lock()
	n := m.net
	m.mu.Unlock()
	if n == nil {
		return nil, errors.New("cni: no network loaded")
	}
	if n.err != nil {
		return nil, n.err
	}
	if err := n.findPlugins(m.cfg.BinDirs); err != nil {
		return nil, err
	}
	return n, nil
}

// reload reads the conf dir again; the watcher calls it on every change.
func (m *Manager) reload() {
	n := loadNetwork(m.cfg.ConfDir)
	m.mu.Lock()
	old := m.net
	m.net = n
	m.mu.Unlock()
	if old == nil || old.file != n.file || errString(old.err) != errString(n.err) || string(old.bytes) != string(n.bytes) {
		if n.err != nil {
			m.log.Warn("network configuration not usable", zap.String("conf_dir", m.cfg.ConfDir), zap.Error(n.err))
		} else {
			m.log.Info("network configuration loaded", zap.String("file", n.file), zap.String("network", n.list.Name))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// keyedMutex serializes work per key.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// withTimeout bounds one network operation by the plugin timeout.
func (m *Manager) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.timeout)
}
