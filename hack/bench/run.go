package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-runtime/berth/hack/bench/daemon"
	"github.com/berth-runtime/berth/hack/bench/report"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runner is one repetition on one runtime: a fresh daemon on fresh
// directories, every workload in turn, and the cleanup.
type runner struct {
	o       options
	env     *env
	rep     int
	runtime string
	berthd  string
	resDir  string
	profile bool // capture berthd's profiles in this run
	// profiles collects the profiles' summaries by file name, for the report.
	profiles map[string]string

	d          daemon.Daemon
	rt         runtimeapi.RuntimeServiceClient
	img        runtimeapi.ImageServiceClient
	out        *report.Run
	dir        string
	cgroupRoot string
	busyboxRef string // what PullImage returned for busybox
	next       int    // pods started so far, for unique names
	seccomp    bool   // containers started now get the RuntimeDefault seccomp profile
	attachable bool   // containers started now run cat on an open stdin
}

// workloadSleep is the argument of every container's sleep: it tells
// container workloads apart from the runtime's own processes (the test
// pause image also runs sleeps).
const workloadSleep = "86399"

// isWorkload reports whether argv is a container's own process: the
// benchmark's sleep, or an ExecSync'd true.
func isWorkload(argv []string) bool {
	if len(argv) == 2 && filepath.Base(argv[0]) == "sleep" && argv[1] == workloadSleep {
		return true
	}
	return len(argv) == 1 && filepath.Base(argv[0]) == "true"
}

// run does the repetition, recording each workload's figures or failure.
// It returns the runtime's version.
func (r *runner) run(ctx context.Context) (*report.Run, string) {
	r.out = report.NewRun(r.runtime, r.rep)
	r.dir = filepath.Join(r.env.dir, fmt.Sprintf("%s-%d", r.runtime, r.rep))
	r.cgroupRoot = fmt.Sprintf("/berth-bench-%d-%s-%d", os.Getpid(), r.runtime, r.rep)
	logFile, err := os.Create(filepath.Join(r.resDir, "logs", fmt.Sprintf("%s-%d.log", r.runtime, r.rep)))
	if err != nil {
		r.out.Fail("start", err)
		return r.out, ""
	}
	defer logFile.Close()
	opts := daemon.Options{
		Dir:           r.dir,
		CNIConfDir:    r.env.cniConf,
		CNIBinDir:     r.env.cniBin,
		RegistryHosts: r.env.hostsDir,
		SandboxImage:  r.env.pause,
		CgroupRoot:    r.cgroupRoot,
		Workload:      isWorkload,
		Log:           logFile,
	}
	switch r.runtime {
	case report.Berth:
		r.d, err = daemon.StartBerthd(ctx, r.berthd, opts)
	default:
		r.d, err = daemon.StartContainerd(ctx, opts)
	}
	if err != nil {
		r.out.Fail("start", err)
		r.env.resetNetwork()
		return r.out, ""
	}
	version := r.d.Version()
	var pods []pod
	defer func() {
		if err := r.cleanup(pods); err != nil {
			r.out.Fail("cleanup", err)
		}
	}()

	conn, err := dial(r.d.Socket())
	if err != nil {
		r.out.Fail("start", err)
		return r.out, version
	}
	defer conn.Close()
	r.rt = runtimeapi.NewRuntimeServiceClient(conn)
	r.img = runtimeapi.NewImageServiceClient(conn)
	if v, err := waitReady(ctx, r.rt, 30*time.Second); err != nil {
		r.out.Fail("start", err)
		return r.out, version
	} else if v != "" {
		version = v // the CRI's RuntimeName and RuntimeVersion
	}

	// Workloads, in an order that keeps each one's conditions the same on
	// both runtimes: idle memory before any pod, the steady-state figures
	// with every pod running, the cold pulls last so that their buffers do
	// not weigh on the memory figures.
	if err := r.pullCached(ctx); err != nil {
		r.out.Fail("images", err)
		return r.out, version
	}
	r.step(ctx, "memory_idle", r.memoryIdle)
	var seq, par []pod
	seq, err = r.podStart(ctx, "seq", r.o.seqPods, 1)
	pods = append(pods, seq...)
	r.record("pod_start.seq", err)
	par, err = r.podStart(ctx, "par", r.o.parPods, r.o.parallel)
	pods = append(pods, par...)
	r.record("pod_start.par", err)
	if missing := r.o.pods - len(pods); missing > 0 && ctx.Err() == nil {
		extra, err := r.startPods(ctx, missing, r.o.parallel)
		pods = append(pods, extra...)
		if err != nil {
			r.out.Fail("pods", err)
		}
	}
	steady := pods
	var running []pod // pods whose container started
	for _, p := range steady {
		if p.container != "" {
			running = append(running, p)
		}
	}
	var attachLeft []pod // the attach pod, if it could not be removed
	if len(running) > 0 {
		r.step(ctx, "exec_sync", func(ctx context.Context) error { return r.execSync(ctx, running[0]) })
		r.step(ctx, "list", func(ctx context.Context) error { return r.lists(ctx, len(running)) })
		r.step(ctx, "memory_pods", func(ctx context.Context) error { return r.memoryPods(len(running)) })
		r.step(ctx, "cpu", func(ctx context.Context) error { return r.cpu(ctx, len(running)) })
		// The streaming workloads come after the memory and CPU figures:
		// the streams' state must not weigh on them.
		r.step(ctx, "exec_stream", func(ctx context.Context) error { return r.execStream(ctx, running[0]) })
		r.step(ctx, "attach", func(ctx context.Context) error {
			var err error
			attachLeft, err = r.attachFirstByte(ctx)
			return err
		})
		if r.profile {
			r.step(ctx, "profile", r.captureProfiles)
		}
	} else {
		for _, wl := range []string{"exec_sync", "list", "memory_pods", "cpu", "exec_stream", "attach"} {
			r.out.Fail(wl, errors.New("no pod is running"))
		}
	}
	left, err := r.podTeardown(ctx, "seq", seq, 1)
	r.record("pod_teardown.seq", err)
	pods = append(attachLeft, left...)
	left, err = r.podTeardown(ctx, "par", par, r.o.parallel)
	r.record("pod_teardown.par", err)
	pods = append(pods, left...)
	for _, p := range steady[len(seq)+len(par):] {
		if err := r.removePod(ctx, p); err != nil {
			pods = append(pods, p)
		}
	}
	if ctx.Err() == nil {
		logf("  %s seccomp", r.runtime)
		left, err := r.seccompWorkloads(ctx)
		pods = append(pods, left...)
		r.record("pod_start.seccomp", err)
	}
	// The burst: every pod at once, then every teardown at once, with no
	// other pod running.
	burst, err := r.podStart(ctx, "burst", r.o.burstPods, r.o.burstPods)
	pods = append(pods, burst...)
	r.record("pod_start.burst", err)
	if len(burst) > 0 {
		left, err := r.podTeardown(ctx, "burst", burst, len(burst))
		r.record("pod_teardown.burst", err)
		pods = append(pods[:len(pods)-len(burst)], left...)
	}
	r.step(ctx, "pull", r.pulls)
	return r.out, version
}

// step runs one workload unless the benchmark is being interrupted.
func (r *runner) step(ctx context.Context, name string, f func(context.Context) error) {
	if ctx.Err() != nil {
		r.out.Fail(name, ctx.Err())
		return
	}
	logf("  %s %s", r.runtime, name)
	r.record(name, f(ctx))
}

func (r *runner) record(name string, err error) {
	if err != nil {
		logf("  %s %s: %v", r.runtime, name, err)
		r.out.Fail(name, err)
	}
}

// cleanup removes the pods still known through the CRI (a failed run
// leaves some), stops the daemon, and resets the network.
func (r *runner) cleanup(pods []pod) error {
	var errs []error
	if r.rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, p := range resp.Items {
				r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
				r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
			}
		}
		for _, p := range pods {
			r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id})
			r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
		}
	}
	if err := r.d.Stop(); err != nil {
		errs = append(errs, err)
	}
	if err := r.env.resetNetwork(); err != nil {
		errs = append(errs, err)
	}
	if left := daemon.Leftovers(r.dir, r.cgroupRoot); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left behind: %v", left))
	}
	return errors.Join(errs...)
}
