package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// killTimeout bounds the wait for a container's exit after SIGKILL.
const killTimeout = 30 * time.Second

// StartContainer lets a CREATED container run its program.
func (m *Manager) StartContainer(ctx context.Context, id string) error {
	c, err := m.containerByID(id)
	if err != nil {
		return err
	}
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	st := c.snapshot()
	if st.Removing {
		return fmt.Errorf("container %s is being removed: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	if st.State != stateCreated {
		return fmt.Errorf("container %s is %s, not created: %w", c.id, stateName(st.State), errdefs.ErrFailedPrecondition)
	}
	rt, ok := m.runtimes[c.handler]
	if !ok {
		return fmt.Errorf("runtime handler %q: %w", c.handler, errdefs.ErrFailedPrecondition)
	}
	// What the runtime's init runs until it execs the program: a stop
	// signal waits for that exec (stop_signal_linux.go).
	c.preExec = exeOf(st.Pid)
	started := time.Now()
	failpoint.Hit(failpoint.StartBegin)
	c.containerStarting()
	if err := rt.Start(ctx, c.id); err != nil {
		kctx, cancel := cleanupContext(ctx)
		_ = rt.Kill(kctx, c.id, unix.SIGKILL, true)
		cancel()
		_ = c.update(func(s *containerStatus) error {
			if s.State == stateCreated {
				s.State, s.FinishedAt, s.ExitCode = stateExited, time.Now(), 128
			}
			// Also when the monitor saw the init exit first: the
			// runtime's error (an execve's cause) says more than "Error".
			if s.StartedAt.IsZero() {
				s.Reason, s.Message = "StartError", err.Error()
			}
			return nil
		})
		m.containerStarted(c, false)
		return fmt.Errorf("start container %s: %w", c.id, err)
	}
	failpoint.Hit(failpoint.StartStarted)
	_ = c.update(func(s *containerStatus) error {
		s.StartedAt = started
		if s.State == stateCreated { // it may have exited already
			s.State = stateRunning
		}
		return nil
	})
	m.containerStarted(c, true)
	st = c.snapshot()
	c.mu.Lock()
	h := c.monitor
	c.mu.Unlock()
	if h != nil {
		rs := runState{MonitorPid: h.pid, MonitorStart: h.start, Pid: st.Pid, StartedAt: started}
		if err := writeJSONAtomic(filepath.Join(c.stateDir, statusFile), rs); err != nil {
			m.log.Warn("record container start", zap.String("container", c.id), zap.Error(err))
		}
		failpoint.Hit(failpoint.StartStatus)
	}
	return nil
}

// StopContainer stops a container: its stop signal, then SIGKILL to all
// its processes once timeout has passed (at once for 0). Stopping a
// stopped container, or one that is not there, is not an error: the CRI
// asks for idempotent stops and kubelet retries them (containerd answers
// OK too). An ambiguous prefix stays an error: nothing is stopped on a
// guess.
func (m *Manager) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c, err := m.containerByID(id)
	if errdefs.IsNotFound(err) {
		m.log.Debug("stop of an unknown container: nothing to do", zap.String("container", id))
		return nil
	}
	if err != nil {
		return err
	}
	return m.stopContainer(ctx, c, timeout)
}

func (m *Manager) stopContainer(ctx context.Context, c *Container, timeout time.Duration) error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	return m.stopLocked(ctx, c, timeout)
}

// stopLocked stops c; the caller holds c.stopMu.
func (m *Manager) stopLocked(ctx context.Context, c *Container, timeout time.Duration) error {
	c.mu.Lock()
	h := c.monitor
	c.mu.Unlock()
	if h == nil || !h.alive() {
		return nil
	}
	rt, ok := m.runtimes[c.handler]
	if !ok {
		return fmt.Errorf("runtime handler %q: %w", c.handler, errdefs.ErrFailedPrecondition)
	}
	log := m.log.With(zap.String("container", c.id))
	if timeout > 0 && c.snapshot().State == stateRunning {
		sig, err := c.stopSignalNumber()
		if err != nil {
			return err
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		// The signal goes once the program can receive it; the wait counts
		// against the timeout.
		if awaitSignalReady(ctx, c.snapshot().Pid, c.preExec, sig, h.exited, t.C) {
			if err := rt.Kill(ctx, c.id, sig, false); err != nil && !errdefs.IsNotFound(err) {
				log.Warn("send stop signal", zap.Error(err))
			}
			select {
			case <-h.exited:
				return nil
			case <-t.C:
				log.Debug("stop timeout passed; killing", zap.Duration("timeout", timeout))
			case <-ctx.Done():
			}
		} else if !h.alive() {
			return nil
		} else {
			log.Debug("stop signal not sent: the program caught none before the deadline; killing", zap.Duration("timeout", timeout))
		}
	}
	// Kill even when the caller gave up: a half-stopped container helps no one.
	kctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := rt.Kill(kctx, c.id, unix.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) {
		if !h.alive() {
			return nil
		}
		// The runtime may have lost track of it: kill the first process directly.
		if pid := c.snapshot().Pid; pid > 0 && h.alive() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		log.Warn("kill container", zap.Error(err))
	}
	select {
	case <-h.exited:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("container %s did not exit %s after SIGKILL", c.id, killTimeout)
	}
}

// stopSignalNumber is the config's stop signal, else the image's, else SIGTERM.
func (c *Container) stopSignalNumber() (syscall.Signal, error) {
	name := ""
	if s := c.config.GetStopSignal(); s != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		name = strings.TrimPrefix(s.String(), "SIGNAL_")
	} else if c.stopSignal != "" {
		name = c.stopSignal
	}
	if name == "" {
		return unix.SIGTERM, nil
	}
	return parseSignal(name)
}

// parseSignal reads "SIGTERM", "TERM" or "15".
func parseSignal(name string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if s := unix.SignalNum(n); s != 0 {
		return s, nil
	}
	// Real-time signals, as systemd images name theirs (SIGRTMIN+3).
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"SIGRTMIN+", 34, 1}, {"SIGRTMAX-", 64, -1}} {
		if v, ok := strings.CutPrefix(n, rt.prefix); ok {
			if off, err := strconv.Atoi(v); err == nil && off >= 0 && off <= 30 {
				return syscall.Signal(rt.base + rt.sign*off), nil
			}
		}
	}
	return 0, fmt.Errorf("stop signal %q: %w", name, errdefs.ErrInvalidArgument)
}

// RemoveContainer removes a container, killing it first if it runs.
// Removing an unknown container is not an error.
func (m *Manager) RemoveContainer(ctx context.Context, id string) error {
	c, err := m.containerByID(id)
	if errdefs.IsNotFound(err) {
		m.log.Debug("removal of an unknown container: nothing to do", zap.String("container", id))
		return nil
	}
	if err != nil {
		return err
	}
	return m.removeContainer(ctx, c)
}

func (m *Manager) removeContainer(ctx context.Context, c *Container) error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	_ = c.update(func(s *containerStatus) error { s.Removing = true; return nil })
	if err := m.stopLocked(ctx, c, 0); err != nil {
		return err
	}
	// The removal goes on when the caller gives up, within a bound.
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if rt, ok := m.runtimes[c.handler]; ok {
		if err := rt.Delete(ctx, c.id, true); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete container %s: %w", c.id, err)
		}
	}
	failpoint.Hit(failpoint.RemoveContainerDelete)
	if err := unmountRootfs(filepath.Join(c.stateDir, "rootfs")); err != nil {
		return err
	}
	if err := unmountIDMapped(c.stateDir); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RemoveContainerUmount)
	if err := m.images.RemoveSnapshot(ctx, c.id); err != nil {
		return fmt.Errorf("remove container %s rootfs: %w", c.id, err)
	}
	failpoint.Hit(failpoint.RemoveContainerSnap)
	for _, d := range []string{c.bundle, c.stateDir} {
		if err := os.RemoveAll(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", d, err)
		}
	}
	failpoint.Hit(failpoint.RemoveContainerDirs)
	if err := m.store.delete(bucketContainers, c.id); err != nil {
		return fmt.Errorf("remove container %s record: %w", c.id, err)
	}
	m.mu.Lock()
	delete(m.containers, c.id)
	m.ctrIDs.remove(c.id)
	m.ctrNames.releaseLocked(c.name, c.id)
	m.mu.Unlock()
	m.containerRemoved(c)
	c.stats.remove()
	c.mu.Lock()
	if c.monitor != nil {
		c.monitor.release()
		c.monitor = nil
	}
	c.mu.Unlock()
	return nil
}

func stateName(s containerState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CONTAINER_"))
}
