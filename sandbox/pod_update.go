package sandbox

import (
	"context"
	"fmt"

	"github.com/berth-runtime/berth/oci"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdatePodResources records the pod-level resources and overhead kubelet
// resized the pod to (UpdatePodSandboxResources) and applies them to the
// pod cgroup when berthd made it; kubelet has already resized the pod
// cgroups it made itself.
func (m *Manager) UpdatePodResources(ctx context.Context, id string, overhead, resources *runtimeapi.LinuxContainerResources) error {
	p, err := m.podByID(id)
	if err != nil {
		return err
	}
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	if !p.ready() {
		return fmt.Errorf("pod sandbox %s is not ready: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	m.mu.RLock()
	owned := p.cgroupCreated || m.podCgroups[p.cgroup]
	m.mu.RUnlock()
	if res := podResources(&runtimeapi.LinuxPodSandboxConfig{Resources: resources, Overhead: overhead}, oci.HugetlbAvailable()); owned && res != nil {
		mgr, err := m.cgroupManager(p.cgroup, res)
		if err != nil {
			return err
		}
		if err := mgr.Set(res); err != nil {
			return fmt.Errorf("set pod resources on cgroup %s: %w", p.cgroup, err)
		}
	}
	p.mu.Lock()
	p.resources, p.overhead = resources, overhead
	rec := p.recordLocked()
	p.mu.Unlock()
	if err := m.store.put(bucketPods, p.id, rec); err != nil {
		return fmt.Errorf("store pod resources: %w", err)
	}
	m.log.Info("pod resources updated", zap.String("sandbox", p.id))
	return nil
}
