package image

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
)

func TestFlightGroupRunsOnceForConcurrentCallers(t *testing.T) {
	var g flightGroup
	var runs atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	fn := func(ctx context.Context) error {
		runs.Add(1)
		close(started)
		<-release
		return errors.New("shared result")
	}
	errs := make(chan error, 3)
	go func() { errs <- g.do(context.Background(), "k", fn) }()
	<-started
	for range 2 {
		go func() { errs <- g.do(context.Background(), "k", fn) }()
	}
	waitWaiters(&g, "k", 3)
	close(release)
	for range 3 {
		if err := <-errs; err == nil || err.Error() != "shared result" {
			t.Fatalf("caller got %v, want the one run's error", err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs for three concurrent callers, want 1", n)
	}
}

// waitWaiters waits until n callers wait for the flight of key.
func waitWaiters(g *flightGroup, key string, n int) {
	for {
		g.mu.Lock()
		f := g.flights[key]
		joined := f != nil && f.waiters == n
		g.mu.Unlock()
		if joined {
			return
		}
		runtime.Gosched()
	}
}

func TestFlightGroupWorkOutlivesOneCallerButNotAll(t *testing.T) {
	var g flightGroup
	started := make(chan struct{})
	cancelled := make(chan struct{})
	release := make(chan struct{})
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	fn := func(ctx context.Context) error {
		close(started)
		select {
		case <-ctx.Done():
			close(cancelled)
			return ctx.Err()
		case <-release:
			return nil
		}
	}
	done1 := make(chan error, 1)
	go func() { done1 <- g.do(ctx1, "k", fn) }()
	<-started
	done2 := make(chan error, 1)
	go func() { done2 <- g.do(ctx2, "k", fn) }()
	waitWaiters(&g, "k", 2)
	cancel1()
	if err := <-done1; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want canceled", err)
	}
	select {
	case <-cancelled:
		t.Fatal("the work stopped although a caller still waits for it")
	default:
	}
	cancel2()
	<-cancelled // the last caller gone, the work is cancelled
	if err := <-done2; !errors.Is(err, context.Canceled) {
		t.Fatalf("second caller: %v, want canceled", err)
	}
	close(release)
}
