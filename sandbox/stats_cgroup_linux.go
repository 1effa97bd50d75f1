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
//	memory/memory.stat                       memory.max ("max"), memory.stat
//	  hierarchical_memory_limit,               inactive_file, anon, pgfault,
//	  total_inactive_file, total_rss,          pgmajfault
//	  total_pgfault, total_pgmajfault
//	pids/pids.current                        pids.current
//
// The files stay open between samples and are reread with one pread each:
// opening, reading and closing a cgroup file anew costs about 30 µs here,
// a pread 4 to 12 µs, and a list of 100 containers reads 300 of them. The
// cgroup of a container that stopped is closed at its next sample, and
// that of a container or pod when it is removed (statsState.remove). An
// open file does not keep a cgroup from being removed: its reads then
// fail with ENODEV.
//
// The working set is usage less inactive file pages, as kubelet, cAdvisor
// and containerd count it; available is the limit less the working set,
// and 0 without a limit. On v1 the limit is the hierarchical one, so a
// container without a limit of its own in a pod with one has the pod's.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/berth-runtime/berth/oci"
	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"
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
	// nanoCores is the average CPU use since the sample before, in
	// nanoseconds of CPU per second; none for a first sample.
	nanoCores    uint64
	hasNanoCores bool
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

// locateCgroup finds the directories of a cgroup from its path: a pod's
// cgroup (a path under every hierarchy for cgroupfs, a slice for systemd)
// or a container's cgroups path ("slice:prefix:name", a scope, for
// systemd), read by oci.CgroupDir.
func (m *Manager) locateCgroup(p string) (cgroupDirs, error) {
	dir, err := oci.CgroupDir(p, m.cfg.CgroupDriver == "systemd")
	if err != nil {
		return cgroupDirs{}, err
	}
	// Any driver's cgroup is a directory in each hierarchy: the cgroupfs
	// manager finds them, and is never applied here.
	mgr, err := cgmanager.New(&cgroups.Cgroup{Path: dir, Resources: &cgroups.Resources{SkipDevices: true}})
	if err != nil {
		return cgroupDirs{}, fmt.Errorf("cgroup %s: %w", p, err)
	}
	paths := mgr.GetPaths()
	if cgroups.IsCgroup2UnifiedMode() { // not paths[""]: hybrid v1 has one too
		d := paths[""]
		return cgroupDirs{v2: true, cpu: d, memory: d, pids: d}, nil
	}
	return cgroupDirs{cpu: paths["cpuacct"], memory: paths["memory"], pids: paths["pids"]}, nil
}

// cgroupReader reads one cgroup's stat files, kept open. It is not safe
// for concurrent use.
type cgroupReader struct {
	v2 bool
	// The files, nil where the controller is not mounted (memLimit also
	// on v1, where memory.stat has the limit).
	cpu, memUsage, memLimit, memStat, pids *statFile
}

// statBufs are the buffers cgroup files are read into: one per read in
// flight rather than one per container.
var statBufs = sync.Pool{New: func() any { return new([16 << 10]byte) }}

func newCgroupReader(d cgroupDirs) *cgroupReader {
	r := &cgroupReader{v2: d.v2}
	file := func(dir, name string) *statFile {
		if dir == "" {
			return nil
		}
		return &statFile{path: filepath.Join(dir, name)}
	}
	if d.v2 {
		r.cpu = file(d.cpu, "cpu.stat")
		r.memUsage, r.memLimit = file(d.memory, "memory.current"), file(d.memory, "memory.max")
	} else {
		r.cpu = file(d.cpu, "cpuacct.usage")
		r.memUsage = file(d.memory, "memory.usage_in_bytes")
	}
	r.memStat = file(d.memory, "memory.stat")
	r.pids = file(d.pids, "pids.current")
	return r
}

// close closes the files; the reader opens them again if read again.
func (r *cgroupReader) close() {
	for _, f := range []*statFile{r.cpu, r.memUsage, r.memLimit, r.memStat, r.pids} {
		f.close()
	}
}

// read samples the cgroup and counts its tasks. A controller
// that is not mounted leaves its part out; a cgroup that is gone (its
// container exited and was cleaned up) is an error wrapping
// os.ErrNotExist.
func (r *cgroupReader) read() (cgroupSample, error) {
	buf := statBufs.Get().(*[16 << 10]byte)
	defer statBufs.Put(buf)
	s := cgroupSample{at: time.Now()}
	if r.cpu != nil {
		data, err := r.cpu.read(buf[:])
		if err != nil {
			return s, err
		}
		if r.v2 {
			usec, ok := statValue(data, "usage_usec")
			if !ok {
				return s, fmt.Errorf("%s: no usage_usec", r.cpu.path)
			}
			s.cpuNanos = usec * 1000
		} else if s.cpuNanos, err = parseUint(r.cpu.path, data); err != nil {
			return s, err
		}
		s.hasCPU = true
	}
	if r.memStat != nil {
		var err error
		if s.memory, err = r.readMemory(buf[:]); err != nil {
			return s, err
		}
		s.hasMem = true
	}
	if r.pids != nil {
		data, err := r.pids.read(buf[:])
		if err != nil {
			return s, err
		}
		if s.pids, err = parseUint(r.pids.path, data); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (r *cgroupReader) readMemory(buf []byte) (memorySample, error) {
	var s memorySample
	data, err := r.memUsage.read(buf)
	if err != nil {
		return s, err
	}
	if s.usage, err = parseUint(r.memUsage.path, data); err != nil {
		return s, err
	}
	if r.memLimit != nil {
		if data, err = r.memLimit.read(buf); err != nil {
			return s, err
		}
		if s.limit, err = parseUint(r.memLimit.path, data); err != nil {
			return s, err
		}
	}
	if data, err = r.memStat.read(buf); err != nil {
		return s, err
	}
	inactive, rss, pgfault, pgmajfault := "inactive_file", "anon", "pgfault", "pgmajfault"
	if !r.v2 {
		s.limit, _ = statValue(data, "hierarchical_memory_limit")
		inactive, rss, pgfault, pgmajfault = "total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault"
	}
	if s.limit >= unlimitedMemory {
		s.limit = 0
	}
	s.inactiveFile, _ = statValue(data, inactive)
	s.rss, _ = statValue(data, rss)
	s.pageFaults, _ = statValue(data, pgfault)
	s.majorPageFaults, _ = statValue(data, pgmajfault)
	return s, nil
}

// statFile is a cgroup file kept open and reread from its start.
type statFile struct {
	path string
	f    *os.File
	fd   int
}

// read rereads the file into buf and returns its content. A removed
// cgroup's file is an error wrapping os.ErrNotExist.
func (s *statFile) read(buf []byte) ([]byte, error) {
	if s.f == nil {
		f, err := os.Open(s.path)
		if err != nil {
			return nil, err
		}
		s.f, s.fd = f, int(f.Fd())
	}
	n, err := unix.Pread(s.fd, buf, 0)
	for errors.Is(err, unix.EINTR) {
		n, err = unix.Pread(s.fd, buf, 0)
	}
	if err != nil {
		s.close()
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("%w (cgroup removed)", os.ErrNotExist)
		}
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	if n == len(buf) {
		return nil, fmt.Errorf("read %s: larger than %d bytes", s.path, len(buf))
	}
	return buf[:n], nil
}

func (s *statFile) close() {
	if s != nil && s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// parseUint parses a cgroup file holding one number; "max" (v2's "no
// limit") reads as 0.
func parseUint(path string, data []byte) (uint64, error) {
	v := string(bytes.TrimSpace(data))
	if v == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
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
