// Package bench runs the benchmark program (hack/bench) in its short mode
// against Berth alone: it proves that the harness drives every workload
// through berthd's CRI socket and reports every figure, and that it leaves
// nothing behind. It asserts no timing: speed is `make bench`'s business.
package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/hack/bench/report"
)

// moduleRoot is the directory of Berth's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func TestShortRunAgainstBerthReportsEveryFigure(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the benchmark needs root (namespaces, cgroups, mounts); run the tests as root")
	}
	root := moduleRoot(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bench")
	build := exec.Command("go", "build", "-o", bin, "./hack/bench")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hack/bench: %v\n%s", err, out)
	}

	results, work := filepath.Join(tmp, "results"), filepath.Join(tmp, "work")
	args := []string{"-short", "-runtimes", "berth", "-profile",
		"-results", results, "-workdir", work, "-module", root,
		// A bridge and subnet of its own, apart from a `make bench` running beside it.
		"-bridge", "bbtest0", "-subnet", "10.232.0.0/24"}
	if berthd := os.Getenv("BERTHD"); berthd != "" {
		args = append(args, "-berthd", berthd) // make test built it already
	}
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	t.Logf("bench output:\n%s", out.String())

	paths, _ := filepath.Glob(filepath.Join(results, "*", "results.json"))
	if len(paths) != 1 {
		t.Fatalf("want one results.json under %s, found %v (bench: %v)", results, paths, runErr)
	}
	res, err := report.Load(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range res.Runs {
		for wl, msg := range run.Errors {
			t.Errorf("workload %s failed on %s: %s", wl, run.Runtime, msg)
		}
	}
	if runErr != nil {
		t.Errorf("bench exited with %v", runErr)
	}

	t.Run("every figure is reported", func(t *testing.T) {
		if len(res.Rows) < 60 {
			t.Errorf("%d figures reported, want every workload's (at least 60)", len(res.Rows))
		}
		for _, row := range res.Rows {
			v := row.Median[report.Berth]
			switch {
			case v == nil:
				t.Errorf("%s: missing", row.Name)
			case *v < 0 || (*v == 0 && !row.MayBeZero):
				t.Errorf("%s = %v %s, want a positive value", row.Name, *v, row.Unit)
			}
		}
	})
	t.Run("the streaming exec and attach workloads ran", func(t *testing.T) {
		for _, name := range []string{"exec_stream.p50", "exec_stream.p99", "exec_stream.floor.p50", "exec_stream.floor.p99",
			"attach.first_byte.p50", "attach.first_byte.p99", "attach.first_byte.floor.p50", "attach.first_byte.floor.p99"} {
			if _, ok := res.Value(name, report.Berth); !ok {
				t.Errorf("%s not reported", name)
			}
		}
	})
	t.Run("the sibling image fetches only its own layers", func(t *testing.T) {
		// A count, not a timing: shared layers must not be downloaded again.
		if v, ok := res.Value("pull.sibling.layers_fetched", report.Berth); !ok || v != 2 {
			t.Errorf("pull.sibling.layers_fetched = %v (reported: %v), want 2", v, ok)
		}
	})
	t.Run("results are written as JSON and Markdown with profiles", func(t *testing.T) {
		dir := filepath.Dir(paths[0])
		md, err := os.ReadFile(filepath.Join(dir, "results.md"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(md, []byte("| pod_start.seq.total.p50 | ms |")) {
			t.Errorf("results.md has no pod start row:\n%s", md)
		}
		for _, f := range []string{"berth-heap.pprof", "berth-cpu.pprof", "berth-cpu.pprof.top.txt", "processes-berth-1.txt"} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
				t.Errorf("%s: missing or empty (%v)", f, err)
			}
		}
	})
	t.Run("nothing is left behind", func(t *testing.T) {
		if _, err := os.Stat(work); !os.IsNotExist(err) {
			t.Errorf("work directory %s still exists (%v)", work, err)
		}
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		if bytes.Contains(mounts, []byte(work)) {
			t.Errorf("mounts left under %s", work)
		}
		if _, err := os.Stat("/sys/class/net/bbtest0"); err == nil {
			t.Error("bridge bbtest0 left behind")
		}
		pid := strconv.Itoa(cmd.Process.Pid)
		if left, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/berth-bench-%s-*", pid)); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/exe")
		for _, p := range procs {
			if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, work) {
				t.Errorf("process %s still runs %s", filepath.Dir(p), exe)
			}
		}
	})
}
