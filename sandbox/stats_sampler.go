package sandbox

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// statsIdle is how long after the last stats call about a container or pod
// the sampler goes on refreshing it. kubelet polls every 10 s at least
// (its eviction manager), so a node it runs keeps its samples fresh; one
// nobody asks about costs nothing.
const statsIdle = time.Minute

// statsSampler reads, every period, the cgroups the stats calls asked
// about lately, so that kubelet's polls copy the last sample instead of
// reading 100 cgroups each: a ListContainerStats with 100 containers then
// takes what a ListContainers takes. This is what cAdvisor's housekeeping
// does (every 10 s in kubelet) and what CRI-O's stats_collection_period
// does; containerd reads on every call.
//
// The sampler runs only while there is something to refresh: the first
// stats call starts it, and it ends once no call asked about any running
// container or ready pod for idle.
type statsSampler struct {
	period time.Duration // 0: no sampler, every call reads the cgroups
	idle   time.Duration

	running atomic.Bool // set and cleared under mu
	mu      sync.Mutex
}

func newStatsSampler(period time.Duration) *statsSampler {
	return &statsSampler{period: period, idle: statsIdle}
}

// fresh says whether a sample taken at at may answer a call at now: with a
// sampler, one younger than two periods (the sampler keeps it within
// one); without, none.
func (s *statsSampler) fresh(at, now time.Time) bool {
	return s.period > 0 && !at.IsZero() && now.Sub(at) < 2*s.period
}

// wake starts the sampler on m's background work (which Close ends)
// unless it runs or there is none. Every stats call wakes it, so the
// common case, a sampler running, takes no lock.
func (s *statsSampler) wake(m *Manager) {
	if s.period <= 0 || s.running.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running.Load() {
		return
	}
	if m.bg.goRun(func(ctx context.Context) { s.run(ctx, m) }) {
		s.running.Store(true)
	}
}

func (s *statsSampler) run(ctx context.Context, m *Manager) {
	defer func() {
		s.mu.Lock()
		s.running.Store(false)
		s.mu.Unlock()
	}()
	tick := time.NewTicker(s.period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := m.statsDue(time.Now().Add(-s.idle))
		if len(due) == 0 {
			// A call that asks from now on wakes a new sampler; one
			// that asked meanwhile but found this one still running
			// read for itself, and its next call wakes one.
			return
		}
		// One goroutine reads them all: 100 cgroups take about 2.5 ms
		// of kernel time, which need not take both CPUs from the calls.
		for _, st := range due {
			if err := st.refresh(); err != nil && !errors.Is(err, os.ErrNotExist) {
				m.log.Debug("stats sample", zap.Error(err))
			}
		}
	}
}

// statsDue lists the stats of the running containers and ready pods a
// stats call asked about since since.
func (m *Manager) statsDue(since time.Time) []*statsState {
	ps, cs := m.everything()
	var due []*statsState
	for _, c := range cs {
		if c.stats.askedSince(since) && c.snapshot().State == stateRunning {
			due = append(due, &c.stats)
		}
	}
	for _, p := range ps {
		if p.stats.askedSince(since) && p.ready() {
			due = append(due, &p.stats)
		}
	}
	return due
}

func (s *statsState) askedSince(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked.After(t)
}
