package main

import (
	"context"
	"fmt"

	"github.com/berth-runtime/berth/hack/bench/report"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// execSync runs `true` in p's container -execs times, one after another,
// as kubelet's exec probes do, and records p50 and p99.
func (r *runner) execSync(ctx context.Context, p pod) error {
	ms, err := r.execTrue(ctx, p, r.o.execs)
	if err != nil {
		return err
	}
	r.out.Set("exec_sync.p50", report.Percentile(ms, 50))
	r.out.Set("exec_sync.p99", report.Percentile(ms, 99))
	return nil
}

// seccompWorkloads are pod start and ExecSync again with the containers
// confined by the RuntimeDefault seccomp profile, as hardened clusters
// (kubelet's seccompDefault, the restricted Pod Security Standard) run
// them: -seq-pods pods one after another from none running, as
// pod_start.seq, then -execs ExecSyncs in the first. The pods are removed
// afterwards; those that could not be are returned.
func (r *runner) seccompWorkloads(ctx context.Context) ([]pod, error) {
	r.seccomp = true
	defer func() { r.seccomp = false }()
	pods, err := r.podStart(ctx, "seccomp", r.o.seqPods, 1)
	if err == nil {
		var ms []float64
		if len(pods) == 0 || pods[0].container == "" {
			err = fmt.Errorf("no seccomp pod is running")
		} else if ms, err = r.execTrue(ctx, pods[0], r.o.execs); err == nil {
			r.out.Set("exec_sync.seccomp.p50", report.Percentile(ms, 50))
			r.out.Set("exec_sync.seccomp.p99", report.Percentile(ms, 99))
		}
	}
	left, terr := r.podTeardown(ctx, "", pods, r.o.parallel)
	if err == nil {
		err = terr
	}
	return left, err
}

// execTrue runs `true` n times in p's container and returns each call's
// milliseconds.
func (r *runner) execTrue(ctx context.Context, p pod, n int) ([]float64, error) {
	var ms []float64
	for i := 0; i < n; i++ {
		var resp *runtimeapi.ExecSyncResponse
		d, err := timed(ctx, func(ctx context.Context) error {
			var err error
			resp, err = r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: p.container, Cmd: []string{"true"}, Timeout: 10})
			return err
		})
		if err != nil {
			return ms, fmt.Errorf("ExecSync %d: %w", i, err)
		}
		if resp.ExitCode != 0 {
			return ms, fmt.Errorf("ExecSync %d: true exited %d: %s", i, resp.ExitCode, resp.Stderr)
		}
		ms = append(ms, report.Millis(d))
	}
	return ms, nil
}
