package sandbox

// Killing an exec and everything it started. The exec'd program's children
// are not the caller's (they are in the container's PID namespace, and an
// orphan goes to the container's init), so they are found by walking the
// process tree down from the runtime's process through
// /proc/<pid>/task/<tid>/children. Each round stops what it finds
// (SIGSTOP: a stopped process cannot fork), until a walk finds nothing new;
// then all of it is killed at once, so that no process is orphaned before
// it is found.

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-runtime/berth/oci"
	"golang.org/x/sys/unix"
)

// killTreeRounds bounds the stop-and-walk rounds against a process that
// forks faster than it is walked.
const killTreeRounds = 20

// killTree kills p's program and every process below p's runtime process.
// The caller still waits for p (reaping the runtime's process).
func killTree(p oci.Process) {
	seen := map[int]bool{}
	for range killTreeRounds {
		found := false
		for _, pid := range descendants(p.Pid()) {
			if !seen[pid] {
				seen[pid], found = true, true
				_ = unix.Kill(pid, unix.SIGSTOP)
			}
		}
		if !found {
			break
		}
	}
	_ = p.Signal(syscall.SIGKILL)
	for pid := range seen {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// descendants lists the processes below pid (not pid itself).
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children(next) {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// children lists the children of every thread of pid.
func children(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
