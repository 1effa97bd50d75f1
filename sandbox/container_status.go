package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/berth-runtime/berth/oci"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus reports a container from memory (kubelet asks often).
// With verbose, info["info"] is JSON with the PID and the OCI spec.
func (m *Manager) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatus, map[string]string, error) {
	c, err := m.containerByID(id)
	if err != nil {
		return nil, nil, err
	}
	out := c.criStatus()
	if !verbose {
		return out, nil, nil
	}
	st := c.snapshot()
	info := map[string]any{
		"sandboxID":      c.podID,
		"pid":            st.Pid,
		"runtimeHandler": c.handler,
		"removing":       st.Removing,
	}
	if spec, err := oci.ReadSpec(c.bundle); err == nil {
		info["runtimeSpec"] = spec
	}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, nil, fmt.Errorf("encode status info: %w", err)
	}
	return out, map[string]string{"info": string(data)}, nil
}

// PodContainerStatuses are the statuses of every container of pod podID
// (none for an unknown pod). PodSandboxStatus answers them, and events
// carry them: kubelet's evented PLEG takes a pod's containers from there
// instead of listing them.
func (m *Manager) PodContainerStatuses(podID string) []*runtimeapi.ContainerStatus {
	cs := m.podContainers(podID)
	out := make([]*runtimeapi.ContainerStatus, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.criStatus())
	}
	return out
}

// criStatus is the container's CRI status (not verbose).
func (c *Container) criStatus() *runtimeapi.ContainerStatus {
	st := c.snapshot()
	c.mu.Lock()
	res := c.resources
	c.mu.Unlock()
	cfg := c.config
	out := &runtimeapi.ContainerStatus{
		Id:          c.id,
		Metadata:    cfg.GetMetadata(),
		State:       st.State,
		CreatedAt:   c.createdAt.UnixNano(),
		ExitCode:    st.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: cfg.GetImage().GetImage(), Annotations: cfg.GetImage().GetAnnotations()},
		ImageRef:    c.imageRef,
		ImageId:     c.imageID,
		Reason:      st.Reason,
		Message:     st.Message,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      cfg.GetMounts(),
		LogPath:     c.logPath,
		StopSignal:  cfg.GetStopSignal(),
	}
	if res != nil {
		out.Resources = &runtimeapi.ContainerResources{Linux: res}
	}
	if !st.StartedAt.IsZero() {
		out.StartedAt = st.StartedAt.UnixNano()
	}
	if !st.FinishedAt.IsZero() {
		out.FinishedAt = st.FinishedAt.UnixNano()
	}
	if p := c.process; p != nil {
		out.User = &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
			Uid: int64(p.User.UID), Gid: int64(p.User.GID), SupplementalGroups: gids64(p.User.AdditionalGids),
		}}
	}
	return out
}

func gids64(g []uint32) []int64 {
	out := make([]int64, len(g))
	for i, v := range g {
		out[i] = int64(v)
	}
	return out
}

// ListContainers returns the containers that pass every set field of f.
// ID and pod sandbox ID filters accept unique prefixes.
func (m *Manager) ListContainers(ctx context.Context, f *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	m.mu.RLock()
	f, ok := m.resolveContainerFilter(f)
	if !ok {
		m.mu.RUnlock()
		return nil
	}
	all := make([]*Container, 0, len(m.containers))
	for _, c := range m.containers {
		all = append(all, c)
	}
	m.mu.RUnlock()
	out := make([]*runtimeapi.Container, 0, len(all))
	for _, c := range all {
		st := c.snapshot()
		if !matchContainer(c, st.State, f) {
			continue
		}
		cfg := c.config
		out = append(out, &runtimeapi.Container{
			Id:           c.id,
			PodSandboxId: c.podID,
			Metadata:     cfg.GetMetadata(),
			Image:        &runtimeapi.ImageSpec{Image: cfg.GetImage().GetImage(), Annotations: cfg.GetImage().GetAnnotations()},
			ImageRef:     c.imageRef,
			ImageId:      c.imageID,
			State:        st.State,
			CreatedAt:    c.createdAt.UnixNano(),
			Labels:       cfg.GetLabels(),
			Annotations:  cfg.GetAnnotations(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return out
}

// resolveContainerFilter returns f with its container and pod sandbox ID
// prefixes resolved to full IDs; false when either names no object or more
// than one, which nothing matches (as in containerd and CRI-O, where a
// filter is no place for an error). m.mu is held.
func (m *Manager) resolveContainerFilter(f *runtimeapi.ContainerFilter) (*runtimeapi.ContainerFilter, bool) {
	if f.GetId() == "" && f.GetPodSandboxId() == "" {
		return f, true
	}
	out := &runtimeapi.ContainerFilter{State: f.GetState(), LabelSelector: f.GetLabelSelector()}
	var err error
	if f.GetId() != "" {
		if out.Id, err = m.ctrIDs.resolve("container", f.GetId()); err != nil {
			return nil, false
		}
	}
	if f.GetPodSandboxId() != "" {
		if out.PodSandboxId, err = m.podIDs.resolve("pod sandbox", f.GetPodSandboxId()); err != nil {
			return nil, false
		}
	}
	return out, true
}

// matchContainer applies a ListContainers filter whose IDs are resolved.
func matchContainer(c *Container, state containerState, f *runtimeapi.ContainerFilter) bool {
	if f == nil {
		return true
	}
	if f.GetId() != "" && c.id != f.GetId() {
		return false
	}
	if f.GetPodSandboxId() != "" && c.podID != f.GetPodSandboxId() {
		return false
	}
	if f.GetState() != nil && f.GetState().GetState() != state {
		return false
	}
	labels := c.config.GetLabels()
	for k, v := range f.GetLabelSelector() {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
