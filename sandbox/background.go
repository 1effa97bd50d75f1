package sandbox

import (
	"context"
	"sync"
)

// background runs the Manager's housekeeping: work that outlives the call
// starting it (the stats sampler, writable-layer walks) and must end
// before Close returns, which cancels its context and waits for it.
//
// Housekeeping runs at the lowest CPU priority, on threads of its own
// (lowPriorityThread), so that it takes a CPU only when the CRI calls
// leave one: kubelet's relist must not wait while 100 writable layers
// are walked on both cores, which is what the first ListContainerStats
// of a node used to set off. Nice 19, not SCHED_IDLE: a call waiting on
// a container's first walk must get it even on a busy node.
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

// goLow runs fn at low priority on a goroutine and thread of its own,
// with a context that ends on close; for a loop such as the sampler. It
// runs nothing and returns false once close has begun.
func (b *background) goLow(fn func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.goLowLocked(func() { fn(b.ctx) })
	return true
}

// queueLow queues fn for the low-priority worker, which runs the queued
// jobs one at a time, in order, and ends when none is left: a hundred
// walks take one thread, not a hundred. Jobs queued when close begins
// still run, on the ended context. It queues nothing and returns false
// once close has begun.
func (b *background) queueLow(fn func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.queue = append(b.queue, fn)
	if !b.working {
		b.working = true
		b.goLowLocked(b.work)
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

// goLowLocked runs fn on a new goroutine on a low-priority thread that
// ends with it. b.mu is held.
func (b *background) goLowLocked(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		lowPriorityThread()
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
