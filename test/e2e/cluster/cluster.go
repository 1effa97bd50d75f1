// Package cluster runs a single-node Kubernetes cluster whose node runs
// every pod on Berth: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet, kube-proxy and berthd, as real processes on this
// machine, built from the Go module proxy by hack/k8s/build.sh.
//
// Everything lives under one private directory (Config.Dir): certificates,
// etcd's data, kubelet's root and pod logs, berthd's root, state and socket,
// the CNI configuration and the registry mirror configuration, and every
// process's log. What cannot live there is named in the directory's
// state.json as it is made (the node's interface, the pod bridge, the
// kubelet cgroup root, kube-proxy's rules), so Teardown can remove it all
// from the directory alone, even after the process that started the cluster
// died: make e2e-down and the test suite's cleanup are the same code.
//
// The node's address is on an interface of the cluster's own (a bridge
// with no ports)
// (kubelet refuses a loopback --node-ip and the API server must reach
// kubelet at the node's InternalIP), not the host's
// outward address. The
// test images are package test/images' busybox images, served by package
// test/registry on loopback, and berthd's certs.d mirror configuration
// makes docker.io and registry.k8s.io resolve there, so pod manifests name
// images as real ones do.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/registry"
)

// Addresses the cluster uses. They are private ranges unlikely to be in use
// on a test machine; the node interface and the pod bridge are the
// cluster's own.
const (
	NodeIP      = "10.254.0.1"
	ClusterCIDR = "10.244.0.0/16"
	ServiceCIDR = "10.96.0.0/16"
	NodeName    = "berth-e2e-node"
	nodeLink    = "berthe2e"
	podBridge   = "berthe2e0"
	cgroupRoot  = "/berth-e2e"
	// varLibKubelet is where kubelet makes device-plugins/kubelet.sock.
	varLibKubelet = "/var/lib/kubelet"
	startTimeout  = 3 * time.Minute
)

// Config says where the cluster lives and what it runs.
type Config struct {
	Dir    string // private directory; made if missing, removed by Teardown
	Bin    string // directory holding the Kubernetes binaries and etcd
	Berthd string // the berthd binary
	// Log receives progress lines (nil: none).
	Log func(format string, args ...any)
}

// Cluster is a running cluster.
type Cluster struct {
	Config
	Kubeconfig  string // admin kubeconfig (a token in system:masters)
	Server      string // the API server's URL
	Token       string
	BerthSocket string
	BerthConfig string
	Registry    *registry.Registry

	pki   *pki
	ports map[string]int
	node  *node // the first node, on the host's network namespace

	mu    sync.Mutex
	procs map[string]*proc
}

// proc is one component process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// state is what Teardown needs to undo what the directory does not hold.
type state struct {
	Pids        map[string]int `json:"pids"`
	Links       []string       `json:"links"`
	CgroupRoots []string       `json:"cgroupRoots"`
	BerthSocket string         `json:"berthSocket"`
	KubeProxy   string         `json:"kubeProxy"`
	// VarLibKubelet: kubelet's device manager makes its socket in
	// /var/lib/kubelet/device-plugins whatever --root-dir says; set when
	// /var/lib/kubelet did not exist before the cluster, so Teardown
	// removes it again (and leaves one that was there alone).
	VarLibKubelet bool `json:"varLibKubelet"`
	// The second node's network namespaces (names under /run/netns) and
	// berthd sockets, while it runs.
	Netns    []string `json:"netns,omitempty"`
	Sockets2 []string `json:"sockets2,omitempty"`
}

func (c *Cluster) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

// Start brings the whole cluster up and waits until the node is Ready. On
// error everything started so far is torn down again.
func Start(ctx context.Context, cfg Config) (_ *Cluster, retErr error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the e2e cluster needs root (kubelet and berthd make namespaces, mounts and cgroups)")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a cluster: tear it down first (make e2e-down)", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, err
	}
	// berthd's state is below dir, and the containers of hostUsers: false
	// pods (a mapped uid) reach their rootfs through it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	c := &Cluster{
		Config:      cfg,
		Kubeconfig:  filepath.Join(dir, "admin.kubeconfig"),
		BerthSocket: filepath.Join(dir, "berth", "state", "berth.sock"),
		BerthConfig: filepath.Join(dir, "berth", "config.toml"),
		ports:       map[string]int{},
		procs:       map[string]*proc{},
	}
	c.node = &node{name: NodeName, ip: NodeIP, cgroupRoot: cgroupRoot,
		socket: c.BerthSocket, berthConfig: c.BerthConfig,
		podBridge: podBridge, podSubnet: "10.244.0.0/24"}
	if err := c.saveState(func(s *state) {
		s.BerthSocket = c.BerthSocket
		s.KubeProxy = filepath.Join(cfg.Bin, "kube-proxy")
	}); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			c.logf("start failed: %v; tearing down", retErr)
			retErr = fmt.Errorf("%w\n%s", retErr, c.LogTail(40))
			if c.Registry != nil {
				c.Registry.Close()
			}
			if err := Teardown(dir); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	if err := c.setUpNetwork(); err != nil {
		return nil, err
	}
	if c.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		return nil, err
	}
	c.Token = c.pki.token
	ip := net.ParseIP(NodeIP)
	if err := c.pki.issue("apiserver", "kube-apiserver", nil,
		[]net.IP{ip, net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		x509ServerAuth); err != nil {
		return nil, err
	}
	if err := c.pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil, x509ClientAuth); err != nil {
		return nil, err
	}
	if err := c.pki.issue("kubelet", NodeName, nil, []net.IP{ip}, []string{NodeName}, x509ServerAuth); err != nil {
		return nil, err
	}
	for _, n := range []string{"etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kubelet", "kubelet-healthz", "proxy-healthz", "proxy-metrics"} {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		c.ports[n] = p
	}
	c.Server = fmt.Sprintf("https://%s:%d", NodeIP, c.ports["apiserver"])
	if err := c.writeKubeconfig(); err != nil {
		return nil, err
	}
	if err := c.startRegistry(); err != nil {
		return nil, err
	}
	if err := c.startBerthd(ctx, c.node); err != nil {
		return nil, err
	}
	if err := c.startEtcd(); err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := c.startControllers(); err != nil {
		return nil, err
	}
	if err := c.startKubelet(c.node, KubeletSettings{}); err != nil {
		return nil, err
	}
	if err := c.startKubeProxy(); err != nil {
		return nil, err
	}
	if err := c.waitNodeReady(ctx, c.node); err != nil {
		return nil, err
	}
	c.logf("cluster up: node %s Ready, API server %s, kubeconfig %s", NodeName, c.Server, c.Kubeconfig)
	return c, nil
}

// Stop tears the cluster down: see Teardown.
func (c *Cluster) Stop() error {
	if c.Registry != nil {
		c.Registry.Close()
	}
	return Teardown(c.Dir)
}

func (c *Cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.Dir}, parts...)...)
}

// LogPath is the log file of a component: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kube-proxy, berthd.
func (c *Cluster) LogPath(name string) string { return c.path("logs", name+".log") }

// LogTail returns the last n lines of each component's log.
func (c *Cluster) LogTail(n int) string {
	var b strings.Builder
	for _, name := range []string{"berthd", "kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd"} {
		data, err := os.ReadFile(c.LogPath(name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "----- %s (last %d lines of %s)\n%s\n", name, len(lines), c.LogPath(name), strings.Join(lines, "\n"))
	}
	return b.String()
}

func (c *Cluster) saveState(edit func(*state)) error {
	return editState(c.Dir, edit)
}

func editState(dir string, edit func(*state)) error {
	s, err := loadState(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if s.Pids == nil {
		s.Pids = map[string]int{}
	}
	edit(&s)
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "state.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

func loadState(dir string) (state, error) {
	var s state
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(data, &s)
}

// runIn starts a component in the network namespace at netns (through
// nsenter, which execs it: the pid is the component's); "" is the host's.
func (c *Cluster) runIn(netns, name, bin string, args ...string) error {
	if netns == "" {
		return c.run(name, bin, args...)
	}
	return c.run(name, "nsenter", append([]string{"--net=" + netns, "--", bin}, args...)...)
}

// run starts a component with its output in its log file and records its
// pid in the state file.
func (c *Cluster) run(name, bin string, args ...string) error {
	log, err := os.OpenFile(c.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Fprintf(log, "=== cluster: starting %s %s at %s\n", bin, strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// A session of its own: a terminal's Ctrl-C reaches the component only
	// through Teardown, which stops things in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	c.logf("started %s (pid %d)", name, cmd.Process.Pid)
	return c.saveState(func(s *state) { s.Pids[name] = cmd.Process.Pid })
}

// exited reports whether a component's process has ended, with its status.
func (c *Cluster) exited(name string) (bool, string) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return true, "not started"
	}
	select {
	case <-p.done:
		return true, p.cmd.ProcessState.String()
	default:
		return false, ""
	}
}

// waitFor polls check until it succeeds, the context ends or the named
// process exits.
func (c *Cluster) waitFor(ctx context.Context, name, what string, check func() error) error {
	var err error
	for {
		if err = check(); err == nil {
			return nil
		}
		if done, st := c.exited(name); done {
			return fmt.Errorf("%s exited (%s) before %s", name, st, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) writeKubeconfig() error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: berth-e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: berth-e2e
  context:
    cluster: berth-e2e
    user: admin
current-context: berth-e2e
`, c.Server, c.pki.path("ca.crt"), c.Token)
	return os.WriteFile(c.Kubeconfig, []byte(kc), 0o600)
}

// startBerthd writes the berthd configuration of node n (its own socket,
// root, state, CNI directory with Berth's default network on a bridge of
// the cluster's own, the registry mirrors) and starts it.
func (c *Cluster) startBerthd(ctx context.Context, n *node) error {
	cfg := config.Default()
	cfg.Socket = n.socket
	cfg.Root = c.path("berth"+n.suffix, "root")
	cfg.State = c.path("berth"+n.suffix, "state")
	cfg.LogLevel = "debug"
	cfg.Registry.ConfigPath = c.path("certs.d")
	cfg.CNI.ConfDir = c.path("cni"+n.suffix, "net.d")
	cfg.CNI.DefaultNetwork = true
	cfg.CNI.DefaultBridge = n.podBridge
	cfg.CNI.DefaultSubnet = n.podSubnet
	data, err := config.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(n.berthConfig), 0o711); err != nil {
		return err
	}
	if err := os.WriteFile(n.berthConfig, data, 0o600); err != nil {
		return err
	}
	if n.netns == "" {
		// A second node's bridge is in its network namespace and goes
		// with it.
		if err := c.saveState(func(s *state) { s.Links = append(s.Links, n.podBridge) }); err != nil {
			return err
		}
	}
	return c.runBerthd(ctx, n)
}

// StartBerthd starts the first node's berthd (again) on its configuration
// and waits for its socket.
func (c *Cluster) StartBerthd(ctx context.Context) error { return c.runBerthd(ctx, c.node) }

func (c *Cluster) runBerthd(ctx context.Context, n *node) error {
	if err := c.runIn(n.netns, "berthd"+n.suffix, c.Berthd, "--config", n.berthConfig); err != nil {
		return err
	}
	return c.waitFor(ctx, "berthd"+n.suffix, "berthd's socket", func() error {
		conn, err := net.Dial("unix", n.socket)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// BerthdPid is the running berthd's process ID (0 if none).
func (c *Cluster) BerthdPid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs["berthd"]; p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// StopBerthd sends berthd sig and waits for it to exit.
func (c *Cluster) StopBerthd(sig syscall.Signal) error {
	return c.signal("berthd", sig, 30*time.Second)
}

func (c *Cluster) signal(name string, sig syscall.Signal, limit time.Duration) error {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s is not running", name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(limit):
		return fmt.Errorf("%s did not exit within %s of %s", name, limit, sig)
	}
}

func (c *Cluster) startEtcd() error {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"])
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd-peer"])
	return c.run("etcd", filepath.Join(c.Bin, "etcd"),
		"--name", "e2e", "--data-dir", c.path("etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer,
		// The data is thrown away with the cluster; fsync only costs time.
		"--unsafe-no-fsync")
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	p := c.pki.path
	if err := c.run("kube-apiserver", filepath.Join(c.Bin, "kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"]),
		"--bind-address", NodeIP, "--advertise-address", NodeIP,
		"--secure-port", strconv.Itoa(c.ports["apiserver"]),
		"--cert-dir", c.path("apiserver"),
		"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
		"--client-ca-file", p("ca.crt"),
		"--token-auth-file", p("tokens.csv"),
		"--service-account-key-file", p("sa.pub"),
		"--service-account-signing-key-file", p("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--allow-privileged=true",
		"--kubelet-client-certificate", p("apiserver-kubelet-client.crt"),
		"--kubelet-client-key", p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types", "InternalIP",
		"--profiling=false",
		"--v=1"); err != nil {
		return err
	}
	return c.waitFor(ctx, "kube-apiserver", "the API server's /readyz", func() error {
		_, err := c.apiGet("/readyz")
		return err
	})
}

// apiDelete deletes the object at path as the admin; one already gone is
// no error.
func (c *Cluster) apiDelete(path string) error {
	tr, err := c.transport()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodDelete, c.Server+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("DELETE %s: %s", path, resp.Status)
	}
	return nil
}

// apiGet GETs a path from the API server as the admin.
func (c *Cluster) apiGet(path string) ([]byte, error) {
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodGet, c.Server+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf strings.Builder
	if _, err := ioCopy(&buf, resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, buf.String())
	}
	return []byte(buf.String()), nil
}

func (c *Cluster) startControllers() error {
	p := c.pki.path
	if err := c.run("kube-controller-manager", filepath.Join(c.Bin, "kube-controller-manager"),
		"--kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.ports["kcm"]),
		"--service-account-private-key-file", p("sa.key"),
		"--root-ca-file", p("ca.crt"),
		"--use-service-account-credentials=false",
		"--allocate-node-cidrs", "--cluster-cidr", ClusterCIDR, "--node-cidr-mask-size", "24",
		"--service-cluster-ip-range", ServiceCIDR,
		"--leader-elect=false",
		"--v=1"); err != nil {
		return err
	}
	return c.run("kube-scheduler", filepath.Join(c.Bin, "kube-scheduler"),
		"--kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.ports["scheduler"]),
		"--leader-elect=false",
		"--v=1")
}

// KubeletSettings are what a test may change in the cluster's kubelet
// configuration; the zero value is the cluster's default.
type KubeletSettings struct {
	// FeatureGates set in the configuration; none: kubelet's defaults.
	FeatureGates map[string]bool
	// ImageGC turns kubelet's disk-based image garbage collection on with
	// thresholds of 1% and 0% and a minimum age of 1 s, so that each
	// collection (at start, then every 5 minutes) removes every image no
	// container uses.
	// Off, the thresholds are 100% and 99%: kubelet never collects.
	ImageGC bool
}

// RestartKubelet stops kubelet and starts it again with settings, then
// waits until the node is Ready. Pods keep running through it: kubelet
// finds them again through berthd.
func (c *Cluster) RestartKubelet(ctx context.Context, settings KubeletSettings) error {
	if err := c.signal("kubelet", syscall.SIGTERM, 30*time.Second); err != nil {
		return err
	}
	if err := c.startKubelet(c.node, settings); err != nil {
		return err
	}
	return c.waitNodeReady(ctx, c.node)
}

// startKubelet starts node n's kubelet on its berthd's socket with
// settings.
func (c *Cluster) startKubelet(n *node, settings KubeletSettings) error {
	root := c.path("kubelet" + n.suffix)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	if err := c.makeCgroupRoot(n.cgroupRoot); err != nil {
		return err
	}
	if _, err := os.Stat(varLibKubelet); errors.Is(err, os.ErrNotExist) {
		if err := c.saveState(func(s *state) { s.VarLibKubelet = true }); err != nil {
			return err
		}
	}
	p := c.pki.path
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
tlsCertFile: %[4]s
tlsPrivateKeyFile: %[5]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[6]s}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: %[7]s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[8]s
imageServiceEndpoint: unix://%[8]s
podLogsDir: %[9]s
clusterDomain: cluster.local
resolvConf: ""
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
serializeImagePulls: false
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
%[10]s`, n.ip, c.ports["kubelet"+n.suffix], c.ports["kubelet-healthz"+n.suffix], p("kubelet"+n.suffix+".crt"), p("kubelet"+n.suffix+".key"), p("ca.crt"),
		n.cgroupRoot, n.socket, c.path("pod-logs"+n.suffix), settings.yaml())
	cfgPath := c.path("kubelet" + n.suffix + ".yaml")
	if err := os.WriteFile(cfgPath, []byte(kcfg), 0o600); err != nil {
		return err
	}
	return c.runIn(n.netns, "kubelet"+n.suffix, filepath.Join(c.Bin, "kubelet"),
		"--config", cfgPath,
		"--kubeconfig", c.Kubeconfig,
		"--root-dir", root,
		"--cert-dir", c.path("kubelet-pki"+n.suffix),
		"--hostname-override", n.name,
		"--node-ip", n.ip,
		"--v=2")
}

// yaml is the part of a KubeletConfiguration that settings decide.
func (s KubeletSettings) yaml() string {
	var b strings.Builder
	if s.ImageGC {
		// A minimum age of 0 would be defaulted to 2 minutes.
		b.WriteString("imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 1s\n")
	} else {
		b.WriteString("imageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 99\n")
	}
	if len(s.FeatureGates) > 0 {
		names := make([]string, 0, len(s.FeatureGates))
		for n := range s.FeatureGates {
			names = append(names, n)
		}
		sort.Strings(names)
		b.WriteString("featureGates:\n")
		for _, n := range names {
			fmt.Fprintf(&b, "  %s: %t\n", n, s.FeatureGates[n])
		}
	}
	return b.String()
}

func (c *Cluster) startKubeProxy() error {
	pcfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: nftables
clusterCIDR: %s
hostnameOverride: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
nodePortAddresses: ["%s/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, c.Kubeconfig, ClusterCIDR, NodeName, c.ports["proxy-healthz"], c.ports["proxy-metrics"], NodeIP)
	cfgPath := c.path("kube-proxy.yaml")
	if err := os.WriteFile(cfgPath, []byte(pcfg), 0o600); err != nil {
		return err
	}
	return c.run("kube-proxy", filepath.Join(c.Bin, "kube-proxy"), "--config", cfgPath, "--v=1")
}

func (c *Cluster) waitNodeReady(ctx context.Context, n *node) error {
	return c.waitFor(ctx, "kubelet"+n.suffix, "node "+n.name+" Ready", func() error {
		data, err := c.apiGet("/api/v1/nodes/" + n.name)
		if err != nil {
			return err
		}
		var node struct {
			Status struct {
				Conditions []struct{ Type, Status, Message string }
			}
		}
		if err := json.Unmarshal(data, &node); err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == "Ready" {
				if cond.Status == "True" {
					return nil
				}
				return fmt.Errorf("node not Ready: %s", cond.Message)
			}
		}
		return errors.New("node has no Ready condition yet")
	})
}
