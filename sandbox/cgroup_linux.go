package sandbox

// The pod cgroup. A pod's cgroup is its cgroup_parent: berthd creates it
// (kubelet may have made it already), applies the pod-level resources and
// overhead to it, and nests every container of the pod under it:
//
//	cgroupfs: <cgroup_parent>/<container id> under every v1 hierarchy, or
//	          under the one v2 hierarchy
//	systemd:  <cgroup_parent slice>:berth:<container id> (a scope in the slice)
//
// The cgroup version is the host's, detected once by the library
// (cgroup v1 when the v2 hierarchy has no controllers: hybrid hosts).
// The pod removes its cgroup only if it created it and no other pod of
// this berthd still uses it: kubelet reuses a pod's cgroup_parent for
// every attempt of the pod's sandbox.

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/berth-runtime/berth/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cgroupVersion names the host's cgroup layout for logs and status.
func cgroupVersion() string {
	if cgroups.IsCgroup2UnifiedMode() {
		return "v2"
	}
	if cgroups.IsCgroup2HybridMode() {
		return "v1 (hybrid)"
	}
	return "v1"
}

// checkCgroupDriver fails when the configured driver cannot work here.
func checkCgroupDriver(driver string) error {
	switch driver {
	case "", "cgroupfs":
		return nil
	case "systemd":
		if !systemd.IsRunningSystemd() {
			return fmt.Errorf("cgroup driver systemd: systemd is not running on this host: %w", errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	return fmt.Errorf("cgroup driver %q: %w", driver, errdefs.ErrInvalidArgument)
}

// podCgroupPath is where a pod's cgroup lives: the cgroup_parent, or a
// berthd default when kubelet gives none.
func (m *Manager) podCgroupPath(id, parent string) (string, error) {
	if m.cfg.CgroupDriver == "systemd" {
		if parent == "" {
			return "berth-pod" + id + ".slice", nil
		}
		if _, err := systemd.ExpandSlice(parent); err != nil {
			return "", fmt.Errorf("cgroup_parent %q is not a systemd slice: %w", parent, errdefs.ErrInvalidArgument)
		}
		return parent, nil
	}
	if parent == "" {
		return "/berth/" + id, nil
	}
	if strings.HasSuffix(parent, ".slice") {
		return "", fmt.Errorf("cgroup_parent %q is a systemd slice, but the cgroup driver is cgroupfs: %w", parent, errdefs.ErrInvalidArgument)
	}
	clean := path.Clean("/" + parent)
	if clean == "/" {
		return "", fmt.Errorf("cgroup_parent %q is the root cgroup: %w", parent, errdefs.ErrInvalidArgument)
	}
	return clean, nil
}

// cgroupManager returns the library's manager of the pod cgroup at p.
func (m *Manager) cgroupManager(p string, res *cgroups.Resources) (cgroups.Manager, error) {
	if res == nil {
		res = &cgroups.Resources{}
	}
	// Device rules belong to containers; the pod cgroup allows what its
	// parent allows.
	res.SkipDevices = true
	cg := &cgroups.Cgroup{Path: p}
	if m.cfg.CgroupDriver == "systemd" {
		var err error
		if cg, err = oci.SliceCgroup(p); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
	}
	cg.Resources = res
	mgr, err := cgmanager.New(cg)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	return mgr, nil
}

// cgroupExists reports whether the pod cgroup at p is already there
// (kubelet makes pod cgroups itself).
func (m *Manager) cgroupExists(p string) bool {
	if m.cfg.CgroupDriver == "systemd" {
		dir, err := oci.CgroupDir(p, true)
		if err != nil {
			return false
		}
		root := "/sys/fs/cgroup/systemd" // v1: the name=systemd hierarchy
		if cgroups.IsCgroup2UnifiedMode() {
			root = "/sys/fs/cgroup"
		}
		return cgroups.PathExists(filepath.Join(root, dir))
	}
	mgr, err := m.cgroupManager(p, nil)
	if err != nil {
		return false
	}
	for _, dir := range mgr.GetPaths() {
		if cgroups.PathExists(dir) {
			return true
		}
	}
	return false
}

// createPodCgroup creates the pod cgroup at p and applies res to it. It
// reports whether the cgroup is new (and so the pod's to remove).
func (m *Manager) createPodCgroup(p string, res *cgroups.Resources) (created bool, retErr error) {
	existed := m.cgroupExists(p)
	mgr, err := m.cgroupManager(p, res)
	if err != nil {
		return false, err
	}
	defer func() {
		if retErr != nil && !existed {
			_ = mgr.Destroy()
		}
	}()
	if err := mgr.Apply(-1); err != nil {
		return false, fmt.Errorf("create cgroup %s: %w", p, err)
	}
	if err := mgr.Set(res); err != nil {
		if errors.Is(err, cgroups.ErrV1NoUnified) {
			return false, fmt.Errorf("pod resources for cgroup %s: unified settings need cgroup v2: %w", p, errdefs.ErrInvalidArgument)
		}
		return false, fmt.Errorf("set pod resources on cgroup %s: %w", p, err)
	}
	return !existed, nil
}

// removePodCgroup removes the pod cgroup at p and whatever empty cgroups
// are left under it. A cgroup that is already gone is not an error.
func (m *Manager) removePodCgroup(p string) error {
	mgr, err := m.cgroupManager(p, nil)
	if err != nil {
		return err
	}
	if err := mgr.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", p, err)
	}
	return nil
}

// addToPodCgroup moves pid into the pod cgroup at p.
func (m *Manager) addToPodCgroup(p string, pid int) error {
	mgr, err := m.cgroupManager(p, nil)
	if err != nil {
		return err
	}
	if err := mgr.Apply(pid); err != nil {
		return fmt.Errorf("move %d into cgroup %s: %w", pid, p, err)
	}
	return nil
}

// podResources turns the pod's resources and overhead into the pod
// cgroup's limits: the containers' sum plus the overhead, as kubelet sizes
// pod cgroups. Overhead alone sets no limit. Nil means no settings.
// Hugepage limits are kept only when hugetlb can take them (see
// specInput.Hugetlb).
func podResources(linux *runtimeapi.LinuxPodSandboxConfig, hugetlb bool) *cgroups.Resources {
	r, o := linux.GetResources(), linux.GetOverhead()
	if r == nil {
		return nil
	}
	res := &cgroups.Resources{
		CpuShares:  uint64(r.GetCpuShares()),
		CpuPeriod:  uint64(r.GetCpuPeriod()),
		CpuQuota:   r.GetCpuQuota(),
		Memory:     r.GetMemoryLimitInBytes(),
		MemorySwap: r.GetMemorySwapLimitInBytes(),
		CpusetCpus: r.GetCpusetCpus(),
		CpusetMems: r.GetCpusetMems(),
	}
	if len(r.GetUnified()) > 0 {
		res.Unified = r.GetUnified()
	}
	for _, h := range r.GetHugepageLimits() {
		if !hugetlb {
			break // nothing could take them (see specInput.Hugetlb)
		}
		res.HugetlbLimit = append(res.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	if o != nil {
		if res.Memory > 0 {
			res.Memory += o.GetMemoryLimitInBytes()
			if res.MemorySwap > 0 {
				res.MemorySwap += o.GetMemoryLimitInBytes()
			}
		}
		if res.CpuShares > 0 {
			res.CpuShares += uint64(o.GetCpuShares())
		}
		if res.CpuQuota > 0 && o.GetCpuQuota() > 0 && (o.GetCpuPeriod() == 0 || o.GetCpuPeriod() == r.GetCpuPeriod()) {
			res.CpuQuota += o.GetCpuQuota()
		}
	}
	return res
}
