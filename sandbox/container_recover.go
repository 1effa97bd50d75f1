package sandbox

import (
	"context"
	"errors"
	"os"

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
		m.recoverContainer(c)
		m.mu.Lock()
		m.containers[c.id] = c
		m.ctrIDs.add(c.id)
		m.mu.Unlock()
	}
	return nil
}

func (m *Manager) recoverContainer(c *Container) {
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
