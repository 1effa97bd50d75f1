package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/berth-runtime/berth/hack/bench/daemon"
	"github.com/berth-runtime/berth/hack/bench/report"
	"golang.org/x/sys/unix"
)

// machine describes this machine and the runtimes' versions.
func machine(versions map[string]string) report.Machine {
	m := report.Machine{Cores: runtime.NumCPU(), Versions: versions}
	m.Hostname, _ = os.Hostname()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		m.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemoryGB = int((uint64(si.Totalram)*uint64(si.Unit) + (1<<30 - 1)) >> 30)
	}
	if out, err := runOut("runc", "--version"); err == nil {
		m.Versions["runc"] = strings.SplitN(out, "\n", 2)[0]
	}
	return m
}

func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

// buildBerthd builds the daemon the benchmark runs.
func buildBerthd(ctx context.Context, module, out string) error {
	return daemon.BuildBerthd(ctx, module, out)
}

// writeResult saves an auxiliary file in the results directory.
func writeResult(r *runner, name string, data []byte) error {
	return os.WriteFile(filepath.Join(r.resDir, name), data, 0o644)
}

// The README's benchmark table sits between these markers.
const (
	readmeBegin = "<!-- bench:begin -->"
	readmeEnd   = "<!-- bench:end -->"
)

// updateReadme replaces the table between the markers in path with res's
// Markdown, adding the markers at the end if the file has none.
func updateReadme(path string, res *report.Result) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read README: %w", err)
	}
	block := readmeBegin + "\n" + res.Markdown() + readmeEnd
	var out []byte
	i, j := bytes.Index(old, []byte(readmeBegin)), bytes.Index(old, []byte(readmeEnd))
	if i >= 0 && j > i {
		out = append(append(append([]byte(nil), old[:i]...), block...), old[j+len(readmeEnd):]...)
	} else {
		out = append(append(old, '\n'), block+"\n"...)
	}
	return os.WriteFile(path, out, 0o644)
}
