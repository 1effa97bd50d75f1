package daemon

import (
	"os"
	"os/exec"
	"testing"
)

// TestBerthdRootsLeaveOtherDaemonsAlone: cleanup kills everything under
// the roots, so a berthd of the same binary serving another directory (as
// the tests run several at once) must not be one of them.
func TestBerthdRootsLeaveOtherDaemonsAlone(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	b := &Berthd{process: process{opts: Options{Dir: "/tmp/bench-1"}}, binaryInfo: fi}
	b.cmd = &exec.Cmd{Process: &os.Process{Pid: 100}}
	procs := map[int]*Proc{
		100: {PID: 100, Argv: []string{exe, "--config", "/tmp/bench-1/config.toml"}, exe: fi},
		101: {PID: 101, Argv: []string{"berth-monitor", "--spare", "/tmp/bench-1/state"}, exe: fi},
		102: {PID: 102, Argv: []string{"berth-monitor-c", "/tmp/bench-1/state/containers/abc"}, exe: fi},
		200: {PID: 200, Argv: []string{exe, "--config", "/tmp/other/config.toml"}, exe: fi},
		201: {PID: 201, Argv: []string{"berth-monitor-c", "/tmp/other/state/containers/def"}, exe: fi},
		202: {PID: 202, Argv: []string{"berth-monitor-c", "/tmp/bench-10/state/containers/0"}, exe: fi},
		300: {PID: 300, Argv: []string{"sleep", "/tmp/bench-1/x"}},
	}
	got := b.roots(procs)
	for pid, want := range map[int]bool{100: true, 101: true, 102: true, 200: false, 201: false, 202: false, 300: false} {
		if got[pid] != want {
			t.Errorf("roots include %d %v: %v, want %v", pid, procs[pid].Argv, got[pid], want)
		}
	}
}
