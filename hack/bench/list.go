package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-runtime/berth/hack/bench/report"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// lists calls ListPodSandbox, ListContainers and ListContainerStats with
// no filter, as kubelet's relist and stats provider do, -lists times each
// (interleaved), and records p50 and p99 of each. Every call must see all
// n pods.
//
// It then makes the same calls against a null CRI server (nullcri.go)
// that answers each with the runtime's own last response, and records
// their p50 and p99 as the call's floor: what the gRPC transport, the
// protobuf encoding of that response, this client and the machine cost
// with no runtime behind them.
func (r *runner) lists(ctx context.Context, n int) error {
	last := map[string]proto.Message{}
	err := r.listLoop(ctx, r.rt, n, "", last)
	if len(last) < len(listCallNames) {
		return err // no floor without every response
	}
	null, ferr := startNullCRI(ctx, r.dir, last)
	if ferr == nil {
		ferr = r.listLoop(ctx, null.rt, n, ".floor", nil)
		if cerr := null.close(); ferr == nil {
			ferr = cerr
		}
	}
	if ferr != nil {
		ferr = fmt.Errorf("floor: %w", ferr)
	}
	return errors.Join(err, ferr)
}

// listLoop makes the list calls on rt, recording p50 and p99 of each as
// list.<call><suffix>.p50 and .p99, and keeping each call's last response
// in last when it is not nil.
func (r *runner) listLoop(ctx context.Context, rt runtimeapi.RuntimeServiceClient, n int, suffix string, last map[string]proto.Message) error {
	samples := map[string][]float64{}
	failed := map[string]error{}
	for i := 0; i < r.o.lists; i++ {
		for _, c := range listCalls(rt, n) {
			if failed[c.name] != nil {
				continue // a call that fails is not retried; the others go on
			}
			var resp proto.Message
			d, err := timed(ctx, func(ctx context.Context) (err error) {
				resp, err = c.call(ctx)
				return err
			})
			if err != nil {
				failed[c.name] = fmt.Errorf("%s: %w", c.name, err)
				continue
			}
			samples[c.name] = append(samples[c.name], report.Millis(d))
			if last != nil {
				last[c.name] = resp
			}
		}
	}
	for name, ms := range samples {
		r.out.Set("list."+name+suffix+".p50", report.Percentile(ms, 50))
		r.out.Set("list."+name+suffix+".p99", report.Percentile(ms, 99))
	}
	var errs []error
	for _, err := range failed {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// listCallNames name the list calls in figures, in the order they are made.
var listCallNames = []string{"pod_sandbox", "containers", "container_stats"}

type listCall struct {
	name string
	call func(context.Context) (proto.Message, error)
}

// run makes the call, dropping its response.
func (c listCall) run(ctx context.Context) error {
	_, err := c.call(ctx)
	return err
}

// listCalls are the calls a kubelet makes every second, on rt, each
// checking that it saw at least n pods or containers.
func listCalls(rt runtimeapi.RuntimeServiceClient, n int) []listCall {
	atLeast := func(what string, got int) error {
		if got < n {
			return fmt.Errorf("%d %s listed, want at least %d", got, what, n)
		}
		return nil
	}
	return []listCall{
		{listCallNames[0], func(ctx context.Context) (proto.Message, error) {
			resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				return nil, err
			}
			return resp, atLeast("pods", len(resp.Items))
		}},
		{listCallNames[1], func(ctx context.Context) (proto.Message, error) {
			resp, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			if err != nil {
				return nil, err
			}
			return resp, atLeast("containers", len(resp.Containers))
		}},
		{listCallNames[2], func(ctx context.Context) (proto.Message, error) {
			resp, err := rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			if err != nil {
				return nil, err
			}
			return resp, atLeast("container stats", len(resp.Stats))
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
		for _, c := range listCalls(r.rt, n) {
			if failed[c.name] != nil {
				continue
			}
			if _, err := timed(ctx, c.run); err != nil {
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
