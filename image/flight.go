package image

import (
	"context"
	"sync"
)

// flightGroup runs one piece of work per key at a time and lets every
// caller asking for the same key wait for it: two pulls of images that
// share a layer download and unpack it once. Unlike x/sync/singleflight,
// the work does not die with the first caller's context: it runs on its
// own context, cancelled only when every caller waiting for it has gone.
type flightGroup struct {
	mu      sync.Mutex
	flights map[string]*flight
}

type flight struct {
	done    chan struct{}
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do runs fn for key unless a run is in flight, and returns its error.
func (g *flightGroup) do(ctx context.Context, key string, fn func(ctx context.Context) error) error {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = map[string]*flight{}
	}
	f, ok := g.flights[key]
	if ok {
		f.waiters++
	} else {
		var fctx context.Context
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), waiters: 1, cancel: cancel}
		g.flights[key] = f
		go func() {
			f.err = fn(fctx)
			g.mu.Lock()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
			g.mu.Unlock()
			cancel()
			close(f.done)
		}()
	}
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		g.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			// Nobody wants it any more; a later caller starts afresh.
			f.cancel()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
		}
		g.mu.Unlock()
		return ctx.Err()
	}
}
