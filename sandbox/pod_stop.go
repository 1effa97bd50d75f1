package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopPod stops every container of the pod (their stop signal, then
// SIGKILL after the grace), ends berth-podinit and detaches the pod from
// its network. The namespaces stay pinned until RemovePod. Stopping a
// stopped pod, or one that is gone, does nothing: the CRI asks for no
// error once everything is reclaimed (CRI-O answers so too).
func (m *Manager) StopPod(ctx context.Context, id string) error {
	p, err := m.lockPod(id)
	if p == nil {
		if err == nil {
			m.log.Debug("stop of an unknown pod: nothing to do", zap.String("sandbox", id))
		}
		return err
	}
	defer p.lifecycle.Unlock()
	return m.stopPodLocked(ctx, p)
}

// lockPod resolves id and takes the pod's lifecycle lock. A pod that is
// not there, or was removed while the lock was awaited, is nil with no
// error: stop and remove of a gone pod succeed.
func (m *Manager) lockPod(id string) (*Pod, error) {
	p, err := m.podByID(id)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.lifecycle.Lock()
	m.mu.RLock()
	gone := m.pods[p.id] != p
	m.mu.RUnlock()
	if gone {
		p.lifecycle.Unlock()
		return nil, nil
	}
	return p, nil
}

// stopPodLocked stops p; the caller holds p.lifecycle. Every step is
// idempotent, so a stop that failed half-way is finished by the next one.
func (m *Manager) stopPodLocked(ctx context.Context, p *Pod) error {
	log := m.log.With(zap.String("sandbox", p.id))
	// Not ready first, under m.mu: no container can join the pod from now.
	m.mu.Lock()
	p.mu.Lock()
	wasReady := p.state == podReady
	p.state = podNotReady
	rec := p.recordLocked()
	p.mu.Unlock()
	m.mu.Unlock()
	if err := m.store.put(bucketPods, p.id, rec); err != nil {
		return fmt.Errorf("store pod state: %w", err)
	}
	failpoint.Hit(failpoint.StopNotReady)
	if wasReady {
		// Sent when the stop is done (or failed half-way: the pod is not
		// ready either way), so that it reports the containers stopped.
		defer m.podEvent(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, p.id, p.id, nil)
	}

	grace := time.Duration(m.cfg.StopTimeoutGrace) * time.Second
	if err := m.stopPodContainers(ctx, p.id, grace); err != nil {
		return fmt.Errorf("stop containers of pod %s: %w", p.id, err)
	}
	failpoint.Hit(failpoint.StopContainers)
	if p.init != nil {
		if err := p.init.kill(); err != nil {
			return err
		}
		failpoint.Hit(failpoint.StopInit)
	}
	if p.ns["net"] != "" {
		if err := m.network.Teardown(ctx, m.cniPod(p)); err != nil {
			return fmt.Errorf("tear down pod network: %w", err)
		}
		failpoint.Hit(failpoint.StopNetwork)
	}
	if shm := p.shmPath(); shm != "" {
		if err := unpin(shm); err != nil {
			return err
		}
		failpoint.Hit(failpoint.StopShm)
	}
	log.Info("pod stopped")
	return nil
}

// watchPodInit marks the pod not ready when its berth-podinit exits while
// the pod is ready: its PID namespace is dead, no container can join it.
func (m *Manager) watchPodInit(p *Pod, i *podInit) {
	<-i.exited
	p.mu.Lock()
	if p.state != podReady || p.init != i {
		p.mu.Unlock()
		return
	}
	p.state = podNotReady
	rec := p.recordLocked()
	p.mu.Unlock()
	m.log.Warn("berth-podinit exited; pod is not ready", zap.String("sandbox", p.id), zap.Int("pid", i.pid))
	m.podEvent(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, p.id, p.id, nil)
	if err := m.store.put(bucketPods, p.id, rec); err != nil {
		m.log.Error("store pod state", zap.String("sandbox", p.id), zap.Error(err))
	}
}
