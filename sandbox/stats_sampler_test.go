package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
)

// fakeCgroup is a directory holding a v2 cpu.stat that setCPU rewrites,
// and the stats state of a container or pod whose cgroup it is.
type fakeCgroup struct {
	dir string
	s   *statsState
}

func newFakeCgroup(t *testing.T, s *statsState) fakeCgroup {
	t.Helper()
	f := fakeCgroup{dir: t.TempDir(), s: s}
	f.setCPU(t, 1000)
	s.cgroup = newCgroupReader(cgroupDirs{v2: true, cpu: f.dir})
	t.Cleanup(s.remove)
	return f
}

// fakeContainer is a container in state with a fake cgroup.
func fakeContainer(t *testing.T, id string, state containerState) (*Container, fakeCgroup) {
	c := &Container{id: id, status: containerStatus{State: state}}
	f := newFakeCgroup(t, &c.stats)
	c.cgroupsPath = f.dir
	return c, f
}

// fakePod is a pod in state with a fake cgroup.
func fakePod(t *testing.T, id, state string) (*Pod, fakeCgroup) {
	p := &Pod{id: id, state: state}
	f := newFakeCgroup(t, &p.stats)
	p.cgroup = f.dir
	return p, f
}

// setCPU writes usec microseconds of CPU time into cpu.stat.
func (f fakeCgroup) setCPU(t *testing.T, usec int) {
	t.Helper()
	data := []byte("usage_usec " + strconv.Itoa(usec) + "\n")
	if err := os.WriteFile(filepath.Join(f.dir, "cpu.stat"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f fakeCgroup) last() cgroupSample {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.s.last
}

// ask marks the state asked about now, as a stats call does.
func (f fakeCgroup) ask() {
	f.s.mu.Lock()
	f.s.asked = time.Now()
	f.s.mu.Unlock()
}

func samplerManager(period, idle time.Duration, cs []*Container, ps []*Pod) *Manager {
	m := &Manager{log: zap.NewNop(), containers: map[string]*Container{}, pods: map[string]*Pod{}, sampler: newStatsSampler(period), bg: newBackground()}
	m.sampler.idle = idle
	for _, c := range cs {
		m.containers[c.id] = c
	}
	for _, p := range ps {
		m.pods[p.id] = p
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

func TestWithoutAPeriodEveryStatsCallReadsTheCgroup(t *testing.T) {
	c, f := fakeContainer(t, "a", stateRunning)
	m := samplerManager(0, time.Minute, []*Container{c}, nil)
	defer m.bg.close()
	for _, usec := range []int{1000, 2000, 3000} {
		f.setCPU(t, usec)
		x, err := m.cgroupStats(f.s, f.dir)
		if err != nil {
			t.Fatal(err)
		}
		if x.cpuNanos != uint64(usec)*1000 {
			t.Errorf("CPU %d ns, want the file's %d µs", x.cpuNanos, usec)
		}
	}
	if m.sampler.running.Load() {
		t.Error("a sampler runs with no period")
	}
}

// TestTheSamplerRefreshesWhatCallsAskAboutAndStopsWhenNobodyAsks: the
// first call reads and starts the sampler; the sampler then keeps the
// running container and ready pod that calls asked about fresh with no
// call made, and a call answers its sample; a container no call asked
// about, one that is not running and a pod that is not ready are never
// read; once nobody asks for idle the sampler stops, and the next call
// reads again and restarts it.
func TestTheSamplerRefreshesWhatCallsAskAboutAndStopsWhenNobodyAsks(t *testing.T) {
	const period, idle = 100 * time.Millisecond, time.Second
	asked, a := fakeContainer(t, "asked", stateRunning)
	unasked, u := fakeContainer(t, "unasked", stateRunning)
	created, cr := fakeContainer(t, "created", stateCreated)
	ready, rp := fakePod(t, "ready", podReady)
	stopped, sp := fakePod(t, "stopped", podNotReady)
	m := samplerManager(period, idle, []*Container{asked, unasked, created}, []*Pod{ready, stopped})
	defer m.bg.close()

	if x, err := m.cgroupStats(a.s, a.dir); err != nil || x.cpuNanos != 1e6 {
		t.Fatalf("first call: %d ns, %v; want a read of 1000 µs", x.cpuNanos, err)
	}
	if !m.sampler.running.Load() {
		t.Fatal("the first call started no sampler")
	}
	cr.ask()
	rp.ask()
	sp.ask()

	a.setCPU(t, 2000)
	rp.setCPU(t, 5000)
	eventually(t, "the sampler reads the container's new CPU time with no call", func() bool { return a.last().cpuNanos == 2e6 })
	eventually(t, "the sampler reads the ready pod's CPU time", func() bool { return rp.last().cpuNanos == 5e6 })
	before := time.Now()
	x, err := m.cgroupStats(a.s, a.dir)
	if err != nil {
		t.Fatal(err)
	}
	if x.cpuNanos != 2e6 || !x.at.Before(before) {
		t.Errorf("call answered %d ns sampled at %v, want the sampler's 2000 µs taken before the call (%v)", x.cpuNanos, x.at, before)
	}
	if !x.hasNanoCores {
		t.Error("the sampler's second sample has no CPU rate")
	}
	for name, f := range map[string]fakeCgroup{"a container no call asked about": u, "a container not running": cr, "a pod not ready": sp} {
		if !f.last().at.IsZero() {
			t.Errorf("the sampler read %s", name)
		}
	}

	eventually(t, "the sampler stops once nobody asks", func() bool { return !m.sampler.running.Load() })
	a.setCPU(t, 3000)
	time.Sleep(3 * period)
	if got := a.last().cpuNanos; got != 2e6 {
		t.Errorf("a stopped sampler read %d ns", got)
	}
	if x, err := m.cgroupStats(a.s, a.dir); err != nil || x.cpuNanos != 3e6 {
		t.Errorf("call after the sampler stopped: %d ns, %v; want a read of 3000 µs", x.cpuNanos, err)
	}
	if !m.sampler.running.Load() {
		t.Error("a call after the sampler stopped did not start it again")
	}
}

// TestTheSamplerOpensNoCgroup: a container that stopped after a call asked
// about it has its files closed by the next call (release); the sampler,
// which may still take it for running, must not open them again.
func TestTheSamplerOpensNoCgroup(t *testing.T) {
	const period = 20 * time.Millisecond
	c, f := fakeContainer(t, "a", stateRunning)
	m := samplerManager(period, time.Minute, []*Container{c}, nil)
	defer m.bg.close()
	if _, err := m.cgroupStats(f.s, f.dir); err != nil {
		t.Fatal(err)
	}
	f.s.release()
	time.Sleep(5 * period)
	f.s.mu.Lock()
	reopened := f.s.cgroup != nil
	f.s.mu.Unlock()
	if reopened {
		t.Error("the sampler opened a released cgroup again")
	}
}

func TestStoppingTheSamplerEndsItAndKeepsItDown(t *testing.T) {
	c, f := fakeContainer(t, "a", stateRunning)
	m := samplerManager(time.Millisecond, time.Hour, []*Container{c}, nil)
	if _, err := m.cgroupStats(f.s, f.dir); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { m.bg.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	if m.sampler.running.Load() {
		t.Error("the sampler still counts as running after stop")
	}
	m.sampler.wake(m)
	if m.sampler.running.Load() {
		t.Error("a stopped sampler started again")
	}
}
