package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-runtime/berth/hack/bench/report"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// lists calls ListPodSandbox, ListContainers and ListContainerStats with
// no filter, as kubelet's relist and stats provider do, -lists times each
// (interleaved), and records p50 and p99 of each. Every call must see all
// n pods.
func (r *runner) lists(ctx context.Context, n int) error {
	samples := map[string][]float64{}
	failed := map[string]error{}
	for i := 0; i < r.o.lists; i++ {
		for _, c := range r.listCalls(n) {
			if failed[c.name] != nil {
				continue // a call that fails is not retried; the others go on
			}
			d, err := timed(ctx, c.call)
			if err != nil {
				failed[c.name] = fmt.Errorf("%s: %w", c.name, err)
				continue
			}
			samples[c.name] = append(samples[c.name], report.Millis(d))
		}
	}
	for name, ms := range samples {
		r.out.Set("list."+name+".p50", report.Percentile(ms, 50))
		r.out.Set("list."+name+".p99", report.Percentile(ms, 99))
	}
	var errs []error
	for _, err := range failed {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type listCall struct {
	name string
	call func(context.Context) error
}

// listCalls are the calls a kubelet makes every second, each checking
// that it saw at least n pods or containers.
func (r *runner) listCalls(n int) []listCall {
	atLeast := func(what string, got int) error {
		if got < n {
			return fmt.Errorf("%d %s listed, want at least %d", got, what, n)
		}
		return nil
	}
	return []listCall{
		{"pod_sandbox", func(ctx context.Context) error {
			resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				return err
			}
			return atLeast("pods", len(resp.Items))
		}},
		{"containers", func(ctx context.Context) error {
			resp, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			if err != nil {
				return err
			}
			return atLeast("containers", len(resp.Containers))
		}},
		{"container_stats", func(ctx context.Context) error {
			resp, err := r.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			if err != nil {
				return err
			}
			return atLeast("container stats", len(resp.Stats))
		}},
	}
}

// poll calls the list calls once a second until the window ends, like
// kubelet's PLEG relist and stats provider. Calls run on ctx, not on the
// window, so that none is cut short. A call that fails is dropped from
// the poll, the others go on, and the failure is returned at the end: the
// CPU figure is then reported with the error beside it.
func (r *runner) poll(ctx context.Context, n int, window time.Duration) error {
	end := time.Now().Add(window)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failed := map[string]error{}
	var errs []error
	for {
		for _, c := range r.listCalls(n) {
			if failed[c.name] != nil {
				continue
			}
			if _, err := timed(ctx, c.call); err != nil {
				failed[c.name] = err
				errs = append(errs, fmt.Errorf("poll %s: %w", c.name, err))
			}
		}
		left := time.Until(end)
		if left <= 0 {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(left):
			return errors.Join(errs...)
		case <-tick.C:
		}
	}
}
