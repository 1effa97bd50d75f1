package report

import "fmt"

// Goal is a target from the benchmark issue. A ratio goal holds Berth's
// median to at most (or, when Strict, below) Limit times containerd's; an
// absolute goal holds Berth's median itself to Limit.
type Goal struct {
	Text   string
	Figure string
	Ratio  bool
	Strict bool // below Limit rather than at most
	Limit  float64
	// Floor, when set, is the figure of what the same measurement costs
	// with no runtime behind it; the detail shows it beside Berth's.
	Floor string
	// Against, when set, makes the goal hold Berth's median of Figure to
	// at most Limit times Berth's median of Against (the same workload
	// without a feature).
	Against string
}

// GoalResult is a goal checked against a result.
type GoalResult struct {
	Goal   string `json:"goal"`
	Figure string `json:"figure"`
	// Met is nil when a figure it needs is missing.
	Met    *bool  `json:"met"`
	Detail string `json:"detail"`
}

// Goals are the targets for Berth on this machine.
var Goals = []Goal{
	{Text: "pod start p50 (one after another) at most 0.5 × containerd's", Figure: "pod_start.seq.total.p50", Ratio: true, Limit: 0.5},
	{Text: "pod start p50 (10 at a time) at most 0.5 × containerd's", Figure: "pod_start.par.total.p50", Ratio: true, Limit: 0.5},
	{Text: "ExecSync p50 at most 0.25 × containerd's", Figure: "exec_sync.p50", Ratio: true, Limit: 0.25},
	{Text: "per-pod runtime memory at most 0.25 × containerd's", Figure: "memory.per_pod", Ratio: true, Limit: 0.25},
	{Text: "daemon RSS with the pods below containerd's", Figure: "memory.daemon_pods", Ratio: true, Strict: true, Limit: 1},
	{Text: "cold pull of the large image at most 0.8 × containerd's", Figure: "pull.large.wall", Ratio: true, Limit: 0.8},
	{Text: "the sibling image pulls only its 2 new layers", Figure: "pull.sibling.layers_fetched", Limit: 2},
	{Text: "pod start p50 with RuntimeDefault seccomp at most 0.5 × containerd's", Figure: "pod_start.seccomp.total.p50", Ratio: true, Limit: 0.5},
	{Text: "ExecSync p50 with RuntimeDefault seccomp at most 0.25 × containerd's", Figure: "exec_sync.seccomp.p50", Ratio: true, Limit: 0.25},
	{Text: "pod start p50 with RuntimeDefault seccomp within 5% of without", Figure: "pod_start.seccomp.total.p50", Against: "pod_start.seq.total.p50", Limit: 1.05},
	{Text: "ExecSync p50 with RuntimeDefault seccomp within 5% of without", Figure: "exec_sync.seccomp.p50", Against: "exec_sync.p50", Limit: 1.05},
	{Text: "exec over the streaming URL p50 at most 0.25 × containerd's", Figure: "exec_stream.p50", Ratio: true, Limit: 0.25, Floor: "exec_stream.floor.p50"},
	{Text: "exec over the streaming URL p99 at most 0.25 × containerd's", Figure: "exec_stream.p99", Ratio: true, Limit: 0.25, Floor: "exec_stream.floor.p99"},
	{Text: "attach time to first byte p50 at most 0.25 × containerd's", Figure: "attach.first_byte.p50", Ratio: true, Limit: 0.25, Floor: "attach.first_byte.floor.p50"},
	{Text: "ListPodSandbox p99 under 5 ms", Figure: "list.pod_sandbox.p99", Strict: true, Limit: 5, Floor: "list.pod_sandbox.floor.p99"},
	{Text: "ListContainers p99 under 5 ms", Figure: "list.containers.p99", Strict: true, Limit: 5, Floor: "list.containers.floor.p99"},
	{Text: "ListContainerStats p99 under 5 ms", Figure: "list.container_stats.p99", Strict: true, Limit: 5, Floor: "list.container_stats.floor.p99"},
}

// Check holds each goal against r.
func Check(r *Result, goals []Goal) []GoalResult {
	out := make([]GoalResult, 0, len(goals))
	for _, g := range goals {
		gr := GoalResult{Goal: g.Text, Figure: g.Figure}
		row, ok := r.Row(g.Figure)
		var have *float64
		if ok {
			switch {
			case g.Against != "":
				base, ok := r.Row(g.Against)
				if b, f := base.Median[Berth], row.Median[Berth]; ok && b != nil && f != nil && *b > 0 {
					v := *f / *b
					have = &v
				}
			case g.Ratio:
				have = row.Ratio
			default:
				have = row.Median[Berth]
			}
		}
		if have == nil {
			gr.Detail = "not measured"
			out = append(out, gr)
			continue
		}
		met := *have <= g.Limit
		if g.Strict {
			met = *have < g.Limit
		}
		gr.Met = &met
		what := fmt.Sprintf("%.3g %s", *have, row.Unit)
		if g.Ratio {
			what = fmt.Sprintf("ratio %.3g", *have)
		}
		if g.Against != "" {
			what = fmt.Sprintf("%.3g × %s", *have, g.Against)
		}
		if met {
			gr.Detail = what
		} else {
			gr.Detail = fmt.Sprintf("%s, limit %.3g: %.0f%% over", what, g.Limit, (*have/g.Limit-1)*100)
		}
		if floor, ok := r.Row(g.Floor); ok && floor.Median[Berth] != nil {
			gr.Detail += fmt.Sprintf("; floor %.3g %s", *floor.Median[Berth], floor.Unit)
		}
		out = append(out, gr)
	}
	return out
}
