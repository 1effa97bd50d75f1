package sandbox

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowestNice is the nice value housekeeping threads run at.
const lowestNice = 19

// lowPriorityThread locks the calling goroutine to its thread for good and
// gives the thread the lowest CPU priority. Linux keeps a nice value per
// thread, and the Go runtime ends a thread whose goroutine returns while
// locked to it, so no other goroutine ever runs at this priority. Raising
// one's own nice value needs no privilege; should it fail, the work runs
// at the usual priority, which is only slower for the calls beside it.
func lowPriorityThread() {
	runtime.LockOSThread() // never unlocked: see above
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), lowestNice)
}
