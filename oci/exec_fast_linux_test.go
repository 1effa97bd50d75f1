package oci

// The C side of exec (oci/nsenter): what it refuses, and which signals its
// PID-namespace proxy passes on.

import (
	"bufio"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fastExecError runs the berthd binary as the exec fast path would be run,
// with nsenter and exec.c reading the given settings, and returns the
// error it reports on its sync pipe ("" if it reports none).
func fastExecError(t *testing.T, nsenter string, pairs ...string) string {
	t.Helper()
	var blob []byte
	for _, s := range pairs {
		blob = append(append(blob, s...), 0)
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer syncR.Close()
	netns, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	cmd := &exec.Cmd{
		Path: testBinary,
		Args: []string{"berth-exec"},
		Env:  []string{"_BERTH_NSENTER=" + nsenter, "_BERTH_EXEC_C=" + hex.EncodeToString(blob)},
		Dir:  "/",
		// fd 3: the sync pipe; fd 4: the host's network namespace.
		ExtraFiles: []*os.File{syncW, netns},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	syncW.Close()
	msg, _ := readMsg(bufio.NewReader(syncR))
	cmd.Wait()
	return msg.Error
}

// Each item the Go side passes is checked: past exec.c's 4096 slots, or
// not wholly a number in range, the exec fails saying so instead of
// dropping the item or running with a number read from a prefix.
func TestFastExecRefusesWhatItCannotHoldOrParse(t *testing.T) {
	many := func(key string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, key, strconv.Itoa(i+1))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		nsenter string
		pairs   []string
		want    string
	}{
		{"4097 arguments are refused", "n:4", many("arg", 4097), "exec: more than 4096 args"},
		{"4097 environment variables are refused", "n:4", append([]string{"arg", "true"}, many("env", 4097)...), "exec: more than 4096 environment variables"},
		{"4097 groups are refused", "n:4", append([]string{"arg", "true"}, many("group", 4097)...), "exec: more than 4096 additional groups"},
		{"a uid with trailing junk is refused", "n:4", []string{"arg", "true", "uid", "12x"}, `malformed uid "12x"`},
		{"a uid past 32 bits is refused", "n:4", []string{"arg", "true", "uid", "4294967296"}, `malformed uid "4294967296"`},
		{"a negative gid is refused", "n:4", []string{"arg", "true", "gid", "-1"}, `malformed gid "-1"`},
		{"an oom_score_adj out of range is refused", "n:4", []string{"arg", "true", "oom", "1001"}, `malformed oom_score_adj "1001"`},
		{"an rlimit without its hard limit is refused", "n:4", []string{"arg", "true", "rlimit", "7:10"}, `malformed rlimit "7:10"`},
		{"an rlimit with junk is refused", "n:4", []string{"arg", "true", "rlimit", "7:10:2x"}, `malformed rlimit "2x"`},
		{"a capability mask that is no hex is refused", "n:4", []string{"arg", "true", "capb", "zz"}, `malformed capb "zz"`},
		{"a namespace fd with junk is refused", "n:4x", []string{"arg", "true"}, `malformed _BERTH_NSENTER fd "4x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fastExecError(t, tc.nsenter, tc.pairs...); got != tc.want {
				t.Errorf("exec reported %q, want %q", got, tc.want)
			}
		})
	}
}

// The proxy left outside a PID namespace passes on the signals sent to
// ask the program something, and not a fault: SIGSEGV kills the proxy
// itself (which the program does not survive) instead of reaching the
// program.
func TestExecProxyForwardsRequestsButNotFaults(t *testing.T) {
	rt := newRuntime(t, handlers()[0])
	c := mustRunning(t, rt)
	for _, tc := range []struct {
		sig  syscall.Signal
		want int
	}{
		{unix.SIGTERM, 7},        // the program's trap
		{unix.SIGSEGV, 128 + 11}, // the proxy's own death
	} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p, err := rt.Exec(context.Background(), c.id,
			execProc("sh", "-c", `trap "exit 7" TERM; trap "exit 9" SEGV; echo ready; while :; do sleep 1; done`), IO{Stdout: w})
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(r).ReadString('\n'); line != "ready\n" {
			t.Fatalf("exec said %q, %v", line, err)
		}
		r.Close()
		if err := p.(*execProcess).cmd.Process.Signal(tc.sig); err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); err != nil || code != tc.want {
			t.Errorf("after %v to the proxy: exit %d %v, want %d", tc.sig, code, err, tc.want)
		}
	}
	// The program behind the killed proxy dies with it.
	for {
		pids, _ := os.ReadFile("/sys/fs/cgroup/pids" + c.spec.Linux.CgroupsPath + "/cgroup.procs")
		if len(strings.Fields(string(pids))) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
