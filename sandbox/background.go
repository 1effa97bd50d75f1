package sandbox

import (
	"context"
	"sync"
)

// background runs the Manager's housekeeping: work that outlives the call
// starting it (the stats sampler, writable-layer walks) and must end
// before Close returns, which cancels its context and waits for it.
//
// Work nobody waits for (walks that refresh a stale figure) queues for a
// single worker, one job at a time: the first ListContainerStats of a node
// used to set off a walk of every container's writable layer at once,
// 100 goroutines on both cores, while kubelet's next relist waited for a
// CPU. Work a call waits for runs at once (goRun), so that no call waits
// behind another container's walk.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu      sync.Mutex
	closed  bool
	queue   []func(context.Context) // jobs waiting for the worker
	working bool                    // the worker runs
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
	b.goLocked(func() { fn(b.ctx) })
	return true
}

// enqueue queues fn for the worker, which runs the queued jobs one at a
// time, in order, and ends when none is left. Jobs queued when close
// begins still run, on the ended context. It queues nothing and returns
// false once close has begun.
func (b *background) enqueue(fn func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.queue = append(b.queue, fn)
	if !b.working {
		b.working = true
		b.goLocked(b.work)
	}
	return true
}

// work runs the queued jobs until there are none.
func (b *background) work() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.working = false
			b.mu.Unlock()
			return
		}
		fn := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		b.mu.Unlock()
		fn(b.ctx)
	}
}

// goLocked runs fn on a new goroutine that close waits for. b.mu is held.
func (b *background) goLocked(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// close cancels the running work and waits for it to return.
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}
