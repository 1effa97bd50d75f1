package main

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-runtime/berth/hack/bench/daemon"
)

const mib = 1 << 20

// memoryIdle records the daemon's RSS with no pod.
func (r *runner) memoryIdle(context.Context) error {
	procs, err := r.d.Processes()
	if err != nil {
		return err
	}
	daemonRSS, _ := sumRSS(procs, r.d.PID())
	r.out.Set("memory.daemon_idle", float64(daemonRSS)/mib)
	return nil
}

// memoryPods records, with n pods running, the daemon's RSS, the RSS of
// every runtime process (daemon, shims or monitors, pause processes) and
// that total over n: the per-pod overhead.
func (r *runner) memoryPods(n int) error {
	procs, err := r.d.Processes()
	if err != nil {
		return err
	}
	daemonRSS, total := sumRSS(procs, r.d.PID())
	r.out.Set("memory.daemon_pods", float64(daemonRSS)/mib)
	r.out.Set("memory.total_pods", float64(total)/mib)
	r.out.Set("memory.per_pod", float64(total)/mib/float64(n))
	// RSS counts pages shared between processes (a binary's text, in
	// every shim or monitor) once per process; PSS splits them.
	var pss uint64
	for _, p := range procs {
		pss += p.PSS()
	}
	r.out.Set("memory.per_pod_pss", float64(pss)/mib/float64(n))
	r.out.Set("memory.processes", float64(len(procs)))
	return writeProcs(r, procs)
}

func sumRSS(procs []*daemon.Proc, daemonPID int) (daemonRSS, total uint64) {
	for _, p := range procs {
		if p.PID == daemonPID {
			daemonRSS = p.RSS
		}
		total += p.RSS
	}
	return daemonRSS, total
}

// cpu measures the CPU time of every runtime process over -cpu-window with
// n idle pods while a kubelet-like poller calls the list and stats calls
// once a second. A process's own time counts, and the time of the children
// it reaped (runc under a shim, helpers under a monitor).
func (r *runner) cpu(ctx context.Context, n int) error {
	before, err := cpuTimes(r.d)
	if err != nil {
		return err
	}
	start := time.Now()
	pollErr := r.poll(ctx, n, r.o.cpuWindow)
	after, err := cpuTimes(r.d)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var used time.Duration
	for pid, t := range after {
		used += t - before[pid] // a process new in the window counts from zero
	}
	r.out.Set("cpu.seconds", used.Seconds())
	r.out.Set("cpu.percent", 100*used.Seconds()/elapsed.Seconds())
	return pollErr
}

// cpuTimes is each runtime process's CPU time including reaped children.
func cpuTimes(d daemon.Daemon) (map[int]time.Duration, error) {
	procs, err := d.Processes()
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Duration, len(procs))
	for _, p := range procs {
		out[p.PID] = p.CPU + p.ChildCPU
	}
	return out, nil
}

// writeProcs saves the process accounting of the memory figure, so that a
// reader can check what was counted.
func writeProcs(r *runner, procs []*daemon.Proc) error {
	var b []byte
	for _, p := range procs {
		b = fmt.Appendf(b, "%d\t%d\trss %d KiB (anon %d, file %d)\tpss %d KiB\t%v\n",
			p.PID, p.PPID, p.RSS/1024, p.RSSAnon/1024, p.RSSFile/1024, p.PSS()/1024, p.Argv)
	}
	return writeResult(r, fmt.Sprintf("processes-%s-%d.txt", r.runtime, r.rep), b)
}
