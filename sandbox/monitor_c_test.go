package sandbox

// The C monitor (package monitorc) against the Go one: a fake monitor,
// this test binary re-executed, runs a shell script as its "container"
// exactly as the real monitor does after Create (subreaper, pipes, the
// control socket), then does steps 4 and 5 either in Go or by handing over
// to the C program. Both must leave the same log records and exit.json.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/sandbox/monitorc"
	"golang.org/x/sys/unix"
)

const fakeMonitorEnv = "BERTH_TEST_FAKE_MONITOR"

func init() {
	if mode := os.Getenv(fakeMonitorEnv); mode != "" {
		if err := fakeMonitor(mode == "go"); err != nil {
			fmt.Fprintln(os.Stderr, "fake monitor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// fakeMonitor is createContainer with sh -c $SCRIPT for the runtime, then
// steps 4 and 5. The working directory is the state directory.
func fakeMonitor(goOnly bool) error {
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	mon := &monitor{goOnly: goOnly, oomFile: os.Getenv("OOM_FILE")}
	if p := os.Getenv("LOG_PATH"); p != "" {
		if mon.log, err = openCRILog(splitLogPath("", p)); err != nil {
			return err
		}
	}
	cmd := exec.Command("/bin/sh", "-c", os.Getenv("SCRIPT"))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		return err
	}
	outW.Close()
	errW.Close()
	mon.outputs = []output{{"stdout", outR}, {"stderr", errR}}
	if mon.control, err = listenControl(); err != nil {
		return err
	}
	return mon.run(dir, cmd.Process.Pid)
}

// fakeRun is a fake monitor started in a new state directory.
type fakeRun struct {
	dir, log, mode string
	cmd            *exec.Cmd
	stderr         strings.Builder
}

func startFake(t *testing.T, mode, script string, env ...string) *fakeRun {
	t.Helper()
	dir := t.TempDir()
	r := &fakeRun{dir: dir, log: filepath.Join(dir, "logs", "c.log"), mode: mode}
	r.cmd = exec.Command(os.Args[0])
	r.cmd.Dir = dir
	r.cmd.Env = append([]string{fakeMonitorEnv + "=" + mode, "SCRIPT=" + script, "LOG_PATH=" + r.log}, env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stderr, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

// wait waits for the fake monitor to exit and returns its exit.json.
func (r *fakeRun) wait(t *testing.T) exitStatus {
	t.Helper()
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("monitor: %v: %s", err, r.stderr.String())
	}
	// The C program must have done it, not the Go fallback.
	if r.mode == "c" && r.stderr.Len() > 0 {
		t.Fatalf("monitor said %q", r.stderr.String())
	}
	st, ok, err := readExitStatus(r.dir)
	if err != nil || !ok {
		t.Fatalf("exit status: ok %v, %v", ok, err)
	}
	return st
}

// waitRole waits until the monitor's command line names role.
func (r *fakeRun) waitRole(t *testing.T, role string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.cmd.Process.Pid))
		if args := strings.Split(string(b), "\x00"); args[0] == role {
			if len(args) < 2 || args[1] != r.dir {
				t.Fatalf("monitor command line %q does not name its state dir", args)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor is %q, not %s", b, role)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var cTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)

// streamRecords returns the log's records of each stream as "tag content"
// (the two streams' interleaving depends on scheduling); every timestamp
// must have kubelet's form.
func streamRecords(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	if len(data) == 0 {
		return out
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("log does not end in a newline: %.100q", data[max(0, len(data)-100):])
	}
	for _, l := range strings.Split(string(data[:len(data)-1]), "\n") {
		parts := strings.SplitN(l, " ", 3)
		if len(parts) != 3 || !cTimestamp.MatchString(parts[0]) {
			t.Fatalf("record %.100q is not <timestamp> <stream> <tag> <content>", l)
		}
		out[parts[1]] = append(out[parts[1]], parts[2])
	}
	return out
}

func TestCMonitorWritesTheSameLogRecordsAsGo(t *testing.T) {
	requireCMonitor(t)
	line := func(n int, c string) string { return strings.Repeat(c, n) }
	var mixed strings.Builder
	for i := 0; mixed.Len() < 1<<20; i++ {
		mixed.WriteString(line(i*37%40000, "m") + "\n")
	}
	for _, tc := range []struct {
		name           string
		stdout, stderr string
	}{
		{name: "no output"},
		{name: "lines and empty lines", stdout: "a\n\nb\n\n", stderr: "\n"},
		{name: "CRLF stays in the content", stdout: "a\r\nb\r\n\r\n", stderr: "x\ry\r\n"},
		{name: "a line of exactly 16 KiB stays whole", stdout: line(maxLogLine, "x") + "\n"},
		{name: "a line one byte longer is split", stdout: line(maxLogLine+1, "x") + "\n", stderr: line(maxLogLine+1, "e") + "\n"},
		{name: "a line of two and a bit times 16 KiB", stdout: line(2*maxLogLine+5, "y") + "\nz\n"},
		{name: "a final line without newline is full", stdout: "x\ntail", stderr: "no newline at all"},
		{name: "a final long line without newline is split then full", stdout: line(2*maxLogLine+3, "t")},
		{name: "a final line of exactly 16 KiB without newline", stdout: line(maxLogLine, "u")},
		{name: "NUL and invalid UTF-8 pass through", stdout: "a\x00b\xff\xfe\n\x00\n"},
		{name: "a MiB of lines of many lengths", stdout: mixed.String(), stderr: mixed.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := t.TempDir()
			os.WriteFile(filepath.Join(in, "out"), []byte(tc.stdout), 0o644)
			os.WriteFile(filepath.Join(in, "err"), []byte(tc.stderr), 0o644)
			script := fmt.Sprintf("cat %s/out; cat %s/err >&2", in, in)
			got := map[string]map[string][]string{}
			for _, mode := range []string{"go", "c"} {
				r := startFake(t, mode, script)
				if st := r.wait(t); st.ExitCode != 0 {
					t.Fatalf("%s: exit %d", mode, st.ExitCode)
				}
				got[mode] = streamRecords(t, r.log)
			}
			for _, stream := range []string{"stdout", "stderr"} {
				g, c := got["go"][stream], got["c"][stream]
				if strings.Join(g, "\n") != strings.Join(c, "\n") {
					t.Errorf("%s: C wrote %d records %.200q, Go %d %.200q", stream, len(c), c, len(g), g)
				}
			}
		})
	}
}

func TestCMonitorExitStatus(t *testing.T) {
	requireCMonitor(t)
	oomDir := t.TempDir()
	oomFile := func(content string) string {
		f := filepath.Join(oomDir, strconv.Itoa(len(content)))
		os.WriteFile(f, []byte(content), 0o644)
		return f
	}
	for _, tc := range []struct {
		name   string
		script string
		oom    string
		want   exitStatus
	}{
		{name: "an exit code is kept", script: "exit 42", want: exitStatus{ExitCode: 42}},
		{name: "a signal is 128+signal", script: "kill -KILL $$", want: exitStatus{ExitCode: 137, Signal: 9}},
		{name: "an OOM kill counted in memory.events is noted", script: "kill -KILL $$",
			oom: oomFile("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), want: exitStatus{ExitCode: 137, Signal: 9, OOMKilled: true}},
		{name: "a v1 memory.oom_control without kills is no OOM kill", script: "exit 1",
			oom: oomFile("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"), want: exitStatus{ExitCode: 1}},
		{name: "a missing counter file is no OOM kill", script: "exit 0", oom: filepath.Join(oomDir, "gone")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"go", "c"} {
				before := time.Now()
				r := startFake(t, mode, tc.script, "OOM_FILE="+tc.oom)
				got := r.wait(t)
				if got.FinishedAt.Before(before) || got.FinishedAt.After(time.Now()) {
					t.Errorf("%s: finished_at %v is not between the start and the end of the test", mode, got.FinishedAt)
				}
				got.FinishedAt = time.Time{}
				if got != tc.want {
					t.Errorf("%s: exit status %+v, want %+v", mode, got, tc.want)
				}
				entries, _ := os.ReadDir(r.dir)
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				if strings.Join(names, " ") != "exit.json logs m.sock" {
					t.Errorf("%s: state dir holds %v", mode, names)
				}
			}
		})
	}
}

func TestCMonitorReopensTheLogAndAnswersOnItsSocket(t *testing.T) {
	requireCMonitor(t)
	r := startFake(t, "c", `echo before; while [ ! -e go ]; do sleep 0.02; done; echo after; echo err >&2`)
	r.waitRole(t, monitorc.Role)
	waitRecords(t, r.log, 1)
	ctx := context.Background()
	if err := askMonitor(ctx, r.dir, "bogus"); err == nil || err.Error() != "unknown request" {
		t.Errorf("unknown request: %v", err)
	}
	if err := os.Rename(r.log, r.log+".1"); err != nil {
		t.Fatal(err)
	}
	if err := askMonitor(ctx, r.dir, "reopen"); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := os.Stat(r.log); err != nil {
		t.Fatalf("no new log after reopen: %v", err)
	}
	// A log path that cannot be opened is an error, and the monitor keeps
	// writing to the file it has.
	logs := filepath.Dir(r.log)
	os.Rename(logs, logs+".away")
	os.WriteFile(logs, nil, 0o644)
	if err := askMonitor(ctx, r.dir, "reopen"); err == nil || !strings.HasPrefix(err.Error(), "reopen log "+r.log+": ") {
		t.Errorf("reopen under a file: %v", err)
	}
	os.Remove(logs)
	os.Rename(logs+".away", logs)
	// A symlink swapped in for the log after a rotation is not followed.
	outside := filepath.Join(r.dir, "outside.log")
	os.Rename(r.log, r.log+".2")
	os.Symlink(outside, r.log)
	if err := askMonitor(ctx, r.dir, "reopen"); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("reopen through a symlink: %v", err)
	}
	if _, err := os.Lstat(outside); err == nil {
		t.Errorf("reopen followed the symlink to %s", outside)
	}
	os.Remove(r.log)
	os.Rename(r.log+".2", r.log)
	os.WriteFile(filepath.Join(r.dir, "go"), nil, 0o644)
	r.wait(t)
	if got := streamRecords(t, r.log+".1"); strings.Join(got["stdout"], "|") != "F before" {
		t.Errorf("renamed log: %q", got)
	}
	if got := streamRecords(t, r.log); strings.Join(got["stdout"], "|") != "F after" || strings.Join(got["stderr"], "|") != "F err" {
		t.Errorf("reopened log: %q", got)
	}
}

func TestCMonitorDrainsForABoundedTime(t *testing.T) {
	requireCMonitor(t)
	// A process the container left behind holds its stdout: the monitor
	// writes the exit status without waiting for it.
	r := startFake(t, "c", `sleep 600 & echo $! > orphan; echo bye; exit 3`)
	if st := r.wait(t); st.ExitCode != 3 {
		t.Errorf("exit %d, want 3", st.ExitCode)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "orphan"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := unix.Kill(pid, 0); err != nil {
		t.Errorf("the orphan holding the output is gone (%v): the drain was not what ended", err)
	}
	unix.Kill(pid, unix.SIGKILL)
	if got := streamRecords(t, r.log); strings.Join(got["stdout"], "|") != "F bye" {
		t.Errorf("log: %q", got)
	}
}

func waitRecords(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Count(string(data), "\n") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s has %q, want %d records", path, data, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requireCMonitor(t *testing.T) {
	t.Helper()
	if !monitorc.Available {
		t.Skip("built without cgo: no C monitor")
	}
}

// The C monitor takes its fds and pid only as whole numbers: a value with
// junk after it, or past an int, stops it with the key named, instead of
// running with the number read from a prefix.
func TestCMonitorRefusesAHandoffThatIsNoNumber(t *testing.T) {
	requireCMonitor(t)
	for _, spec := range []string{"pid=12x", "pid=1,stdout=4294967299", "pid=1,stdout=", "pid=+1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = []string{"_BERTH_MONITOR_C=" + spec}
		cmd.Dir = t.TempDir() // where a monitor that ran would write exit.json
		out, err := cmd.CombinedOutput()
		key := spec[strings.LastIndex(spec, ",")+1:]
		if err == nil || !strings.Contains(string(out), key+" is no number") {
			t.Errorf("monitor with %q: %v, said %q; want it to refuse %q", spec, err, out, key)
		}
	}
}
