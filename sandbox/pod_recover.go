package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// recoverPods loads the pods of the database at start-up. A ready pod
// whose pinned namespaces are gone (the host rebooted) or whose
// berth-podinit died is not ready any more. What a berthd killed in the
// middle of RunPodSandbox left behind (a state dir with an intent file
// and no record) is undone.
func (m *Manager) recoverPods(ctx context.Context) error {
	var recs []podRecord
	err := m.store.each(bucketPods, func(id string, data []byte) error {
		var rec podRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("decode pod %s: %w", id, err)
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return err
	}
	for _, rec := range recs {
		p, err := m.podFromRecord(&rec)
		if err != nil {
			return err
		}
		if rec.Init != nil {
			if p.init, err = adoptPodInit(rec.Init); err != nil && p.state == podReady {
				m.log.Warn("berth-podinit of pod is gone", zap.String("sandbox", p.id), zap.Error(err))
			}
		}
		if p.state == podReady {
			if reason := p.deadReason(rec.Init != nil); reason != "" {
				m.log.Warn("pod is not ready after restart", zap.String("sandbox", p.id), zap.String("reason", reason))
				p.state = podNotReady
				if err := m.store.put(bucketPods, p.id, p.recordLocked()); err != nil {
					return fmt.Errorf("store pod %s: %w", p.id, err)
				}
			}
		}
		m.pods[p.id] = p
		m.podIDs.add(p.id)
		m.podNames[podName(p.config.GetMetadata())] = p.id
		if p.cgroupCreated {
			m.podCgroups[p.cgroup] = true
		}
		if p.init != nil {
			go m.watchPodInit(p, p.init)
		}
	}
	m.cleanHalfMadePods(ctx)
	return nil
}

// podFromRecord rebuilds a pod from its record.
func (m *Manager) podFromRecord(rec *podRecord) (*Pod, error) {
	cfg := &runtimeapi.PodSandboxConfig{}
	if err := proto.Unmarshal(rec.Config, cfg); err != nil {
		return nil, fmt.Errorf("decode config of pod %s: %w", rec.ID, err)
	}
	ns := rec.Namespaces
	if ns == nil {
		ns = map[string]string{}
	}
	resources, overhead := cfg.GetLinux().GetResources(), cfg.GetLinux().GetOverhead()
	if rec.ResourcesUpdated {
		resources, overhead = &runtimeapi.LinuxContainerResources{}, &runtimeapi.LinuxContainerResources{}
		if err := proto.Unmarshal(rec.Resources, resources); err != nil {
			return nil, fmt.Errorf("decode resources of pod %s: %w", rec.ID, err)
		}
		if err := proto.Unmarshal(rec.Overhead, overhead); err != nil {
			return nil, fmt.Errorf("decode overhead of pod %s: %w", rec.ID, err)
		}
	}
	return &Pod{
		resources:     resources,
		overhead:      overhead,
		id:            rec.ID,
		config:        cfg,
		handler:       rec.RuntimeHandler,
		createdAt:     rec.CreatedAt,
		dir:           filepath.Join(m.root, "pods", rec.ID),
		stateDir:      filepath.Join(m.state, "pods", rec.ID),
		ns:            ns,
		cgroup:        rec.Cgroup,
		cgroupCreated: rec.CgroupCreated,
		state:         rec.State,
		ips:           rec.IPs,
	}, nil
}

// deadReason says why a pod recorded ready cannot run containers, or "".
func (p *Pod) deadReason(hadInit bool) string {
	for _, k := range podNamespaceKinds {
		if path := p.ns[k]; path != "" && !isNamespacePin(path) {
			return k + " namespace pin " + path + " is gone"
		}
	}
	if hadInit && p.init == nil {
		return podInitRole + " has exited"
	}
	return ""
}

// cleanHalfMadePods undoes pods that have a dir but no record.
func (m *Manager) cleanHalfMadePods(ctx context.Context) {
	for _, base := range []string{filepath.Join(m.state, "pods"), filepath.Join(m.root, "pods")} {
		entries, err := os.ReadDir(base)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				m.log.Warn("list pod dirs", zap.Error(err))
			}
			continue
		}
		for _, e := range entries {
			id := e.Name()
			if _, ok := m.pods[id]; ok {
				continue
			}
			p := &Pod{id: id, dir: filepath.Join(m.root, "pods", id), stateDir: filepath.Join(m.state, "pods", id), ns: map[string]string{}}
			if data, err := os.ReadFile(intentPath(p)); err == nil {
				var rec podRecord
				if err := json.Unmarshal(data, &rec); err == nil && rec.ID == id {
					if q, err := m.podFromRecord(&rec); err == nil {
						p = q
						if rec.Init != nil {
							p.init, _ = adoptPodInit(rec.Init)
						}
					}
				}
			} else {
				// No intent: unpin whatever may be there.
				for _, k := range podNamespaceKinds {
					p.ns[k] = filepath.Join(p.stateDir, "ns", k)
				}
			}
			if err := m.destroyPod(ctx, p); err != nil {
				m.log.Warn("clean up half-made pod", zap.String("sandbox", id), zap.Error(err))
				continue
			}
			m.log.Info("cleaned up half-made pod", zap.String("sandbox", id))
		}
	}
}
