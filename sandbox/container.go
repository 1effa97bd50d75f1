package sandbox

import "context"

// Container is a container of a pod. (Placeholder: the container work replaces it.)
type Container struct{}

// recoverContainers loads the containers of the database at start-up and
// reconnects to their monitors.
func (m *Manager) recoverContainers(ctx context.Context) error { return nil }
