package sandbox

import (
	"context"
	"fmt"

	"github.com/berth-runtime/berth/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateContainerResources changes a created or running container's
// cgroup limits in place, and records them in its bundle and status.
func (m *Manager) UpdateContainerResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error {
	if r == nil {
		return fmt.Errorf("no linux resources to update: %w", errdefs.ErrInvalidArgument)
	}
	c, err := m.containerByID(id)
	if err != nil {
		return err
	}
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if st := c.snapshot(); st.State != stateCreated && st.State != stateRunning {
		return fmt.Errorf("container %s is %s: %w", c.id, stateName(st.State), errdefs.ErrFailedPrecondition)
	}
	if m.cfg.CgroupDriver == "systemd" {
		return fmt.Errorf("updating resources with the systemd cgroup driver: %w", errdefs.ErrNotImplemented)
	}
	var lr specs.LinuxResources
	in := specInput{SwapAccounting: oci.SwapAccounting(), Unified: oci.UnifiedMemory(), Hugetlb: oci.HugetlbAvailable()}
	if err := linuxResources(&lr, r, in); err != nil {
		return err
	}
	mgr, err := m.cgroupManager(c.cgroupsPath, nil)
	if err != nil {
		return err
	}
	res, err := oci.CgroupResources(&lr)
	if err != nil {
		return fmt.Errorf("update cgroup of container %s: %w", c.id, err)
	}
	if err := mgr.Set(res); err != nil {
		return fmt.Errorf("update cgroup of container %s: %w", c.id, err)
	}
	if spec, err := oci.ReadSpec(c.bundle); err == nil {
		devices := spec.Linux.Resources.Devices
		lr.Devices = devices
		spec.Linux.Resources = &lr
		if err := oci.WriteSpec(c.bundle, spec); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.resources = r
	c.mu.Unlock()
	return nil
}
