package sandbox

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary's main goroutine keeps the main thread, as berthd's
// does (cmd/berthd/main.go): a locked goroutine that returns on the main
// thread cannot end it, and Go parks it for good, here at nice 19.
func init() { runtime.LockOSThread() }

// threadRun is where and how a piece of background work ran.
type threadRun struct {
	tid, nice int
}

func thisThread(t *testing.T) threadRun {
	// getpriority(2) answers 20 - nice.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Errorf("getpriority: %v", err)
	}
	return threadRun{tid: unix.Gettid(), nice: 20 - prio}
}

// threadEnded reports whether this process has no thread tid any more.
func threadEnded(tid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid))
	return os.IsNotExist(err)
}

func TestHousekeepingRunsAtTheLowestPriorityOnThreadsThatEndWithIt(t *testing.T) {
	b := newBackground()
	var mu sync.Mutex
	var loop threadRun
	var jobs []threadRun
	var order []int
	release := make(chan struct{})
	loopDone := make(chan struct{})
	if !b.goLow(func(ctx context.Context) {
		defer close(loopDone)
		loop = thisThread(t)
		<-release
	}) {
		t.Fatal("goLow refused work before close")
	}
	for i := range 5 {
		if !b.queueLow(func(ctx context.Context) {
			mu.Lock()
			defer mu.Unlock()
			jobs = append(jobs, thisThread(t))
			order = append(order, i)
		}) {
			t.Fatal("queueLow refused work before close")
		}
	}
	close(release)
	<-loopDone
	eventually(t, "the queued jobs run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(jobs) == 5
	})

	here := thisThread(t)
	if loop.nice != lowestNice {
		t.Errorf("the loop ran at nice %d, want %d", loop.nice, lowestNice)
	}
	if loop.tid == here.tid {
		t.Errorf("the loop ran on the test's thread %d", here.tid)
	}
	mu.Lock()
	for i, j := range jobs {
		if j.nice != lowestNice {
			t.Errorf("job %d ran at nice %d, want %d", i, j.nice, lowestNice)
		}
		if j.tid != jobs[0].tid {
			t.Errorf("job %d ran on thread %d, job 0 on %d: the queue takes one thread", i, j.tid, jobs[0].tid)
		}
		if order[i] != i {
			t.Errorf("jobs ran in the order %v, want the order they were queued in", order)
			break
		}
	}
	mu.Unlock()
	if here.nice != 0 {
		t.Errorf("the test's own thread runs at nice %d: housekeeping's priority leaked", here.nice)
	}
	// A thread left behind at nice 19 would run other goroutines slowly.
	eventually(t, "the loop's thread ends", func() bool { return threadEnded(loop.tid) })
	eventually(t, "the worker's thread ends", func() bool { return threadEnded(jobs[0].tid) })

	b.close()
	if b.goLow(func(context.Context) {}) || b.queueLow(func(context.Context) {}) {
		t.Error("background work was accepted after close")
	}
}

func TestCloseWaitsForQueuedJobsWhichSeeTheEndedContext(t *testing.T) {
	b := newBackground()
	started := make(chan struct{})
	var errs []error
	var mu sync.Mutex
	b.queueLow(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
	})
	<-started
	for range 3 {
		b.queueLow(func(ctx context.Context) {
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
}
