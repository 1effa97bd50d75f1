package sandbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/berth-runtime/berth/image"
)

// TestLayerUsageAnswersAStaleWalkWhileTheNextRuns: the first call waits
// for its walk; once that walk is stale, a call starts the next one and
// answers the old figures at once; every caller shares the running walk;
// later calls see the new figures.
func TestLayerUsageAnswersAStaleWalkWhileTheNextRuns(t *testing.T) {
	var s statsState
	bg := newBackground()
	defer bg.close()
	walks := 0
	release := make(chan struct{})
	walk := func(used uint64, block bool) func(context.Context) (image.Filesystem, error) {
		return func(context.Context) (image.Filesystem, error) {
			walks++
			if block {
				<-release
			}
			return image.Filesystem{UsedBytes: used, Timestamp: time.Now()}, nil
		}
	}
	ctx := context.Background()

	if got := s.layerUsage(ctx, bg, time.Time{}, walk(1, false)); got.UsedBytes != 1 {
		t.Fatalf("first call = %d bytes, want the first walk's 1", got.UsedBytes)
	}
	if got := s.layerUsage(ctx, bg, time.Time{}, walk(99, false)); got.UsedBytes != 1 || walks != 1 {
		t.Fatalf("fresh walk: %d bytes after %d walks, want 1 after 1", got.UsedBytes, walks)
	}

	// Age the walk past layerFresh: the next call answers 1 while a
	// blocked walk runs, and a call meanwhile starts no other.
	s.layerMu.Lock()
	s.layer.Timestamp = time.Now().Add(-layerMaxAge - time.Second)
	s.layerMu.Unlock()
	answered := make(chan uint64)
	go func() { answered <- s.layerUsage(ctx, bg, time.Time{}, walk(2, true)).UsedBytes }()
	select {
	case got := <-answered:
		if got != 1 {
			t.Fatalf("stale call = %d bytes, want the last walk's 1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call waited for the background walk")
	}
	if got := s.layerUsage(ctx, bg, time.Time{}, walk(3, false)).UsedBytes; got != 1 {
		t.Fatalf("call during the walk = %d bytes, want 1", got)
	}
	close(release)
	waitLayerWalk(t, &s)
	if walks != 2 {
		t.Errorf("%d walks, want 2 (the call during the walk must share it)", walks)
	}
	if got := s.layerUsage(ctx, bg, time.Time{}, walk(4, false)).UsedBytes; got != 2 {
		t.Errorf("after the walk = %d bytes, want its 2", got)
	}
}

// TestLayerUsageOfAnExitedContainerIsWalkedOnceAfterItExited: nothing
// writes to an exited container's writable layer, so a walk made after it
// exited is answered however old it grows; one made before is redone.
func TestLayerUsageOfAnExitedContainerIsWalkedOnceAfterItExited(t *testing.T) {
	var s statsState
	bg := newBackground()
	defer bg.close()
	walks := 0
	walk := func(context.Context) (image.Filesystem, error) {
		walks++
		return image.Filesystem{UsedBytes: uint64(walks), Timestamp: time.Now()}, nil
	}
	ctx := context.Background()
	age := func() {
		s.layerMu.Lock()
		s.layer.Timestamp = s.layer.Timestamp.Add(-layerMaxAge - time.Second)
		s.layerMu.Unlock()
	}
	s.layerUsage(ctx, bg, time.Time{}, walk) // walked while running
	age()
	exited := time.Now().Add(-time.Minute) // after the aged walk
	s.layerUsage(ctx, bg, exited, walk)
	waitLayerWalk(t, &s)
	if walks != 2 {
		t.Fatalf("%d walks, want a second one: the first predates the exit", walks)
	}
	age()
	exited = exited.Add(-2 * layerMaxAge) // before the second walk, however aged
	if got := s.layerUsage(ctx, bg, exited, walk).UsedBytes; got != 2 {
		t.Errorf("answered %d bytes, want the second walk's 2", got)
	}
	waitLayerWalk(t, &s)
	if walks != 2 {
		t.Errorf("%d walks, want none after one made since the container exited", walks)
	}
}

// TestLayerWalksEndWithTheManager: Close cancels a running walk and waits
// for it, and no walk starts after Close.
func TestLayerWalksEndWithTheManager(t *testing.T) {
	var s statsState
	bg := newBackground()
	walked := make(chan struct{})
	ended := false
	// The first call waits for its walk unless its caller gives up.
	gaveUp, cancel := context.WithCancel(context.Background())
	cancel()
	s.layerUsage(gaveUp, bg, time.Now(), func(ctx context.Context) (image.Filesystem, error) {
		close(walked)
		<-ctx.Done()
		ended = true
		return image.Filesystem{}, ctx.Err()
	})
	<-walked
	bg.close()
	if !ended {
		t.Fatal("close returned before the walk ended")
	}
	walks := 0
	got := s.layerUsage(context.Background(), bg, time.Time{}, func(context.Context) (image.Filesystem, error) {
		walks++
		return image.Filesystem{UsedBytes: 1, Timestamp: time.Now()}, nil
	})
	if walks != 0 || got.UsedBytes != 0 {
		t.Errorf("after close: %d walks, %d bytes; want no walk", walks, got.UsedBytes)
	}
}

// waitLayerWalk waits up to 10 s for s's background walk to end.
func waitLayerWalk(t *testing.T, s *statsState) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.layerMu.Lock()
		done := s.layerWalk == nil
		s.layerMu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the background walk did not end")
		}
	}
}

// TestAFirstWalkDoesNotWaitBehindOtherContainersWalks: a call waits for
// a container's first walk, so that one starts at once, while walks that
// refresh a stale figure queue for one worker.
func TestAFirstWalkDoesNotWaitBehindOtherContainersWalks(t *testing.T) {
	bg := newBackground()
	defer bg.close()
	// No call here waits longer: a first walk queued behind a blocked one
	// would wait for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fixed := func(used uint64) func(context.Context) (image.Filesystem, error) {
		return func(context.Context) (image.Filesystem, error) {
			return image.Filesystem{UsedBytes: used, Timestamp: time.Now()}, nil
		}
	}
	// Two containers with stale walks: the first one's refresh blocks the
	// worker, the second one's queues behind it.
	var stale [2]statsState
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // before bg.close, which waits for the worker
	refreshed := make(chan struct{}, 2)
	for i := range stale {
		if got := stale[i].layerUsage(ctx, bg, time.Time{}, fixed(1)).UsedBytes; got != 1 {
			t.Fatalf("container %d's first walk answered %d bytes, want 1: it waited behind the queue", i, got)
		}
		stale[i].layerMu.Lock()
		stale[i].layer.Timestamp = time.Now().Add(-layerMaxAge - time.Second)
		stale[i].layerMu.Unlock()
		stale[i].layerUsage(ctx, bg, time.Time{}, func(context.Context) (image.Filesystem, error) {
			refreshed <- struct{}{}
			<-release
			return image.Filesystem{UsedBytes: 2, Timestamp: time.Now()}, nil
		})
	}
	<-refreshed
	select {
	case <-refreshed:
		t.Fatal("two refreshing walks ran at once")
	default:
	}

	var fresh statsState
	if got := fresh.layerUsage(ctx, bg, time.Time{}, fixed(7)).UsedBytes; got != 7 {
		t.Errorf("a new container's first walk answered %d bytes, want its 7: it waited behind the queue", got)
	}
	unblock()
	<-refreshed // the second refresh runs once the first ends
	for i := range stale {
		waitLayerWalk(t, &stale[i])
	}
}
