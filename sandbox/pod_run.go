package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPod makes a ready pod from cfg, run by the runtime handler (empty:
// the default), and returns its ID.
func (m *Manager) RunPod(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (_ string, retErr error) {
	if err := checkPodConfig(cfg); err != nil {
		return "", err
	}
	if handler == "" {
		handler = m.cfg.DefaultRuntime
	}
	if _, ok := m.runtimes[handler]; !ok {
		return "", fmt.Errorf("runtime handler %q is not configured: %w", handler, errdefs.ErrInvalidArgument)
	}
	if uid, _ := usernsMappings(cfg); uid != nil && !m.HandlerFeatures(handler).UserNamespaces && !m.usernsPodsForTest {
		// Never run in the host's user namespace while kubelet believes
		// the pod is isolated.
		return "", fmt.Errorf("user namespaces for pods (userns_options mode POD) on runtime handler %q: %w", handler, errdefs.ErrNotImplemented)
	}
	if uid, _ := usernsMappings(cfg); uid != nil {
		if err := searchableByAll(m.state); err != nil {
			return "", err
		}
	}
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	own := map[string]bool{
		"net": nsOpts.GetNetwork() != runtimeapi.NamespaceMode_NODE,
		"ipc": nsOpts.GetIpc() != runtimeapi.NamespaceMode_NODE,
	}
	// A pod on the host's network has the host's name, as with
	// containerd and CRI-O.
	own["uts"] = own["net"]
	if err := checkSysctls(cfg.GetLinux().GetSysctls(), own); err != nil {
		return "", err
	}
	hostname, err := podHostname(cfg)
	if err != nil {
		return "", err
	}
	id, err := newID()
	if err != nil {
		return "", err
	}
	name := podName(cfg.GetMetadata())
	if err := m.reserveName(m.podNames, "pod sandbox", name, id); err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			m.releaseName(m.podNames, name, id)
		}
	}()
	log := m.log.With(zap.String("sandbox", id))
	cgroup, err := m.podCgroupPath(id, cfg.GetLinux().GetCgroupParent())
	if err != nil {
		return "", err
	}

	p := &Pod{
		id:        id,
		config:    cfg,
		handler:   handler,
		createdAt: time.Now(),
		dir:       filepath.Join(m.root, "pods", id),
		stateDir:  filepath.Join(m.state, "pods", id),
		ns:        map[string]string{},
		cgroup:    cgroup,
		state:     podReady,
		resources: cfg.GetLinux().GetResources(),
		overhead:  cfg.GetLinux().GetOverhead(),
	}
	var kinds []string
	for _, k := range []string{"net", "ipc", "uts"} {
		if own[k] {
			kinds = append(kinds, k)
			p.ns[k] = filepath.Join(p.stateDir, "ns", k)
		}
	}
	podInitMode := nsOpts.GetPid() == runtimeapi.NamespaceMode_POD
	if podInitMode {
		p.ns["pid"] = filepath.Join(p.stateDir, "ns", "pid")
	}
	uidMap, gidMap := usernsMappings(cfg)
	if uidMap != nil {
		p.ns["user"] = filepath.Join(p.stateDir, "ns", "user")
	}
	// From here on, destroyPod undoes whatever was made (the pod's
	// directories first: one made before the other failed, on a full disk
	// say, goes too), also after a crash: the intent file tells a
	// restarted berthd what to undo.
	defer func() {
		if retErr != nil {
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			if err := m.destroyPod(cctx, p); err != nil {
				log.Error("clean up pod after failed start", zap.Error(err))
			}
		}
	}()
	for _, dir := range []string{filepath.Join(p.stateDir, "ns"), p.dir} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return "", fmt.Errorf("create pod dir: %w", err)
		}
	}
	failpoint.Hit(failpoint.RunPodDirs)
	p.cgroupCreated = !m.cgroupExists(cgroup)
	if err := writeIntent(p); err != nil {
		return "", err
	}
	failpoint.Hit(failpoint.RunPodIntent)
	created, err := m.createPodCgroup(cgroup, podResources(cfg.GetLinux(), oci.HugetlbAvailable()))
	p.cgroupCreated = created
	if err != nil {
		return "", err
	}
	if created {
		m.mu.Lock()
		m.podCgroups[cgroup] = true
		m.mu.Unlock()
	}
	failpoint.Hit(failpoint.RunPodCgroup)

	netSysctls, otherSysctls := splitSysctls(cfg.GetLinux().GetSysctls())
	inPod := func() error {
		if own["uts"] {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", hostname, err)
			}
		}
		if own["net"] {
			if err := loopbackUp(); err != nil {
				return err
			}
		}
		// Network sysctls wait for the network: they may name the
		// interface the CNI plugins add (net.ipv4.conf.eth0.*).
		if uidMap != nil {
			return writeSysctlsInUserns(otherSysctls, uidMap.GetHostId())
		}
		if err := writeSysctls(otherSysctls); err != nil {
			return err
		}
		if podInitMode && uidMap == nil {
			init, err := startPodInit()
			if err != nil {
				return err
			}
			p.init = init
		}
		return nil
	}
	nsDir := filepath.Join(p.stateDir, "ns")
	if uidMap != nil {
		// berth-podinit, if any, is made with the user namespace and
		// has pinned its PID namespace.
		p.init, err = inNewUserns(nsDir, kinds, podInitMode, uidMap, gidMap, inPod)
	} else {
		err = inNewNamespaces(nsDir, kinds, inPod)
	}
	if err != nil {
		return "", err
	}
	if p.init != nil {
		// Before anything can crash: a restarted berthd kills the
		// berth-podinit the intent names, and would not find it else.
		if err := writeIntent(p); err != nil {
			return "", err
		}
	}
	failpoint.Hit(failpoint.RunPodNamespaces)
	if p.init != nil {
		if err := m.addToPodCgroup(cgroup, p.init.pid); err != nil {
			return "", err
		}
		if uidMap == nil {
			if err := pin(fmt.Sprintf("/proc/%d/ns/pid", p.init.pid), p.ns["pid"]); err != nil {
				return "", err
			}
		}
		failpoint.Hit(failpoint.RunPodInit)
	}
	if own["ipc"] {
		if err := mountShm(p.shmPath()); err != nil {
			return "", err
		}
		failpoint.Hit(failpoint.RunPodShm)
	}
	// For a host-network pod, Setup runs no plugin and reports the
	// host's addresses.
	res, err := m.network.Setup(ctx, m.cniPod(p))
	if err != nil {
		return "", fmt.Errorf("set up pod network: %w", err)
	}
	for _, ip := range res.IPs {
		p.ips = append(p.ips, ip.String())
	}
	failpoint.Hit(failpoint.RunPodNetwork)
	if len(netSysctls) > 0 {
		if err := inNetNS(p.ns["net"], func() error { return writeSysctls(netSysctls) }); err != nil {
			return "", err
		}
	}
	if err := writePodFiles(p, hostname, p.ips); err != nil {
		return "", err
	}
	if uidMap != nil {
		// Writable by the containers' root, as in a pod in the host's
		// user namespace.
		for _, f := range []string{p.hostnamePath(), p.hostsPath(), p.resolvConfPath()} {
			if err := os.Chown(f, int(uidMap.GetHostId()), int(gidMap.GetHostId())); err != nil {
				return "", fmt.Errorf("pod file for its user namespace: %w", err)
			}
		}
	}
	failpoint.Hit(failpoint.RunPodFiles)

	if err := m.store.put(bucketPods, id, p.recordLocked()); err != nil {
		return "", fmt.Errorf("store pod: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = m.store.delete(bucketPods, id)
		}
	}()
	failpoint.Hit(failpoint.RunPodRecord)
	// The record now says what to undo; the intent file is not needed.
	if err := os.Remove(intentPath(p)); err != nil {
		return "", fmt.Errorf("remove intent file: %w", err)
	}
	failpoint.Hit(failpoint.RunPodReady)
	m.mu.Lock()
	m.pods[id] = p
	m.podIDs.add(id)
	m.mu.Unlock()
	if p.init != nil {
		go m.watchPodInit(p, p.init)
	}
	m.podEvent(runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, id, id, nil)
	m.podEvent(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, id, id, nil)
	log.Info("pod ready", zap.String("pod", name), zap.String("runtime_handler", handler),
		zap.Strings("ips", p.ips), zap.String("cgroup", cgroup))
	return id, nil
}

// checkPodConfig refuses a config that lacks what every pod needs.
func checkPodConfig(cfg *runtimeapi.PodSandboxConfig) error {
	md := cfg.GetMetadata()
	switch {
	case cfg == nil:
		return fmt.Errorf("pod sandbox config is missing: %w", errdefs.ErrInvalidArgument)
	case md == nil:
		return fmt.Errorf("pod sandbox metadata is missing: %w", errdefs.ErrInvalidArgument)
	case md.GetName() == "":
		return fmt.Errorf("pod sandbox metadata has no name: %w", errdefs.ErrInvalidArgument)
	case md.GetNamespace() == "":
		return fmt.Errorf("pod sandbox metadata has no namespace: %w", errdefs.ErrInvalidArgument)
	case md.GetUid() == "":
		return fmt.Errorf("pod sandbox metadata has no uid: %w", errdefs.ErrInvalidArgument)
	case cfg.GetLogDirectory() != "" && !filepath.IsAbs(cfg.GetLogDirectory()):
		// Relative, it would be relative to berthd's working directory.
		return fmt.Errorf("pod log directory %q is not an absolute path: %w", cfg.GetLogDirectory(), errdefs.ErrInvalidArgument)
	}
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	switch nsOpts.GetPid() {
	case runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_NODE:
	default:
		return fmt.Errorf("pod PID namespace mode %s: a pod's mode is POD, CONTAINER or NODE: %w",
			nsOpts.GetPid(), errdefs.ErrInvalidArgument)
	}
	for what, mode := range map[string]runtimeapi.NamespaceMode{"network": nsOpts.GetNetwork(), "IPC": nsOpts.GetIpc()} {
		if mode != runtimeapi.NamespaceMode_POD && mode != runtimeapi.NamespaceMode_NODE {
			return fmt.Errorf("pod %s namespace mode %s: it is POD or NODE: %w", what, mode, errdefs.ErrInvalidArgument)
		}
	}
	if err := checkLSM(cfg.GetLinux().GetSecurityContext().GetApparmor(), "", cfg.GetLinux().GetSecurityContext().GetSelinuxOptions()); err != nil {
		return err
	}
	return checkUserns(nsOpts)
}

// podName is the key of the name index: two pods with the same metadata
// are the same pod, as in containerd.
func podName(md *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{md.GetName(), md.GetNamespace(), md.GetUid(), strconv.FormatUint(uint64(md.GetAttempt()), 10)}, "_")
}

// newID returns a random 64-hex-digit ID, as containerd's.
func newID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// cniPod is what the network needs to know of p.
func (m *Manager) cniPod(p *Pod) cni.Pod {
	return cni.Pod{ID: p.id, NetNS: p.ns["net"], Config: p.config, CgroupDir: p.cgroup}
}

// recordLocked is p's database record. Call it with p.mu held, or before
// p is shared.
func (p *Pod) recordLocked() *podRecord {
	cfg, _ := proto.Marshal(p.config)
	r := &podRecord{
		ID:             p.id,
		Config:         cfg,
		RuntimeHandler: p.handler,
		CreatedAt:      p.createdAt,
		Namespaces:     p.ns,
		Cgroup:         p.cgroup,
		CgroupCreated:  p.cgroupCreated,
		State:          p.state,
		IPs:            p.ips,
	}
	if p.init != nil {
		r.Init = p.init.record()
	}
	if p.resources != p.config.GetLinux().GetResources() || p.overhead != p.config.GetLinux().GetOverhead() {
		r.ResourcesUpdated = true
		r.Resources, _ = proto.Marshal(p.resources)
		r.Overhead, _ = proto.Marshal(p.overhead)
	}
	return r
}

func intentPath(p *Pod) string { return filepath.Join(p.stateDir, "creating.json") }

// writeIntent records what RunPod has made so far in the state dir, so
// that a berthd killed half-way through undoes it when it starts again.
// The state dir is a tmpfs: this costs no disk sync.
func writeIntent(p *Pod) error {
	data, err := json.Marshal(p.recordLocked())
	if err != nil {
		return fmt.Errorf("encode intent: %w", err)
	}
	tmp := intentPath(p) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write intent: %w", err)
	}
	if err := os.Rename(tmp, intentPath(p)); err != nil {
		return fmt.Errorf("write intent: %w", err)
	}
	return nil
}
