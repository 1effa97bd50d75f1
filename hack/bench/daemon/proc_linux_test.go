package daemon

import (
	"os"
	"os/exec"
	"testing"
)

func TestSnapshotReadsThisProcess(t *testing.T) {
	procs, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	me, ok := procs[os.Getpid()]
	if !ok {
		t.Fatal("Snapshot misses the test process")
	}
	if me.PPID != os.Getppid() {
		t.Errorf("PPID = %d, want %d", me.PPID, os.Getppid())
	}
	if me.RSS == 0 || me.PSS() == 0 {
		t.Errorf("RSS %d, PSS %d: want both above zero", me.RSS, me.PSS())
	}
	exe, _ := os.Executable()
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	if !me.SameExecutable(fi) {
		t.Errorf("SameExecutable(%s) is false for the process running it", exe)
	}
}

func TestDescendantsFollowsChildrenOfTheRoots(t *testing.T) {
	procs := map[int]*Proc{
		1:  {PID: 1},
		10: {PID: 10, PPID: 1},
		11: {PID: 11, PPID: 10},
		12: {PID: 12, PPID: 11},
		20: {PID: 20, PPID: 1},
	}
	got := descendants(procs, map[int]bool{10: true})
	for pid, want := range map[int]bool{10: true, 11: true, 12: true, 1: false, 20: false} {
		if got[pid] != want {
			t.Errorf("descendants of 10 include %d: %v, want %v", pid, got[pid], want)
		}
	}
}

func TestKillAllEndsAProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killAll([]int{cmd.Process.Pid}, 0)
	if err := <-done; err == nil {
		t.Error("sleep exited cleanly; want it killed")
	}
}
