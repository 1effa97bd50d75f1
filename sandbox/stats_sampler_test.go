package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
)

// fakeCgroupContainer is a container in state whose cgroup is a directory
// holding a v2 cpu.stat that setCPU rewrites.
type fakeCgroupContainer struct {
	c   *Container
	dir string
}

func newFakeCgroupContainer(t *testing.T, id string, state containerState) fakeCgroupContainer {
	t.Helper()
	f := fakeCgroupContainer{dir: t.TempDir()}
	f.setCPU(t, 1000)
	f.c = &Container{id: id, cgroupsPath: f.dir, status: containerStatus{State: state}}
	f.c.stats.cgroup = newCgroupReader(cgroupDirs{v2: true, cpu: f.dir})
	t.Cleanup(f.c.stats.remove)
	return f
}

// setCPU writes usec microseconds of CPU time into cpu.stat.
func (f fakeCgroupContainer) setCPU(t *testing.T, usec int) {
	t.Helper()
	data := []byte("usage_usec " + strconv.Itoa(usec) + "\n")
	if err := os.WriteFile(filepath.Join(f.dir, "cpu.stat"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f fakeCgroupContainer) last() cgroupSample {
	f.c.stats.mu.Lock()
	defer f.c.stats.mu.Unlock()
	return f.c.stats.last
}

func samplerManager(period, idle time.Duration, cs ...*Container) *Manager {
	m := &Manager{log: zap.NewNop(), containers: map[string]*Container{}, pods: map[string]*Pod{}, sampler: newStatsSampler(period)}
	m.sampler.idle = idle
	for _, c := range cs {
		m.containers[c.id] = c
	}
	return m
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

func (s *statsSampler) isRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

func TestWithoutAPeriodEveryStatsCallReadsTheCgroup(t *testing.T) {
	f := newFakeCgroupContainer(t, "a", stateRunning)
	m := samplerManager(0, time.Minute, f.c)
	defer m.sampler.stop()
	for _, usec := range []int{1000, 2000, 3000} {
		f.setCPU(t, usec)
		x, err := m.cgroupStats(&f.c.stats, f.dir)
		if err != nil {
			t.Fatal(err)
		}
		if x.cpuNanos != uint64(usec)*1000 {
			t.Errorf("CPU %d ns, want the file's %d µs", x.cpuNanos, usec)
		}
	}
	if m.sampler.isRunning() {
		t.Error("a sampler runs with no period")
	}
}

// TestTheSamplerRefreshesWhatCallsAskAboutAndStopsWhenNobodyAsks: the
// first call reads and starts the sampler; the sampler then keeps the
// running container a call asked about fresh with no call made, and a
// call answers its sample; a container no call asked about and one that
// is not running are never read; once nobody asks for idle the sampler
// stops, and the next call reads again and restarts it.
func TestTheSamplerRefreshesWhatCallsAskAboutAndStopsWhenNobodyAsks(t *testing.T) {
	const period, idle = 10 * time.Millisecond, 300 * time.Millisecond
	asked := newFakeCgroupContainer(t, "asked", stateRunning)
	unasked := newFakeCgroupContainer(t, "unasked", stateRunning)
	created := newFakeCgroupContainer(t, "created", stateCreated)
	m := samplerManager(period, idle, asked.c, unasked.c, created.c)
	defer m.sampler.stop()

	if x, err := m.cgroupStats(&asked.c.stats, asked.dir); err != nil || x.cpuNanos != 1e6 {
		t.Fatalf("first call: %d ns, %v; want a read of 1000 µs", x.cpuNanos, err)
	}
	created.c.stats.mu.Lock()
	created.c.stats.asked = time.Now()
	created.c.stats.mu.Unlock()
	if !m.sampler.isRunning() {
		t.Fatal("the first call started no sampler")
	}

	asked.setCPU(t, 2000)
	eventually(t, "the sampler reads the new CPU time with no call", func() bool { return asked.last().cpuNanos == 2e6 })
	before := time.Now()
	x, err := m.cgroupStats(&asked.c.stats, asked.dir)
	if err != nil {
		t.Fatal(err)
	}
	if x.cpuNanos != 2e6 || !x.at.Before(before) {
		t.Errorf("call answered %d ns sampled at %v, want the sampler's 2000 µs taken before the call (%v)", x.cpuNanos, x.at, before)
	}
	if !x.hasNanoCores {
		t.Error("the sampler's second sample has no CPU rate")
	}
	if !unasked.last().at.IsZero() || !created.last().at.IsZero() {
		t.Error("the sampler read a container no call asked about, or one not running")
	}

	eventually(t, "the sampler stops once nobody asks", func() bool { return !m.sampler.isRunning() })
	asked.setCPU(t, 3000)
	time.Sleep(5 * period)
	if got := asked.last().cpuNanos; got != 2e6 {
		t.Errorf("a stopped sampler read %d ns", got)
	}
	if x, err := m.cgroupStats(&asked.c.stats, asked.dir); err != nil || x.cpuNanos != 3e6 {
		t.Errorf("call after the sampler stopped: %d ns, %v; want a read of 3000 µs", x.cpuNanos, err)
	}
	if !m.sampler.isRunning() {
		t.Error("a call after the sampler stopped did not start it again")
	}
}

func TestStoppingTheSamplerEndsItAndKeepsItDown(t *testing.T) {
	f := newFakeCgroupContainer(t, "a", stateRunning)
	m := samplerManager(time.Millisecond, time.Hour, f.c)
	if _, err := m.cgroupStats(&f.c.stats, f.dir); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { m.sampler.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	if m.sampler.isRunning() {
		t.Error("the sampler still counts as running after stop")
	}
	m.sampler.wake(m)
	if m.sampler.isRunning() {
		t.Error("a stopped sampler started again")
	}
}
