package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-runtime/berth/hack/bench/daemon"
)

// captureProfiles saves berthd's heap profile with every pod running, then
// its CPU profile over a load of pod starts and teardowns, execs and list
// calls, and `go tool pprof -top` of each beside them. It runs after the
// measured workloads, so profiling costs none of their figures.
func (r *runner) captureProfiles(ctx context.Context) error {
	b, ok := r.d.(*daemon.Berthd)
	if !ok {
		return nil
	}
	client := b.Profiles()
	if err := r.fetchProfile(ctx, client, "heap", "berth-heap.pprof"); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		done <- r.fetchProfile(ctx, client, fmt.Sprintf("profile?seconds=%d", r.o.profileSeconds), "berth-cpu.pprof")
	}()
	pctx, cancel := context.WithTimeout(ctx, time.Duration(r.o.profileSeconds)*time.Second)
	defer cancel()
	var loadErr error
	for pctx.Err() == nil && loadErr == nil {
		var pods []pod
		pods, loadErr = r.startPods(pctx, r.o.parallel, r.o.parallel)
		for _, p := range pods {
			if loadErr == nil {
				_, loadErr = r.execTrue(pctx, p, 1)
			}
		}
		for _, c := range listCalls(r.rt, 0) {
			timed(pctx, c.run) // failures are the list workload's to report
		}
		left, err := r.podTeardown(context.WithoutCancel(ctx), "", pods, r.o.parallel)
		if err != nil {
			return fmt.Errorf("profiling load: %w (pods left: %d)", err, len(left))
		}
	}
	if err := <-done; err != nil {
		return err
	}
	if loadErr != nil && pctx.Err() == nil {
		return fmt.Errorf("profiling load: %w", loadErr)
	}
	return nil
}

// fetchProfile saves berthd's /debug/pprof/<what> as results/<name> and
// its pprof -top beside it.
func (r *runner) fetchProfile(ctx context.Context, client *http.Client, what, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://berthd/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s profile: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetch %s profile: %s: %s", what, resp.Status, msg)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s profile: %w", what, err)
	}
	path := filepath.Join(r.resDir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	// Cumulative order shows which CRI call the time or memory went to.
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=60", r.berthd, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof %s: %w: %s", name, err, top)
	}
	if err := os.WriteFile(path+".top.txt", top, 0o644); err != nil {
		return err
	}
	r.profiles[name] = berthFrames(string(top), 15)
	return nil
}

// berthFrames keeps the header of a pprof -top listing and its first n
// lines naming Berth's own code, which say where the cost is.
func berthFrames(top string, n int) string {
	var out []string
	for _, line := range strings.Split(top, "\n") {
		switch {
		case strings.HasPrefix(line, "Type:"), strings.HasPrefix(line, "Duration:"), strings.HasPrefix(line, "Showing nodes"):
			out = append(out, line)
		case strings.Contains(line, "berth-runtime/berth/") && n > 0:
			out = append(out, line)
			n--
		}
	}
	return strings.Join(out, "\n")
}
