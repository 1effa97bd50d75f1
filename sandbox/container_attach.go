package sandbox

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
)

// Attach connects sio to the running container id's own stdio.
func (m *Manager) Attach(ctx context.Context, id string, sio StreamIO) error {
	return fmt.Errorf("attach: %w", errdefs.ErrNotImplemented)
}
