package sandbox

// Container and pod stats for the CRI's ContainerStats, ListContainerStats,
// PodSandboxStats and ListPodSandboxStats.
//
// kubelet polls the list calls; Berth answers them from the cgroups, the
// pods' network namespaces and the writable layers, keeping between calls
// only, per container and pod (statsState):
//
//   - its cgroup's stat files, found once and kept open while it runs
//     (stats_cgroup_linux.go);
//   - its last sample of the cgroup, with usage_nano_cores, the average
//     CPU use since the sample before (none for the first, as in
//     containerd and cAdvisor). With a collection period (the default, as
//     CRI-O's stats_collection_period), a call answers a sample younger
//     than two periods as it is, and a sampler refreshes, each period,
//     every running container and ready pod a stats call asked about in
//     the last statsIdle (stats_sampler.go): a poll copies samples and
//     reads no cgroup. Without one, every call reads;
//   - its last walk of the writable layer. A walk is reused for
//     layerMinAge, or for 100 times as long as it took when that is
//     longer (at most layerMaxAge): a container writing many small files
//     costs a walk now and then, never a walk per poll. A stale walk is
//     answered while the next one runs in the background, so that no
//     poll waits on a walk (the p99 of ListContainerStats did). Those
//     background walks run one at a time (background.go).
//
// A container that is not running reports its attributes and writable
// layer but no CPU or memory, as containerd does. One that exits or goes
// away while a list is made is reported without them, never failing the
// list.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-runtime/berth/image"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Bounds of how long a walk of a writable layer is reused.
const (
	layerMinAge = 2 * time.Second
	layerMaxAge = time.Minute
)

// statsState is what the stats calls keep of a container or pod.
type statsState struct {
	// mu guards the fields below.
	mu      sync.Mutex
	cgroup  *cgroupReader // nil until first needed, and after the container stopped
	removed bool          // its container or pod was removed: open nothing again
	last    cgroupSample  // the last sample; at is zero when there is none
	asked   time.Time     // when a stats call last asked about it

	// layerMu guards the last walk of the writable layer (containers
	// only) and the walk running, if any.
	layerMu   sync.Mutex
	layer     image.Filesystem
	layerTook time.Duration
	layerWalk chan struct{} // closed when the running walk ends; nil when none runs
}

// cgroupStats answers s's cgroup, the one at cgroupPath (a container's
// cgroups path or a pod's cgroup): its last sample while that is fresh
// (taken by the sampler, or by a call just before), else a new one,
// locating the cgroup the first time. Once s's owner is removed it reads
// nothing: an error wrapping os.ErrNotExist.
func (m *Manager) cgroupStats(s *statsState, cgroupPath string) (cgroupSample, error) {
	m.sampler.wake(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.asked = now
	if m.sampler.fresh(s.last.at, now) {
		return s.last, nil
	}
	if s.removed {
		return cgroupSample{}, fmt.Errorf("cgroup %s: %w (removed)", cgroupPath, os.ErrNotExist)
	}
	if s.cgroup == nil {
		d, err := m.locateCgroup(cgroupPath)
		if err != nil {
			return cgroupSample{}, err
		}
		s.cgroup = newCgroupReader(d)
	}
	return s.readLocked()
}

// refresh rereads s's cgroup for the sampler if its files are open. The
// sampler never locates a cgroup, so that it opens nothing of a container
// that stopped since a call last asked about it.
func (s *statsState) refresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed || s.cgroup == nil {
		return nil
	}
	_, err := s.readLocked()
	return err
}

// readLocked reads the open cgroup and keeps the sample. A failed read
// closes every file of the cgroup (the next call locates it again) and
// forgets the last sample, so that nothing answers for a cgroup that is
// gone. s.mu is held.
func (s *statsState) readLocked() (cgroupSample, error) {
	x, err := s.cgroup.read()
	if err != nil {
		s.cgroup.close()
		s.cgroup = nil
		s.last = cgroupSample{}
		return x, err
	}
	if x.hasCPU {
		x.nanoCores, x.hasNanoCores = s.nanoCores(x.cpuNanos, x.at)
	}
	s.last = x
	return x, nil
}

// release closes the cgroup's files, if open, and forgets the last
// sample; a later sample opens them again.
func (s *statsState) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cgroup != nil {
		s.cgroup.close()
		s.cgroup = nil
	}
	s.last = cgroupSample{}
}

// remove closes the cgroup's files for good: the container or pod is
// removed, and a stats call still holding it must not open them again.
func (s *statsState) remove() {
	s.mu.Lock()
	s.removed = true
	s.mu.Unlock()
	s.release()
}

// nanoCores returns the average CPU use, in nanoseconds of CPU per second,
// between the last sample and a new one of cpu at at; false when there is
// no last sample, when the counter went backwards (the cgroup was made
// anew), or when no time passed. s.mu is held.
func (s *statsState) nanoCores(cpu uint64, at time.Time) (uint64, bool) {
	prev := s.last
	if prev.at.IsZero() || !prev.hasCPU || !at.After(prev.at) || cpu < prev.cpuNanos {
		return 0, false
	}
	return uint64(float64(cpu-prev.cpuNanos) / float64(at.Sub(prev.at)) * float64(time.Second)), true
}

// layerFresh is how long a walk that took took is reused.
func layerFresh(took time.Duration) time.Duration {
	return min(max(layerMinAge, 100*took), layerMaxAge)
}

// writableLayer reports the container's writable layer from its last walk
// (see statsState.layerUsage); exited, when not zero, is when the container
// exited.
func (m *Manager) writableLayer(ctx context.Context, c *Container, exited time.Time) *runtimeapi.FilesystemUsage {
	l := c.stats.layerUsage(ctx, m.bg, exited, func(ctx context.Context) (image.Filesystem, error) {
		fs, err := m.images.SnapshotUsage(ctx, c.id)
		if err != nil && !errdefs.IsNotFound(err) && !errors.Is(err, context.Canceled) { // canceled: berthd is closing
			m.log.Warn("writable layer usage", zap.String("container", c.id), zap.Error(err))
		}
		return fs, err
	})
	if l.Timestamp.IsZero() {
		l.Timestamp = time.Now()
	}
	return &runtimeapi.FilesystemUsage{
		Timestamp:  l.Timestamp.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: l.Mountpoint},
		UsedBytes:  &runtimeapi.UInt64Value{Value: l.UsedBytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: l.InodesUsed},
	}
}

// layerUsage returns the last walk of the writable layer. When it is older
// than layerFresh allows, a new walk starts in the background and the old
// one is answered meanwhile, with its own timestamp: a poll never waits for
// a walk, except the container's first, which has nothing to answer with.
// One walk of a container runs at a time; callers share it, so it runs on
// bg, not on the caller's context, and ends with the Manager. A first walk
// starts at once, since a call waits for it; a later one queues for bg's
// worker, behind other containers' walks. A walk made after the container
// exited (exited, when not zero) stays true, and is never redone.
func (s *statsState) layerUsage(ctx context.Context, bg *background, exited time.Time, walk func(context.Context) (image.Filesystem, error)) image.Filesystem {
	s.layerMu.Lock()
	first := s.layer.Timestamp.IsZero()
	stale := first ||
		(time.Since(s.layer.Timestamp) > layerFresh(s.layerTook) && (exited.IsZero() || !s.layer.Timestamp.After(exited)))
	if stale && s.layerWalk == nil {
		done := make(chan struct{})
		run := func(bctx context.Context) {
			start := time.Now()
			fs, err := walk(bctx)
			s.layerMu.Lock()
			if err == nil {
				s.layer, s.layerTook = fs, time.Since(start)
			}
			s.layerWalk = nil
			s.layerMu.Unlock()
			close(done)
		}
		launch := bg.enqueue
		if first {
			launch = bg.goRun
		}
		if launch(run) {
			s.layerWalk = done
		}
	}
	l, running := s.layer, s.layerWalk
	s.layerMu.Unlock()
	if l.Timestamp.IsZero() && running != nil {
		select {
		case <-running:
		case <-ctx.Done():
		}
		s.layerMu.Lock()
		l = s.layer
		s.layerMu.Unlock()
	}
	return l
}

// cgroupUsage turns a cgroup sample into the CRI's CPU and memory usage.
func cgroupUsage(x cgroupSample) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage) {
	var cpu *runtimeapi.CpuUsage
	var mem *runtimeapi.MemoryUsage
	ts := x.at.UnixNano()
	if x.hasCPU {
		cpu = &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: x.cpuNanos}}
		if x.hasNanoCores {
			cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: x.nanoCores}
		}
	}
	if x.hasMem {
		mx := x.memory
		mem = &runtimeapi.MemoryUsage{
			Timestamp:       ts,
			WorkingSetBytes: &runtimeapi.UInt64Value{Value: mx.workingSet()},
			AvailableBytes:  &runtimeapi.UInt64Value{Value: mx.available()},
			UsageBytes:      &runtimeapi.UInt64Value{Value: mx.usage},
			RssBytes:        &runtimeapi.UInt64Value{Value: mx.rss},
			PageFaults:      &runtimeapi.UInt64Value{Value: mx.pageFaults},
			MajorPageFaults: &runtimeapi.UInt64Value{Value: mx.majorPageFaults},
		}
	}
	return cpu, mem
}

// containerStats reports c and returns its task count. The stats are there
// even with an error: what could be read.
func (m *Manager) containerStats(ctx context.Context, c *Container) (*runtimeapi.ContainerStats, uint64, error) {
	cfg := c.config
	st := c.snapshot()
	var exited time.Time
	if st.State == stateExited {
		exited = st.FinishedAt
	}
	out := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: c.id, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		},
		WritableLayer: m.writableLayer(ctx, c, exited),
	}
	if st.State != stateRunning {
		c.stats.release()
		return out, 0, nil
	}
	x, err := m.cgroupStats(&c.stats, c.cgroupsPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return out, 0, nil // it exited and its cgroup went meanwhile
		}
		return out, 0, fmt.Errorf("cgroup of container %s: %w", c.id, err)
	}
	out.Cpu, out.Memory = cgroupUsage(x)
	return out, x.pids, nil
}

// ContainerStats reports the container of an ID or unique ID prefix.
func (m *Manager) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	c, err := m.containerByID(id)
	if err != nil {
		return nil, err
	}
	out, _, err := m.containerStats(ctx, c)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListContainerStats reports the containers f selects, as ListContainers
// selects them (ID and pod ID prefixes, labels), oldest first. A container
// whose cgroup cannot be read is listed without CPU and memory.
func (m *Manager) ListContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
	m.mu.RLock()
	cf, ok := m.resolveContainerFilter(&runtimeapi.ContainerFilter{Id: f.GetId(), PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()})
	if !ok {
		m.mu.RUnlock()
		return nil
	}
	var sel []*Container
	for _, c := range m.containers {
		if matchContainer(c, stateUnknown, cf) { // cf has no state to match
			sel = append(sel, c)
		}
	}
	m.mu.RUnlock()
	return m.statsOf(ctx, sel, nil)
}

// statsOf reports containers, oldest first, adding their task counts to
// pids when it is not nil.
func (m *Manager) statsOf(ctx context.Context, cs []*Container, pids *uint64) []*runtimeapi.ContainerStats {
	sort.Slice(cs, func(i, j int) bool { return cs[i].createdAt.Before(cs[j].createdAt) })
	out := make([]*runtimeapi.ContainerStats, len(cs))
	counts := make([]uint64, len(cs))
	eachCgroup(len(cs), func(i int) {
		st, n, err := m.containerStats(ctx, cs[i])
		if err != nil {
			m.log.Warn("container stats", zap.String("container", cs[i].id), zap.Error(err))
		}
		out[i], counts[i] = st, n
	})
	if pids != nil {
		for _, n := range counts {
			*pids += n
		}
	}
	return out
}

// eachCgroup calls read(i) for i in [0, n). Reading a cgroup's files is
// kernel time (v1's memory.stat most), about 25 µs a cgroup here, so a
// long list is read by one goroutine a CPU.
func eachCgroup(n int, read func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/statsPerWorker)
	if workers < 2 {
		for i := range n {
			read(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				read(i)
			}
		})
	}
	wg.Wait()
}

// statsPerWorker is how many cgroups make reading them from another
// goroutine worth it.
const statsPerWorker = 16

// PodStats reports the pod of an ID or unique ID prefix: its cgroup's CPU
// and memory, its network interfaces, and its containers. A pod that is
// not ready has no stats (FailedPrecondition).
func (m *Manager) PodStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	p, err := m.podByID(id)
	if err != nil {
		return nil, err
	}
	s, err := m.podStats(ctx, p)
	if err != nil {
		return nil, err
	}
	return s.stats, nil
}

// ListPodStats reports the ready pods f selects (ID or unique prefix,
// labels). A pod whose stats fail is left out and logged.
func (m *Manager) ListPodStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) []*runtimeapi.PodSandboxStats {
	samples := m.listPodSamples(ctx, f)
	out := make([]*runtimeapi.PodSandboxStats, 0, len(samples))
	for _, s := range samples {
		out = append(out, s.stats)
	}
	return out
}

// podSample is a pod's stats with its interfaces' counters, which
// ListPodSandboxMetrics sends more of than the stats can hold.
type podSample struct {
	stats *runtimeapi.PodSandboxStats
	net   *podNetwork // nil for a pod in the host's network
}

// listPodSamples samples the ready pods f selects, oldest first.
func (m *Manager) listPodSamples(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) []podSample {
	ready := true
	infos := m.ListPods(PodFilter{ID: f.GetId(), Labels: f.GetLabelSelector(), State: &ready})
	sort.Slice(infos, func(i, j int) bool { return infos[i].CreatedAt.Before(infos[j].CreatedAt) })
	out := make([]podSample, 0, len(infos))
	for _, info := range infos {
		m.mu.RLock()
		p := m.pods[info.ID]
		m.mu.RUnlock()
		if p == nil {
			continue // removed meanwhile
		}
		s, err := m.podStats(ctx, p)
		if err != nil {
			if !errdefs.IsFailedPrecondition(err) {
				m.log.Warn("pod sandbox stats", zap.String("sandbox", p.id), zap.Error(err))
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

func (m *Manager) podStats(ctx context.Context, p *Pod) (podSample, error) {
	if !p.ready() {
		p.stats.release()
		return podSample{}, fmt.Errorf("pod sandbox %s is not ready: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	cfg := p.config
	linux := &runtimeapi.LinuxPodSandboxStats{}
	out := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: p.id, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		},
		Linux: linux,
	}
	x, err := m.cgroupStats(&p.stats, p.cgroup)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// removed meanwhile: no CPU or memory
	case err != nil:
		return podSample{}, fmt.Errorf("cgroup of pod sandbox %s: %w", p.id, err)
	default:
		linux.Cpu, linux.Memory = cgroupUsage(x)
	}
	sample := podSample{stats: out}
	if ns := p.nsPath("net"); ns != "" {
		if sample.net, err = readPodNetwork(ns); err != nil {
			return podSample{}, fmt.Errorf("network of pod sandbox %s: %w", p.id, err)
		}
		linux.Network = sample.net.usage()
	}
	var pids uint64
	linux.Containers = m.statsOf(ctx, m.podContainers(p.id), &pids)
	linux.Process = &runtimeapi.ProcessUsage{Timestamp: time.Now().UnixNano(), ProcessCount: &runtimeapi.UInt64Value{Value: pids}}
	return sample, nil
}
