package sandbox

import (
	"context"
	"testing"
	"time"
)

func TestCleanupContextOutlivesTheCallerButNotForever(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "logger"))
	cancel()
	ctx, stop := cleanupContext(parent)
	defer stop()
	if ctx.Err() != nil {
		t.Errorf("the cleanup context is done with its caller's: %v", ctx.Err())
	}
	if ctx.Value(key{}) != "logger" {
		t.Error("the cleanup context lost its caller's values")
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > cleanupTimeout {
		t.Errorf("the cleanup context's deadline is %v (set %v), want at most %v from now", d, ok, cleanupTimeout)
	}
}
