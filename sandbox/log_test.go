package sandbox

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readRecords returns the log file's records as "stream tag content".
func readRecords(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		ts, rest, ok := strings.Cut(l, " ")
		if !ok {
			t.Fatalf("record %q has no timestamp", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("record %q: timestamp: %v", l, err)
		}
		out = append(out, rest)
	}
	return out
}

func TestCopyLogRecords(t *testing.T) {
	long := strings.Repeat("x", maxLogLine)
	for _, tc := range []struct {
		name  string
		input string
		want  []string
	}{
		{name: "lines are full records", input: "a\nbb\n", want: []string{"stdout F a", "stdout F bb"}},
		{name: "an empty line is a full empty record", input: "\n", want: []string{"stdout F "}},
		{name: "output without a final newline is flushed as full at EOF", input: "a\ntail", want: []string{"stdout F a", "stdout F tail"}},
		{name: "a line of exactly 16 KiB stays whole", input: long + "\n", want: []string{"stdout F " + long}},
		{name: "a longer line is split into partial records", input: long + long + "yz\n",
			want: []string{"stdout P " + long, "stdout P " + long, "stdout F yz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			l, err := openCRILog(splitLogPath("", path))
			if err != nil {
				t.Fatal(err)
			}
			// One byte at a time and in one piece must give the same records.
			for _, r := range []io.Reader{strings.NewReader(tc.input), iotest.OneByteReader(strings.NewReader(tc.input))} {
				os.Truncate(path, 0)
				copyLog(l, "stdout", r)
				got := readRecords(t, path)
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Fatalf("records = %.200q, want %.200q", got, tc.want)
				}
			}
			l.close()
		})
	}
}

func TestCRILogTimestampFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, _ := openCRILog(splitLogPath("", path))
	l.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600)) }
	l.write("stderr", false, []byte("hi"))
	l.close()
	data, _ := os.ReadFile(path)
	if got, want := string(data), "2026-01-02T02:04:05.000000600Z stderr F hi\n"; got != want {
		t.Fatalf("record %q, want %q", got, want)
	}
}

func TestCRILogReopenAfterRename(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, "c.log")
	l, err := openCRILog(splitLogPath("", path))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	l.write("stdout", false, []byte("one"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.write("stdout", false, []byte("two")) // still into the renamed file
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	l.write("stdout", false, []byte("three"))
	if got := readRecords(t, path+".1"); strings.Join(got, "|") != "stdout F one|stdout F two" {
		t.Errorf("rotated file = %q", got)
	}
	if got := readRecords(t, path); strings.Join(got, "|") != "stdout F three" {
		t.Errorf("new file = %q", got)
	}
	// A log directory that vanished is made again.
	os.RemoveAll(dir)
	if err := l.reopen(); err != nil {
		t.Fatalf("reopen into a removed directory: %v", err)
	}
	l.write("stdout", false, []byte("four"))
	if got := readRecords(t, path); strings.Join(got, "|") != "stdout F four" {
		t.Errorf("file in the recreated directory = %q", got)
	}
}

func TestExitStatusRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := readExitStatus(dir); ok || err != nil {
		t.Fatalf("no exit file: ok %v err %v", ok, err)
	}
	want := exitStatus{ExitCode: 137, Signal: 9, FinishedAt: time.Unix(1700000000, 123).UTC(), OOMKilled: true}
	if err := writeJSONAtomic(filepath.Join(dir, exitFile), want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readExitStatus(dir)
	if err != nil || !ok || got != want {
		t.Fatalf("got %+v ok %v err %v, want %+v", got, ok, err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestCounterReadsCgroupKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "memory.oom_control")
	os.WriteFile(f, []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 0o644)
	if n := counter(f, "oom_kill"); n != 3 {
		t.Fatalf("oom_kill = %d, want 3", n)
	}
	if n := counter(filepath.Join(t.TempDir(), "gone"), "oom_kill"); n != 0 {
		t.Fatalf("missing file = %d, want 0", n)
	}
}
