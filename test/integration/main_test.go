// Package integration drives a real berthd through its CRI socket, as
// kubelet and crictl do, and checks the effects from where a user would see
// them: over the CRI, on the host, and inside containers. It needs root.
package integration

import (
	"context"
	"testing"
	"time"
)

// callTimeout bounds every CRI call a test makes, so a hang fails the test
// instead of the whole run.
const callTimeout = 2 * time.Minute

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}
