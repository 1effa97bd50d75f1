package sandbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-runtime/berth/sandbox/failpoint"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemovePod removes the pod and its containers, running or not: it stops
// the pod if it is ready, removes the containers, unpins the namespaces,
// removes the pod cgroup, the pod's files and its record. Removing an
// unknown pod is not an error (kubelet retries removals).
func (m *Manager) RemovePod(ctx context.Context, id string) error {
	p, err := m.lockPod(id)
	if p == nil {
		if err == nil {
			m.log.Debug("removal of an unknown pod: nothing to do", zap.String("sandbox", id))
		}
		return err
	}
	defer p.lifecycle.Unlock()
	if err := m.stopPodLocked(ctx, p); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RemoveStopped)
	if err := m.removePodContainers(ctx, p.id); err != nil {
		return fmt.Errorf("remove containers of pod %s: %w", p.id, err)
	}
	failpoint.Hit(failpoint.RemoveContainers)
	if err := m.destroyPod(ctx, p); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RemoveDirs)
	if err := m.store.delete(bucketPods, p.id); err != nil {
		return fmt.Errorf("delete pod record: %w", err)
	}
	info := p.info()
	m.mu.Lock()
	delete(m.pods, p.id)
	m.podIDs.remove(p.id)
	m.podNames.releaseLocked(podName(p.config.GetMetadata()), p.id)
	m.mu.Unlock()
	p.stats.remove()
	m.podEvent(runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, p.id, p.id, &info)
	m.log.Info("pod removed", zap.String("sandbox", p.id))
	return nil
}

// destroyPod undoes everything RunPod may have made for p, in reverse:
// berth-podinit, the network, /dev/shm, the namespace pins, the cgroup and
// the pod's dirs. Every step tolerates what is already gone, so it serves
// RunPod's failure path, RemovePod, and a restart after a crash.
func (m *Manager) destroyPod(ctx context.Context, p *Pod) error {
	var errs []error
	if p.init != nil {
		if err := p.init.kill(); err != nil {
			errs = append(errs, err)
		} else {
			p.init.release()
		}
	}
	if p.ns["net"] != "" && m.network != nil {
		if err := m.network.Teardown(ctx, m.cniPod(p)); err != nil {
			errs = append(errs, fmt.Errorf("tear down pod network: %w", err))
		}
		failpoint.Hit(failpoint.RemoveNetwork)
	}
	mounts := []string{p.shmPath()}
	// The user namespace last: it owns the others.
	for _, k := range podNamespaceKinds {
		mounts = append(mounts, p.ns[k])
	}
	for _, mnt := range mounts {
		if mnt == "" {
			continue
		}
		if err := unpin(mnt); err != nil {
			errs = append(errs, err)
		}
	}
	failpoint.Hit(failpoint.RemoveUnpinned)
	if m.cgroupToRemove(p) {
		if err := m.removePodCgroup(p.cgroup); err != nil {
			errs = append(errs, err)
		} else {
			m.mu.Lock()
			delete(m.podCgroups, p.cgroup)
			m.mu.Unlock()
		}
		failpoint.Hit(failpoint.RemoveCgroup)
	}
	if len(errs) > 0 {
		// Keep the dirs: something may still be mounted in them.
		return fmt.Errorf("clean up pod %s: %w", p.id, errors.Join(errs...))
	}
	return removePodDirs(p)
}

// cgroupToRemove reports whether p's cgroup goes with p: berthd made it
// (for p or for another attempt of the same pod), and no other pod of this
// berthd uses it. kubelet gives every attempt of a pod the same
// cgroup_parent, and removes old attempts while a new one runs.
func (m *Manager) cgroupToRemove(p *Pod) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !p.cgroupCreated && !m.podCgroups[p.cgroup] {
		return false
	}
	for _, o := range m.pods {
		if o != p && o.cgroup == p.cgroup {
			return false
		}
	}
	return true
}
