package sandbox

// Pods. A Berth pod is a set of pinned namespaces, a cgroup and a few
// files; it has no process of its own (no pause container), except the
// berth-podinit reaper when its containers share one PID namespace.
//
// On disk, for pod <id>:
//
//	<state>/pods/<id>/ns/net, ipc, uts   bind mounts pinning the pod's namespaces
//	                                     (absent when the pod uses the host's)
//	<state>/pods/<id>/ns/pid             the POD-mode PID namespace of berth-podinit
//	<state>/pods/<id>/shm                the pod's /dev/shm: a 64 MiB tmpfs
//	<state>/pods/<id>/creating.json      written while RunPodSandbox works, so that
//	                                     a berthd killed half-way can undo it at restart
//	<berthd root>/sandbox/pods/<id>/hostname, hosts, resolv.conf
//
// (<berthd root> and <state> are berthd's root and state directories; the
// Manager's own root, Options.Root, is <berthd root>/sandbox.)
//
// The pod's record in the database (pods/<id>, JSON podRecord) holds its
// CRI config and state; it is written when the pod is ready and on every
// state change.
//
// Pod states:
//
//	RunPodSandbox ──> ready ──StopPodSandbox──> notready ──RemovePodSandbox──> (gone)
//	                    │                          ▲
//	                    └── berth-podinit died ────┘
//
// What the container side uses (all in this package):
//
//	m.podByID(prefix) (*Pod, error)    the pod of an ID or unique ID prefix
//	p.id, p.config                     fixed at creation; config is read-only
//	p.nsPath("net"|"ipc"|"uts"|"pid"|"user")  pinned namespace to join; "" means the host's
//	                                   ("pid" is set only in POD PID mode)
//	p.pidMode()                        runtimeapi.NamespaceMode of the pod's PID option
//	p.cgroupParent()                   cgroupfs path or systemd slice to nest containers in
//	p.hostnamePath(), p.hostsPath(), p.resolvConfPath()
//	p.shmPath()                        tmpfs to bind at /dev/shm; "" for host IPC (use /dev/shm)
//	p.runtimeHandler()                 the oci runtime handler name (never empty)
//	p.ready() bool
//
// Creating a container in a pod: take m.mu (write) to insert the container
// into m.containers, and check p.ready() while holding it. StopPod marks
// the pod notready under m.mu before it gathers the pod's containers, so a
// container is either seen and stopped by StopPod, or refused.

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod states, as stored in the record.
const (
	podReady    = "ready"
	podNotReady = "notready"
)

// shmSize is the size of a pod's /dev/shm, containerd's default.
const shmSize = 64 << 20

// Pod is a pod sandbox.
type Pod struct {
	// Fixed when the pod is made.
	id        string
	config    *runtimeapi.PodSandboxConfig
	handler   string
	createdAt time.Time
	dir       string            // <berthd root>/sandbox/pods/<id>
	stateDir  string            // <state>/pods/<id>
	ns        map[string]string // kind → pin path; only the kinds the pod made
	cgroup    string            // cgroupfs path or systemd slice
	// cgroupCreated: the pod made its cgroup (kubelet had not), so it
	// removes it.
	cgroupCreated bool

	// lifecycle serialises StopPod and RemovePod of this pod. It is not mu
	// because stopping containers takes seconds and ListPodSandbox must
	// not wait for it.
	lifecycle sync.Mutex

	// stats is what the stats calls keep between calls (stats.go).
	stats statsState

	// mu guards the fields below.
	mu    sync.RWMutex
	state string
	ips   []string
	init  *podInit // berth-podinit, in POD PID mode
	// resources and overhead are the pod-level resources: the config's,
	// then UpdatePodSandboxResources'.
	resources, overhead *runtimeapi.LinuxContainerResources
}

// podByID resolves a pod ID or unique ID prefix.
func (m *Manager) podByID(prefix string) (*Pod, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, err := m.podIDs.resolve("pod sandbox", prefix)
	if err != nil {
		return nil, err
	}
	p, ok := m.pods[id]
	if !ok {
		return nil, fmt.Errorf("pod sandbox %s: not in the pod map", id)
	}
	return p, nil
}

// nsPath is the pinned namespace of kind ("net", "ipc", "uts", "pid" or "user")
// for the pod's containers to join, or "" when they use the host's (or,
// for "pid", have their own).
func (p *Pod) nsPath(kind string) string { return p.ns[kind] }

// pidMode is the pod's PID namespace option: POD, CONTAINER or NODE.
func (p *Pod) pidMode() runtimeapi.NamespaceMode {
	return p.config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid()
}

func (p *Pod) hostNetwork() bool {
	return p.config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
}

// cgroupParent is the cgroup the pod's containers nest in.
func (p *Pod) cgroupParent() string { return p.cgroup }

func (p *Pod) hostnamePath() string   { return filepath.Join(p.dir, "hostname") }
func (p *Pod) hostsPath() string      { return filepath.Join(p.dir, "hosts") }
func (p *Pod) resolvConfPath() string { return filepath.Join(p.dir, "resolv.conf") }

// shmPath is the pod's /dev/shm tmpfs, or "" when the pod shares the
// host's IPC namespace (its containers then bind the host's /dev/shm).
func (p *Pod) shmPath() string {
	if p.ns["ipc"] == "" {
		return ""
	}
	return filepath.Join(p.stateDir, "shm")
}

// runtimeHandler names the pod's oci runtime.
func (p *Pod) runtimeHandler() string { return p.handler }

func (p *Pod) ready() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.state == podReady
}

// podRecord is a pod in the database.
type podRecord struct {
	ID             string            `json:"id"`
	Config         []byte            `json:"config"` // protobuf runtimeapi.PodSandboxConfig
	RuntimeHandler string            `json:"runtime_handler"`
	CreatedAt      time.Time         `json:"created_at"`
	Namespaces     map[string]string `json:"namespaces,omitempty"`
	Cgroup         string            `json:"cgroup"`
	CgroupCreated  bool              `json:"cgroup_created,omitempty"`
	State          string            `json:"state"`
	IPs            []string          `json:"ips,omitempty"`
	Init           *initRecord       `json:"init,omitempty"`
	// ResourcesUpdated: UpdatePodSandboxResources replaced the config's
	// resources and overhead by Resources and Overhead (protobuf
	// runtimeapi.LinuxContainerResources).
	ResourcesUpdated bool   `json:"resources_updated,omitempty"`
	Resources        []byte `json:"resources,omitempty"`
	Overhead         []byte `json:"overhead,omitempty"`
}

// initRecord identifies a berth-podinit process across berthd restarts:
// the pid and its start time (so a reused pid is not taken for it).
type initRecord struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}
