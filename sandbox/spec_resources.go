package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// setResources turns LinuxContainerResources into spec limits and the
// process's oom_score_adj.
func setResources(s *specs.Spec, r *runtimeapi.LinuxContainerResources, in specInput) error {
	if r == nil {
		return nil
	}
	adj := int(r.GetOomScoreAdj())
	if adj < -1000 || adj > 1000 {
		return fmt.Errorf("oom_score_adj %d: outside -1000..1000: %w", adj, errdefs.ErrInvalidArgument)
	}
	if in.RestrictOOM && adj < in.MinOOMScoreAdj {
		adj = in.MinOOMScoreAdj
	}
	s.Process.OOMScoreAdj = &adj
	return linuxResources(s.Linux.Resources, r, in)
}

// linuxResources fills res from r; UpdateContainerResources uses it too.
func linuxResources(res *specs.LinuxResources, r *runtimeapi.LinuxContainerResources, in specInput) error {
	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if v := r.GetCpuShares(); v > 0 {
		u := uint64(v)
		cpu.Shares = &u
	}
	if v := r.GetCpuQuota(); v != 0 {
		cpu.Quota = &v
	}
	if v := r.GetCpuPeriod(); v > 0 {
		u := uint64(v)
		cpu.Period = &u
	}
	if cpu.Shares != nil || cpu.Quota != nil || cpu.Period != nil || cpu.Cpus != "" || cpu.Mems != "" {
		res.CPU = cpu
	}
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		mem := &specs.LinuxMemory{Limit: &v}
		if in.SwapAccounting {
			// Kubernetes gives no swap unless it asks for some.
			swap := v
			if sw := r.GetMemorySwapLimitInBytes(); sw > 0 {
				if sw < v {
					return fmt.Errorf("memory swap limit %d is below the memory limit %d: %w", sw, v, errdefs.ErrInvalidArgument)
				}
				swap = sw
			}
			mem.Swap = &swap
		}
		res.Memory = mem
	}
	res.HugepageLimits = nil
	for _, h := range r.GetHugepageLimits() {
		if h.GetPageSize() == "" {
			return fmt.Errorf("hugepage limit without a page size: %w", errdefs.ErrInvalidArgument)
		}
		if in.Hugetlb {
			res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	if len(r.GetUnified()) == 0 {
		return nil
	}
	if in.Unified {
		res.Unified = map[string]string{}
		for k, v := range r.GetUnified() {
			res.Unified[k] = v
		}
		return nil
	}
	// On cgroup v1 the keys with a v1 equivalent are translated; the rest
	// cannot be honoured and are refused rather than dropped.
	for k, v := range r.GetUnified() {
		switch k {
		case "pids.max":
			n := int64(-1)
			if v != "max" {
				var err error
				if n, err = strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
					return fmt.Errorf("unified %s=%q: %w", k, v, errdefs.ErrInvalidArgument)
				}
			}
			res.Pids = &specs.LinuxPids{Limit: &n}
		case "memory.max":
			if v == "max" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return fmt.Errorf("unified %s=%q: %w", k, v, errdefs.ErrInvalidArgument)
			}
			if res.Memory == nil {
				res.Memory = &specs.LinuxMemory{}
			}
			res.Memory.Limit = &n
		default:
			return fmt.Errorf("unified cgroup key %q: this host's controllers are on cgroup v1: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// ownOOMScoreAdj is berthd's oom_score_adj, the floor for containers when
// the floor applies.
func ownOOMScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// hasCapSysResource says whether berthd may lower oom_score_adj below its
// own.
func hasCapSysResource() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0 // CAP_SYS_RESOURCE
		}
	}
	return false
}

// restrictOOM decides the clamp from Config.RestrictOOMScoreAdj.
func restrictOOM(setting string) (bool, error) {
	switch setting {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "", "auto":
		return !hasCapSysResource(), nil
	}
	return false, fmt.Errorf("restrict_oom_score_adj %q: want true, false or auto: %w", setting, errdefs.ErrInvalidArgument)
}
