// Package sandbox runs pods and their containers: lifecycle and state,
// pinned pod namespaces, nested cgroups, monitors, logs, and recovery after
// berthd restarts.
package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/oci"
	"go.uber.org/zap"
)

// Config is the [sandbox] part of berthd's configuration.
type Config struct {
	// CgroupDriver is "cgroupfs" (default) or "systemd".
	CgroupDriver string `toml:"cgroup_driver" comment:"\"cgroupfs\" or \"systemd\" (needs a running systemd)"`
	// RestrictOOMScoreAdj clamps oom_score_adj to what berthd may set.
	// "auto" clamps when berthd lacks CAP_SYS_RESOURCE.
	RestrictOOMScoreAdj string `toml:"restrict_oom_score_adj" comment:"\"true\", \"false\" or \"auto\" (clamp when berthd lacks CAP_SYS_RESOURCE): keep containers' oom_score_adj no lower than berthd's own"`
	// DefaultRuntime is the handler used when a pod names none.
	DefaultRuntime string `toml:"default_runtime" comment:"runtime handler used when a pod names none"`
	// Runtimes maps CRI runtime handler names to runtimes.
	Runtimes map[string]oci.Handler `toml:"handlers" comment:"CRI runtime handlers: [runtime.handlers.NAME]"`
	// StopTimeoutGrace bounds how long StopPodSandbox waits per container,
	// in seconds. The CRI says StopPodSandbox terminates running containers
	// forcibly: kubelet has already stopped them with the pod's grace
	// period. So the default is 0 (SIGKILL at once), as in containerd.
	StopTimeoutGrace int `toml:"stop_timeout_seconds" comment:"seconds StopPodSandbox waits for a container still running to exit after its stop signal before SIGKILL; 0 kills at once, as the CRI asks (kubelet stops containers gracefully before it stops the pod)"`
	// StatsPeriod is how often, in seconds, the stats sampler reads the
	// cgroups that stats calls ask about; 0 reads them on every call.
	StatsPeriod int `toml:"stats_collection_period_seconds" comment:"seconds between two reads of a container's or pod's cgroup while stats calls ask about it; a call answers the last read, as CRI-O's stats_collection_period and kubelet's cAdvisor (every 10 s) do; 0 reads the cgroups on every call, as containerd does"`
}

// DefaultConfig is the configuration of a berthd started with no file.
func DefaultConfig() Config {
	return Config{
		CgroupDriver:        "cgroupfs",
		RestrictOOMScoreAdj: "auto",
		DefaultRuntime:      "berth",
		Runtimes: map[string]oci.Handler{
			"berth": {Type: "builtin"},
			"runc":  {Type: "oci", Path: "/usr/sbin/runc"},
			"crun":  {Type: "oci", Path: "/usr/bin/crun"},
		},
		StatsPeriod:      1,
		StopTimeoutGrace: 0,
	}
}

// Options create a Manager.
type Options struct {
	Root     string // <berthd root>/sandbox: database, bundles, pod files
	State    string // <berthd state>: pinned namespaces, rootfs mounts, monitor state
	Config   Config
	Images   *image.Store
	Network  *cni.Manager
	Runtimes map[string]oci.Runtime
	Log      *zap.Logger
}

// Manager owns every pod and container of one berthd.
type Manager struct {
	root     string
	state    string
	cfg      Config
	images   *image.Store
	network  *cni.Manager
	runtimes map[string]oci.Runtime
	log      *zap.Logger
	store    *store

	// mu guards the maps and indexes below (not the objects in them,
	// which have locks of their own).
	//
	// Lock order of the package: a goroutine holding one of these takes
	// only locks further down the list, never one above it.
	//
	//	p.lifecycle   Pod: StopPod, RemovePod, UpdatePodSandboxResources
	//	c.stopMu      Container: Start, Stop, Remove, UpdateContainerResources
	//	c.events.mu   containerEvents: held while an event is built and
	//	              published (podEvent reads m.pods under m.mu)
	//	m.mu          this one (StopPod marks the pod not ready under it,
	//	              insertContainer checks p.ready() under it)
	//	p.mu          Pod: state, IPs, podinit, resources
	//	c.mu          Container: status, monitor, resources
	//	m.events.mu   eventHub: held while an event is queued to subscribers
	//
	// The rest guard only their own fields and call out under none of the
	// above: statsState.mu, criLog.mu, monitorSpares.mu; statsState.layerMu
	// and statsSampler.mu, which may start work on m.bg and so take
	// background.mu, the last.
	mu         sync.RWMutex
	pods       map[string]*Pod
	podIDs     idIndex
	containers map[string]*Container
	ctrIDs     idIndex
	// podNames maps a pod's metadata (podName) to its ID, so that a
	// second pod with the same metadata is refused.
	podNames nameIndex
	// ctrNames maps a container's unique name (containerName) to its
	// ID, reserved from the start of CreateContainer (names.go).
	ctrNames nameIndex
	// podCgroups are the pod cgroups berthd made; the last pod using one
	// removes it.
	podCgroups map[string]bool

	// spare is a container monitor started ahead of need (monitor_spare_linux.go).
	spare monitorSpares
	// sampler keeps the stats calls' cgroup samples fresh (stats_sampler.go).
	sampler *statsSampler
	// events fans container and pod events out to subscribers (events.go).
	events eventHub
	// bg runs work that outlives its call (the sampler, writable-layer
	// walks) until Close.
	bg *background

	// usernsPodsForTest: UsernsPodsEnv was set (see its comment).
	usernsPodsForTest bool
}

// UsernsPodsEnv, set to 1 in berthd's environment, lets RunPodSandbox make
// pods of user namespace mode POD also on a handler that cannot run
// containers in them (crun), so that tests can check the pod side there:
// CreateContainer in such a pod is Unimplemented, so nothing runs with
// less isolation than asked. For
// tests only; New removes it from the environment, as failpoint.Arm does
// its variable, so that nothing berthd starts inherits it.
const UsernsPodsEnv = "BERTH_TEST_USERNS_PODS"

// New opens the sandbox database and recovers pods and containers left by an
// earlier berthd.
func New(ctx context.Context, opts Options) (*Manager, error) {
	for _, dir := range []string{opts.Root, opts.State} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if err := checkCgroupDriver(opts.Config.CgroupDriver); err != nil {
		return nil, err
	}
	st, err := openStore(filepath.Join(opts.Root, "meta.db"))
	if err != nil {
		return nil, err
	}
	m := &Manager{
		root:       opts.Root,
		state:      opts.State,
		cfg:        opts.Config,
		images:     opts.Images,
		network:    opts.Network,
		runtimes:   opts.Runtimes,
		log:        opts.Log,
		store:      st,
		pods:       map[string]*Pod{},
		podIDs:     idIndex{},
		containers: map[string]*Container{},
		ctrIDs:     idIndex{},
		podNames:   nameIndex{},
		ctrNames:   nameIndex{},
		podCgroups: map[string]bool{},
		sampler:    newStatsSampler(time.Duration(opts.Config.StatsPeriod) * time.Second),
		bg:         newBackground(),
	}
	if os.Getenv(UsernsPodsEnv) == "1" {
		m.usernsPodsForTest = true
		m.log.Warn(UsernsPodsEnv + " is set: pods of user namespace mode POD run on every handler, with no containers where it lacks user namespaces")
	}
	os.Unsetenv(UsernsPodsEnv)
	m.log.Info("cgroups", zap.String("version", cgroupVersion()), zap.String("driver", opts.Config.CgroupDriver))
	if err := m.recoverPods(ctx); err != nil {
		st.close()
		return nil, fmt.Errorf("recover pods: %w", err)
	}
	if err := m.recoverContainers(ctx); err != nil {
		st.close()
		return nil, fmt.Errorf("recover containers: %w", err)
	}
	return m, nil
}

// Close stops the background work (the stats sampler, layer walks) and
// releases the database. Containers keep running.
func (m *Manager) Close() error {
	m.bg.close()
	m.spare.close()
	return m.store.close()
}

// MonitorMain, the "berth-monitor" role, is in monitor.go.

// HandlerFeatures reports what the runtime of a CRI runtime handler can
// enforce; an unknown handler has no features.
func (m *Manager) HandlerFeatures(handler string) oci.Features {
	rt, ok := m.runtimes[handler]
	if !ok {
		return oci.Features{}
	}
	return oci.FeaturesOf(rt)
}
