package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-runtime/berth/oci"
	"go.uber.org/zap"
)

// recoverContainers loads the containers of the database at start-up and
// re-attaches to their monitors. A container whose monitor is alive is
// CREATED or RUNNING (by whether it was started) and stays watched; one
// whose monitor is gone reports the exit status the monitor wrote, or
// UNKNOWN when there is none (a reboot emptied the state dir).
func (m *Manager) recoverContainers(ctx context.Context) error {
	var all []*Container
	err := m.store.each(bucketContainers, func(id string, data []byte) error {
		c, err := m.containerFromRecord(id, data)
		if err != nil {
			m.log.Error("skip unreadable container record", zap.String("container", id), zap.Error(err))
			return nil
		}
		all = append(all, c)
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range all {
		m.recoverContainer(ctx, c)
		m.mu.Lock()
		m.containers[c.id] = c
		m.ctrIDs.add(c.id)
		m.ctrNames[c.name] = c.id
		m.mu.Unlock()
	}
	return nil
}

func (m *Manager) recoverContainer(ctx context.Context, c *Container) {
	log := m.log.With(zap.String("container", c.id))
	if spec, err := oci.ReadSpec(c.bundle); err == nil {
		c.process = spec.Process
	}
	// Its CREATED (and STARTED) went to subscribers of an earlier berthd;
	// an exit from now on is sent.
	c.events.created = true
	rs, err := readRunState(c.stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("read container run state", zap.Error(err))
	}
	_ = c.update(func(s *containerStatus) error {
		s.Pid, s.StartedAt = rs.Pid, rs.StartedAt
		if !rs.StartedAt.IsZero() {
			s.State = stateRunning
		}
		return nil
	})
	if rs.MonitorPid > 0 {
		h, err := adoptMonitor(rs.MonitorPid, rs.MonitorStart, func() {
			st, ok, _ := readExitStatus(c.stateDir)
			c.setExited(st, ok)
			m.containerExited(c)
		})
		if err == nil {
			c.mu.Lock()
			c.monitor = h
			c.mu.Unlock()
			if rs.StartedAt.IsZero() {
				m.recoverStart(ctx, c)
			}
			log.Debug("monitor adopted", zap.Int("monitor", rs.MonitorPid))
			return
		}
	}
	st, ok, err := readExitStatus(c.stateDir)
	if err != nil {
		log.Warn("read exit status", zap.Error(err))
	}
	c.setExited(st, ok)
	c.events.stopped = true // it exited while no berthd watched; nobody was subscribed
}

// recoverStart finds out whether a container recorded as not started was
// started by a berthd killed before it wrote so: its runtime says whether
// the user program runs. StartContainer would refuse to start it again, and
// kubelet would wait for ever on a CREATED container that in truth runs.
func (m *Manager) recoverStart(ctx context.Context, c *Container) {
	rt, ok := m.runtimes[c.handler]
	if !ok {
		return
	}
	st, err := rt.State(ctx, c.id)
	if err != nil || st.Status != oci.StatusRunning {
		return
	}
	now := time.Now()
	_ = c.update(func(s *containerStatus) error {
		if s.State == stateCreated {
			s.State, s.StartedAt = stateRunning, now
		}
		return nil
	})
	c.mu.Lock()
	h := c.monitor
	c.mu.Unlock()
	rs := runState{MonitorPid: h.pid, MonitorStart: h.start, Pid: st.Pid, StartedAt: now}
	if err := writeJSONAtomic(filepath.Join(c.stateDir, statusFile), rs); err != nil {
		m.log.Warn("record container start", zap.String("container", c.id), zap.Error(err))
	}
	m.log.Info("container was started by the berthd before this one", zap.String("container", c.id))
}
