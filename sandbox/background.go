package sandbox

import (
	"context"
	"sync"
)

// background runs the Manager's work that outlives the call starting it
// (the stats sampler, writable-layer walks) and must end before Close returns: Close cancels
// its context and waits for it.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// goRun runs fn on a new goroutine with a context that ends on close. It
// runs nothing and returns false once close has begun.
func (b *background) goRun(fn func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.ctx)
	}()
	return true
}

// close cancels the running work and waits for it to return.
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}
