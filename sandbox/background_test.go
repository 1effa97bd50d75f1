package sandbox

import (
	"context"
	"sync"
	"testing"
)

func TestQueuedJobsRunOneAtATimeInTheOrderQueued(t *testing.T) {
	b := newBackground()
	defer b.close()
	var mu sync.Mutex
	var order []int
	running, most := 0, 0
	release := make(chan struct{})
	all := make(chan struct{})
	for i := range 5 {
		b.enqueue(func(context.Context) {
			mu.Lock()
			running++
			most = max(most, running)
			order = append(order, i)
			mu.Unlock()
			if i == 0 {
				<-release // the others queue up behind it
			}
			mu.Lock()
			running--
			if len(order) == 5 {
				close(all)
			}
			mu.Unlock()
		})
	}
	close(release)
	<-all
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Errorf("%d queued jobs ran at once, want 1", most)
	}
	for i, got := range order {
		if got != i {
			t.Fatalf("jobs ran in the order %v, want the order they were queued in", order)
		}
	}
}

func TestCloseWaitsForQueuedJobsWhichSeeTheEndedContext(t *testing.T) {
	b := newBackground()
	started := make(chan struct{})
	var mu sync.Mutex
	var errs []error
	b.enqueue(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
	})
	<-started
	for range 3 {
		b.enqueue(func(ctx context.Context) {
			mu.Lock()
			errs = append(errs, ctx.Err())
			mu.Unlock()
		})
	}
	b.close()
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 3 {
		t.Fatalf("%d of 3 queued jobs ran before close returned", len(errs))
	}
	for i, err := range errs {
		if err != context.Canceled {
			t.Errorf("queued job %d saw %v, want context.Canceled", i, err)
		}
	}
	if b.enqueue(func(context.Context) {}) || b.goRun(func(context.Context) {}) {
		t.Error("background work was accepted after close")
	}
}
