package sandbox

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/errdefs"
)

// ReopenContainerLog makes the running container's monitor start a new
// log file (kubelet renamed the old one) and returns once it exists.
func (m *Manager) ReopenContainerLog(ctx context.Context, id string) error {
	c, err := m.containerByID(id)
	if err != nil {
		return err
	}
	if st := c.snapshot(); st.State != stateRunning {
		return fmt.Errorf("container %s is %s, not running: %w", c.id, stateName(st.State), errdefs.ErrFailedPrecondition)
	}
	if c.logPath == "" {
		return fmt.Errorf("container %s has no log path: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	if err := askMonitor(ctx, c.stateDir, "reopen"); err != nil {
		return fmt.Errorf("reopen log of container %s: %w", c.id, err)
	}
	if _, err := os.Stat(c.logPath); err != nil {
		return fmt.Errorf("reopen log of container %s: %w", c.id, err)
	}
	return nil
}
