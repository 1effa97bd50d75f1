package sandbox

import (
	"context"
	"time"
)

// cleanupTimeout bounds a rollback or cleanup that must outlive its
// caller's cancellation (a kubelet deadline must not leave half a pod or
// container behind), so that a stuck runtime, plugin or monitor cannot
// hang the call forever either. containerd's CRI plugin bounds its
// deferred cleanups the same way (deferCleanupTimeout, one minute).
const cleanupTimeout = time.Minute

// cleanupContext is ctx without its cancellation but with its values (the
// logger), bounded by cleanupTimeout from now: call it where the cleanup
// starts, not ahead of the work it may undo.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}
