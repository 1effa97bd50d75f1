package main

import "github.com/berth-runtime/berth/hack/bench/report"

// catalog is every figure the benchmark reports, in report order.
func catalog() []report.Figure {
	var fs []report.Figure
	add := func(unit string, names ...string) {
		for _, n := range names {
			fs = append(fs, report.Figure{Name: n, Unit: unit})
		}
	}
	pcts := func(prefix string, ps ...string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, prefix+"."+p)
		}
		return out
	}
	for _, mode := range []string{"seq", "par", "seccomp", "burst"} {
		for _, call := range []string{"run_pod_sandbox", "create_container", "start_container", "total"} {
			add("ms", pcts("pod_start."+mode+"."+call, "p50", "p90", "p99")...)
		}
	}
	for _, mode := range []string{"seq", "par", "burst"} {
		for _, call := range []string{"stop_pod_sandbox", "remove_pod_sandbox", "total"} {
			add("ms", pcts("pod_teardown."+mode+"."+call, "p50", "p90", "p99")...)
		}
	}
	add("ms", pcts("exec_sync", "p50", "p99")...)
	add("ms", pcts("exec_sync.seccomp", "p50", "p99")...)
	for _, f := range []string{"exec_stream", "exec_stream.floor", "attach.first_byte", "attach.first_byte.floor"} {
		add("ms", pcts(f, "p50", "p99")...)
	}
	for _, call := range listCallNames {
		add("ms", pcts("list."+call, "p50", "p99")...)
		add("ms", pcts("list."+call+".floor", "p50", "p99")...)
	}
	add("s", "pull.large.wall", "pull.sibling.wall")
	add("count", "pull.large.layers_fetched", "pull.sibling.layers_fetched")
	add("MiB", "memory.daemon_idle", "memory.daemon_pods", "memory.total_pods", "memory.per_pod", "memory.per_pod_pss")
	add("count", "memory.processes")
	fs = append(fs, report.Figure{Name: "cpu.seconds", Unit: "s", MayBeZero: true})
	fs = append(fs, report.Figure{Name: "cpu.percent", Unit: "% core", MayBeZero: true})
	return fs
}
