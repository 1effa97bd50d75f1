package oci

// Container cgroups, through github.com/opencontainers/cgroups: v1 (also
// "hybrid": v1 controllers plus an empty cgroup2, which counts as v1) or
// the v2 unified hierarchy, with the cgroupfs or the systemd driver.
//
// spec.Linux.CgroupsPath is an absolute path under every hierarchy for
// cgroupfs ("/kubepods/pod<uid>/<id>") and "slice:prefix:name" for systemd.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // device rules on v1 and v2 (eBPF)
	devices "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultNamespaces are a container's own namespaces: pid, ipc, uts,
// mount, network, and on a cgroup v2 host cgroup too, as containerd does.
func defaultNamespaces() []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace},
	}
	if cgroups.IsCgroup2UnifiedMode() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// cgroupState is what the runtime keeps to find a container's cgroup again.
type cgroupState struct {
	Path        string            `json:"path,omitempty"`
	Parent      string            `json:"parent,omitempty"`
	ScopePrefix string            `json:"scope_prefix,omitempty"`
	Name        string            `json:"name,omitempty"`
	Systemd     bool              `json:"systemd,omitempty"`
	Paths       map[string]string `json:"paths,omitempty"` // controller → directory ("" on v2)
}

// cgroupConfig turns a spec's cgroups path into the library's config; an
// empty path is the runtime's default for container id.
func cgroupConfig(id, path string, systemd bool, r *specs.LinuxResources) (*cgroups.Cgroup, error) {
	res, err := CgroupResources(r)
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = "/berth/" + id
		if systemd {
			path = "system.slice:berth:" + id
		}
	}
	c, err := parseCgroupsPath(path, systemd)
	if err != nil {
		return nil, err
	}
	c.Resources = res
	return c, nil
}

// parseCgroupsPath reads a cgroups path as the runtime spec gives it: a
// path under every hierarchy for cgroupfs, "slice:prefix:name" (the scope
// prefix-name.scope in slice) for systemd. This is the one place that
// knows the format.
func parseCgroupsPath(path string, systemd bool) (*cgroups.Cgroup, error) {
	if !systemd {
		return &cgroups.Cgroup{Path: filepath.Join("/", path)}, nil
	}
	parts := strings.Split(path, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("systemd cgroups path %q: want slice:prefix:name", path)
	}
	return &cgroups.Cgroup{Systemd: true, Parent: parts[0], ScopePrefix: parts[1], Name: parts[2]}, nil
}

// CgroupDir is the directory, relative to each hierarchy's root, of the
// cgroup at a spec's cgroups path, or of a pod's cgroup parent: a path for
// cgroupfs; a slice name, or a container's "slice:prefix:name", for
// systemd (expanded as systemd does: "a-b.slice" is a.slice/a-b.slice).
// It asks neither systemd nor the kernel, so it serves readers of cgroup
// files (stats, the OOM counter) wherever berthd runs.
func CgroupDir(path string, systemd bool) (string, error) {
	if systemd && !strings.Contains(path, ":") {
		return expandSlice(path)
	}
	c, err := parseCgroupsPath(path, systemd)
	if err != nil {
		return "", err
	}
	if !systemd {
		return c.Path, nil
	}
	parent := c.Parent
	if parent == "" {
		parent = "system.slice" // as the library and runc default it
	}
	slice, err := expandSlice(parent)
	if err != nil {
		return "", err
	}
	unit := c.Name
	if !strings.HasSuffix(unit, ".slice") { // as the library names the unit
		unit = c.ScopePrefix + "-" + unit + ".scope"
	}
	return filepath.Join(slice, unit), nil
}

// SliceCgroup is the library's config for the systemd slice named slice
// (a pod's cgroup): the slice in its parent slice, where systemd puts it
// ("a-b.slice" in "a.slice"). Given only a name, the library would put it
// in system.slice, away from where CgroupDir and systemd find it.
func SliceCgroup(slice string) (*cgroups.Cgroup, error) {
	dir, err := expandSlice(slice)
	if err != nil {
		return nil, err
	}
	parent := filepath.Base(filepath.Dir(dir))
	if parent == "/" {
		parent = "-.slice" // the root slice
	}
	return &cgroups.Cgroup{Systemd: true, Parent: parent, Name: slice}, nil
}

func expandSlice(slice string) (string, error) {
	dir, err := systemd.ExpandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("systemd slice %q: %w", slice, err)
	}
	return dir, nil
}

func (s cgroupState) manager() (cgroups.Manager, error) {
	c := &cgroups.Cgroup{
		Path: s.Path, Parent: s.Parent, ScopePrefix: s.ScopePrefix, Name: s.Name, Systemd: s.Systemd,
		Resources: &cgroups.Resources{SkipDevices: true},
	}
	return manager.NewWithPaths(c, s.Paths)
}

// procsFiles are the cgroup.procs files a process writes to join the
// container's cgroup on every hierarchy.
func (s cgroupState) procsFiles() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range s.Paths {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Stat(p); err == nil {
			out = append(out, filepath.Join(p, "cgroup.procs"))
		}
	}
	return out
}

// withMknodOfNodes is r with "m" allowed for each of the spec's device
// nodes, which the init makes (mknod) after joining the device cgroup: a
// node configured "r" or "rw" would otherwise be refused to the runtime
// itself. runc gets there by allowing mknod of every node ("c *:* m",
// "b *:* m"); this allows it for the spec's own nodes only, whose use
// stays limited to their rules' permissions. r itself is left as it is
// (it is the spec's, which UpdateContainerResources writes back).
func withMknodOfNodes(r *specs.LinuxResources, nodes []specs.LinuxDevice) *specs.LinuxResources {
	if r == nil || len(r.Devices) == 0 || len(nodes) == 0 {
		return r
	}
	out := *r
	out.Devices = append([]specs.LinuxDeviceCgroup(nil), r.Devices...)
	for _, d := range nodes {
		typ := d.Type
		switch typ {
		case "u": // unbuffered: a character device to the cgroup
			typ = "c"
		case "c", "b":
		default:
			continue
		}
		major, minor := d.Major, d.Minor
		out.Devices = append(out.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "m"})
	}
	return &out
}

// CgroupResources converts the spec's resources to the cgroup library's,
// as Create applies them and UpdateContainerResources changes them: limits
// the host cannot take (swap without accounting, hugepages without hugetlb)
// are dropped, and no device rules means the device cgroup is left alone.
func CgroupResources(r *specs.LinuxResources) (*cgroups.Resources, error) {
	out := &cgroups.Resources{}
	if r == nil {
		out.SkipDevices = true
		return out, nil
	}
	for _, d := range r.Devices {
		rule := &devices.Rule{Type: devices.WildcardDevice, Major: devices.Wildcard, Minor: devices.Wildcard,
			Permissions: devices.Permissions(d.Access), Allow: d.Allow}
		if d.Type != "" {
			rule.Type = devices.Type(d.Type[0])
		}
		if d.Major != nil {
			rule.Major = *d.Major
		}
		if d.Minor != nil {
			rule.Minor = *d.Minor
		}
		if rule.Permissions == "" {
			rule.Permissions = "rwm"
		}
		if !rule.Type.CanCgroup() {
			return nil, fmt.Errorf("device rule type %q", d.Type)
		}
		out.Devices = append(out.Devices, rule)
	}
	if len(r.Devices) == 0 {
		out.SkipDevices = true
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			out.Memory = *m.Limit
		}
		if m.Reservation != nil {
			out.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil && SwapAccounting() {
			out.MemorySwap = *m.Swap
		}
		out.MemorySwappiness = m.Swappiness
		if m.DisableOOMKiller != nil {
			out.OomKillDisable = *m.DisableOOMKiller
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			out.CpuShares = *c.Shares
		}
		if c.Quota != nil {
			out.CpuQuota = *c.Quota
		}
		if c.Period != nil {
			out.CpuPeriod = *c.Period
		}
		out.CpuBurst = c.Burst
		if c.RealtimeRuntime != nil {
			out.CpuRtRuntime = *c.RealtimeRuntime
		}
		if c.RealtimePeriod != nil {
			out.CpuRtPeriod = *c.RealtimePeriod
		}
		out.CpusetCpus, out.CpusetMems = c.Cpus, c.Mems
		out.CPUIdle = c.Idle
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		l := *r.Pids.Limit
		if l <= 0 {
			l = -1 // "max"
		}
		out.PidsLimit = &l
	}
	if b := r.BlockIO; b != nil {
		if b.Weight != nil {
			out.BlkioWeight = *b.Weight
		}
		if b.LeafWeight != nil {
			out.BlkioLeafWeight = *b.LeafWeight
		}
		for _, d := range b.WeightDevice {
			var w, lw uint16
			if d.Weight != nil {
				w = *d.Weight
			}
			if d.LeafWeight != nil {
				lw = *d.LeafWeight
			}
			out.BlkioWeightDevice = append(out.BlkioWeightDevice, cgroups.NewWeightDevice(d.Major, d.Minor, w, lw))
		}
		for _, t := range []struct {
			from []specs.LinuxThrottleDevice
			to   *[]*cgroups.ThrottleDevice
		}{
			{b.ThrottleReadBpsDevice, &out.BlkioThrottleReadBpsDevice},
			{b.ThrottleWriteBpsDevice, &out.BlkioThrottleWriteBpsDevice},
			{b.ThrottleReadIOPSDevice, &out.BlkioThrottleReadIOPSDevice},
			{b.ThrottleWriteIOPSDevice, &out.BlkioThrottleWriteIOPSDevice},
		} {
			for _, d := range t.from {
				*t.to = append(*t.to, cgroups.NewThrottleDevice(d.Major, d.Minor, d.Rate))
			}
		}
	}
	// kubelet sends a limit for every page size the node has; without a
	// hugetlb controller they cannot apply, and containerd drops them too.
	if HugetlbAvailable() {
		for _, h := range r.HugepageLimits {
			out.HugetlbLimit = append(out.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
		}
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			out.NetClsClassid = *n.ClassID
		}
		for _, p := range n.Priorities {
			out.NetPrioIfpriomap = append(out.NetPrioIfpriomap, &cgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}
	if len(r.Unified) > 0 {
		if !cgroups.IsCgroup2UnifiedMode() {
			return nil, errors.New("unified cgroup resources need cgroup v2")
		}
		out.Unified = r.Unified
	}
	return out, nil
}

// hostCgroupFacts are what the host's cgroups can take. They are fixed
// at boot, so they are read once, not on every container create.
type hostCgroupFacts struct {
	swap, hugetlb, unifiedMemory bool
}

var hostCgroups = sync.OnceValue(func() hostCgroupFacts {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	controllers, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	v2 := strings.Fields(string(controllers))
	var f hostCgroupFacts
	f.unifiedMemory = slices.Contains(v2, "memory")
	// v1 accounts swap where memory.memsw.* exists; on v2 the root has no
	// memory.swap.max, but a child cgroup has one when swap is accounted.
	f.swap = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") ||
		exists("/sys/fs/cgroup/memory.swap.max") ||
		(f.unifiedMemory && exists("/sys/fs/cgroup/system.slice/memory.swap.max"))
	// On a hybrid host hugetlb may sit on the otherwise empty cgroup2
	// mount, where runc cannot use it: it counts only on a unified host.
	if cgroups.IsCgroup2UnifiedMode() {
		f.hugetlb = slices.Contains(v2, "hugetlb")
	} else {
		f.hugetlb = exists("/sys/fs/cgroup/hugetlb")
	}
	return f
})

// SwapAccounting reports whether the kernel accounts swap per cgroup;
// without it a swap limit cannot be set, and containerd leaves it out too.
func SwapAccounting() bool { return hostCgroups().swap }

// UnifiedMemory reports whether the memory controller is on cgroup v2
// (unified keys for memory pass through only then).
func UnifiedMemory() bool { return hostCgroups().unifiedMemory }

// HugetlbAvailable reports whether container cgroups can take hugepage
// limits: a hugetlb v1 hierarchy, or hugetlb among the v2 controllers on a
// unified host. Spec generators should leave hugepage limits out when it
// is false, as containerd does: external runtimes refuse them.
func HugetlbAvailable() bool { return hostCgroups().hugetlb }
