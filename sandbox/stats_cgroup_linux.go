package sandbox

// Reading a cgroup's CPU, memory and process figures for the CRI stats.
//
// kubelet (and the benchmark) poll ListContainerStats every second or so,
// so this reads only the few files the CRI reports, not the library's
// GetStats (which reads every controller's every file):
//
//	v1 (also hybrid)                         v2
//	cpuacct/cpuacct.usage      ns            cpu.stat usage_usec        µs
//	memory/memory.usage_in_bytes             memory.current
//	memory/memory.limit_in_bytes             memory.max ("max")
//	memory/memory.stat total_inactive_file,  memory.stat inactive_file, anon,
//	  total_rss, total_pgfault,                pgfault, pgmajfault
//	  total_pgmajfault
//	pids/pids.current                        pids.current
//
// The working set is usage less inactive file pages, as kubelet, cAdvisor
// and containerd count it; available is the limit less the working set,
// and 0 without a limit.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
)

// cgroupDirs are where one cgroup's stat files are, per controller. On v2
// the three are the one unified directory. "" is a controller not mounted.
type cgroupDirs struct {
	v2                bool
	cpu, memory, pids string
}

// cgroupSample is what one read of a cgroup found.
type cgroupSample struct {
	at time.Time
	// cpuNanos is the cumulative CPU time of every task, on every core.
	cpuNanos uint64
	hasCPU   bool
	memory   memorySample
	hasMem   bool
	pids     uint64
}

// memorySample is a cgroup's memory, in bytes except the fault counters.
type memorySample struct {
	usage, limit, inactiveFile, rss uint64 // limit 0: none
	pageFaults, majorPageFaults     uint64
}

// unlimitedMemory is where a v1 memory limit means none: the kernel
// rounds "-1" down to a page multiple near 2^63.
const unlimitedMemory = 1 << 62

func (s memorySample) workingSet() uint64 {
	if s.inactiveFile >= s.usage {
		return 0
	}
	return s.usage - s.inactiveFile
}

func (s memorySample) available() uint64 {
	ws := s.workingSet()
	if s.limit == 0 || s.limit <= ws {
		return 0
	}
	return s.limit - ws
}

// cgroupDirsOf finds the directories of a cgroup from the library's
// manager of it.
func cgroupDirsOf(mgr cgroups.Manager) cgroupDirs {
	paths := mgr.GetPaths()
	if cgroups.IsCgroup2UnifiedMode() {
		d := paths[""]
		return cgroupDirs{v2: true, cpu: d, memory: d, pids: d}
	}
	return cgroupDirs{cpu: paths["cpuacct"], memory: paths["memory"], pids: paths["pids"]}
}

// containerCgroupDirs locates the cgroup a container's runtime made from
// its spec's cgroups path: a path under every hierarchy for cgroupfs,
// "slice:prefix:name" for systemd.
func (m *Manager) containerCgroupDirs(cgroupsPath string) (cgroupDirs, error) {
	if m.cfg.CgroupDriver != "systemd" {
		mgr, err := m.cgroupManager(cgroupsPath, nil)
		if err != nil {
			return cgroupDirs{}, err
		}
		return cgroupDirsOf(mgr), nil
	}
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 {
		return cgroupDirs{}, fmt.Errorf("systemd cgroups path %q: want slice:prefix:name", cgroupsPath)
	}
	if _, err := systemd.ExpandSlice(parts[0]); err != nil {
		return cgroupDirs{}, fmt.Errorf("systemd cgroups path %q: %w", cgroupsPath, err)
	}
	mgr, err := cgmanager.New(&cgroups.Cgroup{
		Parent: parts[0], ScopePrefix: parts[1], Name: parts[2], Systemd: true,
		Resources: &cgroups.Resources{SkipDevices: true},
	})
	if err != nil {
		return cgroupDirs{}, fmt.Errorf("cgroup %s: %w", cgroupsPath, err)
	}
	return cgroupDirsOf(mgr), nil
}

// readCgroup samples the cgroup in d. withPids also counts its tasks.
// A controller that is not mounted leaves its part out; a cgroup that is
// gone (its container exited and was cleaned up) is an error wrapping
// os.ErrNotExist.
func readCgroup(d cgroupDirs, withPids bool) (cgroupSample, error) {
	s := cgroupSample{at: time.Now()}
	var err error
	if d.cpu != "" {
		if s.cpuNanos, err = readCPU(d); err != nil {
			return s, err
		}
		s.hasCPU = true
	}
	if d.memory != "" {
		if s.memory, err = readMemory(d); err != nil {
			return s, err
		}
		s.hasMem = true
	}
	if withPids && d.pids != "" {
		if s.pids, err = readUintFile(filepath.Join(d.pids, "pids.current")); err != nil {
			return s, err
		}
	}
	return s, nil
}

func readCPU(d cgroupDirs) (uint64, error) {
	if !d.v2 {
		return readUintFile(filepath.Join(d.cpu, "cpuacct.usage"))
	}
	data, err := os.ReadFile(filepath.Join(d.cpu, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	usec, ok := statValue(data, "usage_usec")
	if !ok {
		return 0, fmt.Errorf("%s: no usage_usec", filepath.Join(d.cpu, "cpu.stat"))
	}
	return usec * 1000, nil
}

func readMemory(d cgroupDirs) (memorySample, error) {
	var s memorySample
	usageFile, limitFile := "memory.current", "memory.max"
	inactive, rss, pgfault, pgmajfault := "inactive_file", "anon", "pgfault", "pgmajfault"
	if !d.v2 {
		usageFile, limitFile = "memory.usage_in_bytes", "memory.limit_in_bytes"
		inactive, rss, pgfault, pgmajfault = "total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault"
	}
	var err error
	if s.usage, err = readUintFile(filepath.Join(d.memory, usageFile)); err != nil {
		return s, err
	}
	if s.limit, err = readUintFile(filepath.Join(d.memory, limitFile)); err != nil {
		return s, err
	}
	if s.limit >= unlimitedMemory {
		s.limit = 0
	}
	data, err := os.ReadFile(filepath.Join(d.memory, "memory.stat"))
	if err != nil {
		return s, err
	}
	s.inactiveFile, _ = statValue(data, inactive)
	s.rss, _ = statValue(data, rss)
	s.pageFaults, _ = statValue(data, pgfault)
	s.majorPageFaults, _ = statValue(data, pgmajfault)
	return s, nil
}

// readUintFile reads a cgroup file holding one number; "max" (v2's "no
// limit") reads as 0.
func readUintFile(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(data))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// statValue finds "key value" in a flat-keyed cgroup file (memory.stat,
// cpu.stat).
func statValue(data []byte, key string) (uint64, bool) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok || len(rest) == 0 || rest[0] != ' ' {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
		return n, err == nil
	}
	return 0, false
}
