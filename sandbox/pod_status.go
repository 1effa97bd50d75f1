package sandbox

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodInfo is what the CRI reports of a pod. Config is shared with the
// pod: read it, never change it.
type PodInfo struct {
	ID             string
	Config         *runtimeapi.PodSandboxConfig
	RuntimeHandler string
	CreatedAt      time.Time
	Ready          bool
	IPs            []string // the first is the pod's primary IP
}

// PodVerbose is the verbose part of PodSandboxStatus.
type PodVerbose struct {
	Namespaces   map[string]string            `json:"namespaces"` // kind → pinned path
	Cgroup       string                       `json:"cgroup"`
	CgroupDriver string                       `json:"cgroupDriver"`
	InitPid      int                          `json:"initPid,omitempty"` // berth-podinit, in POD PID mode
	Hostname     string                       `json:"hostname"`
	Files        map[string]string            `json:"files"` // container path → host path
	Config       *runtimeapi.PodSandboxConfig `json:"config"`
	// Resources and Overhead are the pod-level ones now (after
	// UpdatePodSandboxResources).
	Resources *runtimeapi.LinuxContainerResources `json:"resources,omitempty"`
	Overhead  *runtimeapi.LinuxContainerResources `json:"overhead,omitempty"`
}

func (p *Pod) info() PodInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return PodInfo{
		ID:             p.id,
		Config:         p.config,
		RuntimeHandler: p.handler,
		CreatedAt:      p.createdAt,
		Ready:          p.state == podReady,
		IPs:            p.ips,
	}
}

// PodStatus reports the pod of an ID or unique ID prefix.
func (m *Manager) PodStatus(ctx context.Context, id string) (PodInfo, error) {
	p, err := m.podByID(id)
	if err != nil {
		return PodInfo{}, err
	}
	return p.info(), nil
}

// PodVerboseInfo is what verbose PodSandboxStatus adds.
func (m *Manager) PodVerboseInfo(ctx context.Context, id string) (PodVerbose, error) {
	p, err := m.podByID(id)
	if err != nil {
		return PodVerbose{}, err
	}
	v := PodVerbose{
		Namespaces:   p.ns,
		Cgroup:       p.cgroup,
		CgroupDriver: m.cfg.CgroupDriver,
		Hostname:     p.config.GetHostname(),
		Files: map[string]string{
			"/etc/hostname":    p.hostnamePath(),
			"/etc/hosts":       p.hostsPath(),
			"/etc/resolv.conf": p.resolvConfPath(),
		},
		Config: p.config,
	}
	if shm := p.shmPath(); shm != "" {
		v.Files["/dev/shm"] = shm
	}
	p.mu.RLock()
	if p.init != nil {
		v.InitPid = p.init.pid
	}
	v.Resources, v.Overhead = p.resources, p.overhead
	p.mu.RUnlock()
	return v, nil
}

// PodFilter selects pods in ListPods; zero fields select all.
type PodFilter struct {
	ID     string // full ID or unique prefix
	State  *bool  // ready (true) or not ready (false)
	Labels map[string]string
}

// ListPods lists the pods that filter selects. kubelet calls it every
// second: it reads only memory, under read locks.
func (m *Manager) ListPods(filter PodFilter) []PodInfo {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if filter.ID != "" {
		id, err := m.podIDs.resolve("pod sandbox", filter.ID)
		if err != nil {
			return nil // no pod, or an ambiguous prefix: nothing matches
		}
		filter.ID = id
	}
	out := make([]PodInfo, 0, len(m.pods))
	for id, p := range m.pods {
		if filter.ID != "" && id != filter.ID {
			continue
		}
		info := p.info()
		if filter.State != nil && info.Ready != *filter.State {
			continue
		}
		if !labelsMatch(info.Config.GetLabels(), filter.Labels) {
			continue
		}
		out = append(out, info)
	}
	return out
}

// labelsMatch reports whether labels hold every key and value of selector.
func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
