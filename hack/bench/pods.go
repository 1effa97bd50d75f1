package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-runtime/berth/hack/bench/report"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pod is a benchmark pod; container is empty unless its container runs.
type pod struct {
	id, container string
}

// podTimes are one pod's start (RunPodSandbox, CreateContainer,
// StartContainer) or teardown (StopPodSandbox, RemovePodSandbox) calls.
type podTimes []time.Duration

// pullCached pulls busybox and the pause image before any pod starts:
// pod start is measured with the images cached, as on a warm node.
func (r *runner) pullCached(ctx context.Context) error {
	for _, ref := range []string{r.env.pause, r.env.busybox} {
		resp, err := r.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		if ref == r.env.busybox {
			r.busyboxRef = resp.ImageRef
		}
	}
	return nil
}

// podStart starts n pods, parallel at a time, and records the percentiles
// of each call and of the whole under pod_start.<mode>.
func (r *runner) podStart(ctx context.Context, mode string, n, parallel int) ([]pod, error) {
	logf("  %s pod_start.%s: %d pods, %d at a time", r.runtime, mode, n, parallel)
	pods, times, err := r.startPodsTimed(ctx, n, parallel)
	recordCalls(r.out, "pod_start."+mode, []string{"run_pod_sandbox", "create_container", "start_container"}, times, []string{"p50", "p90", "p99"})
	return pods, err
}

// startPods starts n pods without recording their times.
func (r *runner) startPods(ctx context.Context, n, parallel int) ([]pod, error) {
	pods, _, err := r.startPodsTimed(ctx, n, parallel)
	return pods, err
}

func (r *runner) startPodsTimed(ctx context.Context, n, parallel int) ([]pod, []podTimes, error) {
	idx := make([]int, n)
	for i := range idx {
		r.next++
		idx[i] = r.next
	}
	var (
		mu    sync.Mutex
		pods  []pod
		times []podTimes
		errs  []error
	)
	parallelDo(ctx, len(idx), parallel, func(k int) bool {
		p, t, err := r.startPod(ctx, idx[k])
		mu.Lock()
		defer mu.Unlock()
		if p.id != "" {
			pods = append(pods, p)
		}
		if err != nil {
			errs = append(errs, err)
			return false // the runtime cannot start pods; do not pile up failures
		}
		times = append(times, t)
		return true
	})
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return pods, times, firstErrors(errs)
}

// startPod runs pod i as kubelet does: RunPodSandbox on the default
// network, then CreateContainer and StartContainer of busybox sleeping.
// A pod whose sandbox started is returned even when a later call fails,
// so that it is removed.
func (r *runner) startPod(ctx context.Context, i int) (pod, podTimes, error) {
	name := fmt.Sprintf("bench-%d", i)
	uid := fmt.Sprintf("%s-%d-%d-%d", r.runtime, r.rep, os.Getpid(), i)
	logDir := filepath.Join(r.dir, "pods", "bench_"+name+"_"+uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil { // kubelet makes it
		return pod{}, nil, err
	}
	nsOpts := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	labels := map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "bench", "io.kubernetes.pod.uid": uid}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: "bench"},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.231.0.1"}, Searches: []string{"bench.svc.cluster.local"}, Options: []string{"ndots:5"}},
		Labels:       labels,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    r.cgroupRoot + "/pod" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts},
		},
	}
	var (
		p     pod
		times podTimes
	)
	d, err := timed(ctx, func(ctx context.Context) error {
		resp, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		p.id = resp.GetPodSandboxId()
		return err
	})
	if err != nil {
		return p, nil, fmt.Errorf("RunPodSandbox %s: %w", name, err)
	}
	times = append(times, d)
	ccfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
		Image:    &runtimeapi.ImageSpec{Image: r.busyboxRef, UserSpecifiedImage: r.env.busybox},
		Command:  []string{"/bin/sleep", workloadSleep},
		LogPath:  "sleep/0.log",
		Labels:   map[string]string{"io.kubernetes.container.name": "sleep"},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       &runtimeapi.LinuxContainerResources{CpuShares: 2, OomScoreAdj: 1000},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: nsOpts},
		},
	}
	if r.attachable {
		ccfg.Command, ccfg.Stdin = []string{"/bin/cat"}, true
	}
	if r.seccomp {
		ccfg.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	d, err = timed(ctx, func(ctx context.Context) error {
		resp, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: ccfg, SandboxConfig: cfg})
		p.container = resp.GetContainerId()
		return err
	})
	if err != nil {
		p.container = ""
		return p, nil, fmt.Errorf("CreateContainer in %s: %w", name, err)
	}
	times = append(times, d)
	d, err = timed(ctx, func(ctx context.Context) error {
		_, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: p.container})
		return err
	})
	if err != nil {
		p.container = "" // created, not running: teardown removes it with its pod
		return p, nil, fmt.Errorf("StartContainer in %s: %w", name, err)
	}
	return p, append(times, d), nil
}

// podTeardown stops and removes pods, parallel at a time, recording the
// percentiles under pod_teardown.<mode> unless mode is empty. It returns
// the pods it could not remove.
func (r *runner) podTeardown(ctx context.Context, mode string, pods []pod, parallel int) ([]pod, error) {
	if len(pods) == 0 {
		return nil, nil
	}
	if mode != "" {
		logf("  %s pod_teardown.%s: %d pods, %d at a time", r.runtime, mode, len(pods), parallel)
	}
	var (
		mu    sync.Mutex
		left  []pod
		times []podTimes
		errs  []error
	)
	parallelDo(ctx, len(pods), parallel, func(k int) bool {
		t, err := r.teardownPod(ctx, pods[k])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			left = append(left, pods[k])
			errs = append(errs, err)
		} else {
			times = append(times, t)
		}
		return true
	})
	if mode == "" {
		return left, firstErrors(errs)
	}
	recordCalls(r.out, "pod_teardown."+mode, []string{"stop_pod_sandbox", "remove_pod_sandbox"}, times, []string{"p50", "p90", "p99"})
	return left, firstErrors(errs)
}

func (r *runner) teardownPod(ctx context.Context, p pod) (podTimes, error) {
	stop, err := timed(ctx, func(ctx context.Context) error {
		_, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("StopPodSandbox %s: %w", p.id, err)
	}
	remove, err := timed(ctx, func(ctx context.Context) error {
		_, err := r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("RemovePodSandbox %s: %w", p.id, err)
	}
	return podTimes{stop, remove}, nil
}

// removePod tears a pod down without timing it.
func (r *runner) removePod(ctx context.Context, p pod) error {
	_, err := r.teardownPod(ctx, p)
	return err
}

// recordCalls records the percentiles of each call and of their sum per
// pod as <prefix>.<call>.<p> and <prefix>.total.<p>.
func recordCalls(run *report.Run, prefix string, calls []string, times []podTimes, pcts []string) {
	if len(times) == 0 {
		return
	}
	per := make([][]float64, len(calls)+1)
	for _, t := range times {
		var total time.Duration
		for i, d := range t {
			per[i] = append(per[i], report.Millis(d))
			total += d
		}
		per[len(calls)] = append(per[len(calls)], report.Millis(total))
	}
	names := append(append([]string(nil), calls...), "total")
	for i, name := range names {
		for _, p := range pcts {
			run.Set(prefix+"."+name+"."+p, report.Percentile(per[i], pctValue(p)))
		}
	}
}

// pctValue turns "p99" into 99.
func pctValue(p string) float64 {
	var v float64
	fmt.Sscanf(p, "p%g", &v)
	return v
}

// firstErrors joins up to three errors and says how many more there were.
func firstErrors(errs []error) error {
	if len(errs) <= 3 {
		return errors.Join(errs...)
	}
	return fmt.Errorf("%w (and %d more)", errors.Join(errs[:3]...), len(errs)-3)
}

// parallelDo calls f(0..n-1) with at most parallel calls at once. It stops
// handing out work once f returns false or ctx ends; calls under way finish.
func parallelDo(ctx context.Context, n, parallel int, f func(int) bool) {
	work := make(chan int)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stopped bool
	)
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if !f(k) {
					mu.Lock()
					stopped = true
					mu.Unlock()
				}
			}
		}()
	}
	for k := 0; k < n && ctx.Err() == nil; k++ {
		mu.Lock()
		stop := stopped
		mu.Unlock()
		if stop {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
}
