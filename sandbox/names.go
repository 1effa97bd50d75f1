package sandbox

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// nameIndex maps the unique names of pods (podName) or of containers
// (containerName) to the ID holding each, as containerd's registrar does:
// a name is reserved before the side effects of the call making its object
// and released when that call fails or the object is removed, so that a
// retry of a call still running (kubelet's, after its deadline) gets
// AlreadyExists at once instead of repeating the work. Guarded by m.mu.
type nameIndex map[string]string

// reserveName reserves name in idx for id; kind names the object in the
// error ("pod sandbox", "container").
func (m *Manager) reserveName(idx nameIndex, kind, name, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if other, ok := idx[name]; ok && other != id {
		return fmt.Errorf("%s name %q is reserved by %s: %w", kind, name, other, errdefs.ErrAlreadyExists)
	}
	idx[name] = id
	return nil
}

// releaseName releases name in idx if id holds it.
func (m *Manager) releaseName(idx nameIndex, name, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	idx.releaseLocked(name, id)
}

// releaseLocked is releaseName with m.mu held.
func (idx nameIndex) releaseLocked(name, id string) {
	if idx[name] == id {
		delete(idx, name)
	}
}
