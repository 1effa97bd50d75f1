package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/berth-runtime/berth/hack/bench/report"
	"google.golang.org/protobuf/proto"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The streaming workloads go through the URL Exec and Attach return, as
// kubelet and kubectl do: client-go's remotecommand with the SPDY
// executor (what kubelet speaks to a runtime's streaming server, the API
// server translating kubectl's WebSocket to it), a new connection per
// call.

// execStream runs `true` in p's container -execs times over the streaming
// URL, non-TTY with stdout and stderr (`kubectl exec pod -- true`), and
// records p50 and p99 of each, from the Exec call to the exit status; then
// the same against the null CRI server, as the floor.
func (r *runner) execStream(ctx context.Context, p pod) error {
	err := r.execStreamLoop(ctx, r.rt, p.container, "exec_stream")
	if err != nil {
		return err
	}
	return r.onNullCRI(ctx, func(rt runtimeapi.RuntimeServiceClient) error {
		return r.execStreamLoop(ctx, rt, "null", "exec_stream.floor")
	})
}

// execStreamLoop records the streaming execs of `true` in container id
// through rt as <figure>.p50 and .p99.
func (r *runner) execStreamLoop(ctx context.Context, rt runtimeapi.RuntimeServiceClient, id, figure string) error {
	return r.samples(figure, func() (time.Duration, error) {
		return timed(ctx, func(ctx context.Context) error {
			resp, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true, Stderr: true})
			if err != nil {
				return fmt.Errorf("Exec: %w", err)
			}
			ex, err := spdyExecutor(resp.Url)
			if err != nil {
				return err
			}
			// An exit status other than 0 is an error here.
			return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
		})
	})
}

// samples takes one sample -execs times, one after another, and records
// their p50 and p99 as <figure>.p50 and .p99.
func (r *runner) samples(figure string, one func() (time.Duration, error)) error {
	var ms []float64
	for i := 0; i < r.o.execs; i++ {
		d, err := one()
		if err != nil {
			return fmt.Errorf("%s %d: %w", figure, i, err)
		}
		ms = append(ms, report.Millis(d))
	}
	r.out.Set(figure+".p50", report.Percentile(ms, 50))
	r.out.Set(figure+".p99", report.Percentile(ms, 99))
	return nil
}

// onNullCRI runs f against a null CRI server started for it (with empty
// lists: f makes no list call).
func (r *runner) onNullCRI(ctx context.Context, f func(runtimeapi.RuntimeServiceClient) error) error {
	null, err := startNullCRI(ctx, r.dir, map[string]proto.Message{
		listCallNames[0]: &runtimeapi.ListPodSandboxResponse{},
		listCallNames[1]: &runtimeapi.ListContainersResponse{},
		listCallNames[2]: &runtimeapi.ListContainerStatsResponse{},
	})
	if err == nil {
		err = f(null.rt)
		if cerr := null.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	return nil
}

// attachFirstByte attaches -execs times, one after another, to a
// container created with stdin that runs cat, and records p50 and p99 of
// the time from the Attach call to the first byte of the container's
// output. Each attach sends one line on stdin as soon as its streams are
// up (cat prints nothing unasked, and a container printing all the time
// would burn a core), so the figure is the attach's setup plus one round
// trip through the container's stdio. The pod is started from no
// streaming pod and removed afterwards; it is returned if it could not be.
// The same attaches to the null CRI server are the floor.
func (r *runner) attachFirstByte(ctx context.Context) ([]pod, error) {
	r.attachable = true
	pods, err := r.startPods(ctx, 1, 1)
	r.attachable = false
	if err == nil && (len(pods) == 0 || pods[0].container == "") {
		err = fmt.Errorf("the attach pod is not running")
	}
	if err == nil {
		err = r.attachLoop(ctx, r.rt, pods[0].container, "attach.first_byte")
	}
	if err == nil {
		err = r.onNullCRI(ctx, func(rt runtimeapi.RuntimeServiceClient) error {
			return r.attachLoop(ctx, rt, "null", "attach.first_byte.floor")
		})
	}
	left, terr := r.podTeardown(context.WithoutCancel(ctx), "", pods, 1)
	if err == nil {
		err = terr
	}
	return left, err
}

// attachLoop records -execs attaches to container id through rt as
// <figure>.p50 and .p99.
func (r *runner) attachLoop(ctx context.Context, rt runtimeapi.RuntimeServiceClient, id, figure string) error {
	return r.samples(figure, func() (time.Duration, error) { return attachOnce(ctx, rt, id) })
}

// attachOnce attaches to id with stdin and stdout, sends a line, and
// returns the time from the Attach call to the first byte back. It
// detaches before it returns.
func attachOnce(ctx context.Context, rt runtimeapi.RuntimeServiceClient, id string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	start := time.Now()
	resp, err := rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return 0, fmt.Errorf("Attach: %w", err)
	}
	ex, err := spdyExecutor(resp.Url)
	if err != nil {
		return 0, err
	}
	out := &firstByte{seen: make(chan time.Time, 1)}
	streamCtx, detach := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- ex.StreamWithContext(streamCtx, remotecommand.StreamOptions{
			Stdin: &oneLine{line: []byte("x\n"), ctx: streamCtx}, Stdout: out, Stderr: out})
	}()
	var first time.Time
	select {
	case first = <-out.seen:
	case err := <-done:
		detach()
		return 0, fmt.Errorf("the attach ended before any output: %v", err)
	case <-ctx.Done():
		detach()
		<-done
		return 0, fmt.Errorf("no output: %w", ctx.Err())
	}
	detach()
	<-done // the client has gone when the next attach starts
	return first.Sub(start), nil
}

// spdyExecutor connects to a streaming URL as kubelet does.
func spdyExecutor(rawURL string) (remotecommand.Executor, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("streaming URL %q: %w", rawURL, err)
	}
	return remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
}

// firstByte sends the time of its first write on seen.
type firstByte struct {
	once sync.Once
	seen chan time.Time
}

func (w *firstByte) Write(p []byte) (int, error) {
	if len(p) > 0 {
		w.once.Do(func() { w.seen <- time.Now() })
	}
	return len(p), nil
}

// oneLine reads as line, then blocks until ctx ends: an attach's stdin
// that stays open (its end would close a stdin_once container's stdin).
type oneLine struct {
	line []byte
	ctx  context.Context
}

func (r *oneLine) Read(p []byte) (int, error) {
	if len(r.line) > 0 {
		n := copy(p, r.line)
		r.line = r.line[n:]
		return n, nil
	}
	<-r.ctx.Done()
	return 0, io.EOF
}
