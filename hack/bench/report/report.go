// Package report holds what the benchmark measured: each repetition's
// figures per runtime, their medians across repetitions, the ratio of Berth
// to containerd, the goals they are held to, and the renderings (a text
// table, JSON, Markdown).
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// The runtimes a report compares, in column order.
const (
	Berth      = "berth"
	Containerd = "containerd"
)

// Figure is one measured quantity.
type Figure struct {
	Name string `json:"name"` // dotted and stable: "pod_start.seq.total.p50"
	Unit string `json:"unit"` // "ms", "s", "MiB", "count"
	// MayBeZero marks figures that are legitimately zero in a short run
	// (CPU seconds over a few idle seconds); every other one must not be.
	MayBeZero bool `json:"may_be_zero,omitempty"`
}

// Run is what one repetition measured on one runtime.
type Run struct {
	Runtime string             `json:"runtime"`
	Rep     int                `json:"rep"`
	Start   time.Time          `json:"start"`
	Values  map[string]float64 `json:"values"`
	// Errors maps a workload to why it failed; its figures are missing.
	Errors map[string]string `json:"errors,omitempty"`
}

// NewRun starts an empty Run.
func NewRun(runtime string, rep int) *Run {
	return &Run{Runtime: runtime, Rep: rep, Start: time.Now().UTC(), Values: map[string]float64{}, Errors: map[string]string{}}
}

// Set records a figure's value.
func (r *Run) Set(name string, v float64) { r.Values[name] = v }

// Fail records that workload failed.
func (r *Run) Fail(workload string, err error) { r.Errors[workload] = err.Error() }

// Row is one figure across runtimes: the median of its repetitions, each
// repetition's value, and Berth's value over containerd's.
type Row struct {
	Figure
	Median map[string]*float64  `json:"median"`
	Reps   map[string][]float64 `json:"reps"`
	Ratio  *float64             `json:"ratio,omitempty"`
}

// Machine says where the benchmark ran.
type Machine struct {
	Hostname string `json:"hostname"`
	Kernel   string `json:"kernel"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryGB int    `json:"memory_gb"`
	// Versions of the runtimes and their helpers, by name.
	Versions map[string]string `json:"versions"`
}

// Result is one benchmark invocation.
type Result struct {
	Date     time.Time         `json:"date"`
	Machine  Machine           `json:"machine"`
	Options  map[string]string `json:"options"`
	Runtimes []string          `json:"runtimes"`
	Rows     []Row             `json:"figures"`
	Goals    []GoalResult      `json:"goals,omitempty"`
	Runs     []*Run            `json:"runs"`
	// Profiles summarizes berthd's profiles by file name: the frames of
	// Berth's own code that cost the most, for explaining a missed goal.
	Profiles map[string]string `json:"profiles,omitempty"`
}

// Build takes the medians of runs for every figure, in the order given.
func Build(figures []Figure, runtimes []string, runs []*Run) []Row {
	rows := make([]Row, 0, len(figures))
	for _, f := range figures {
		row := Row{Figure: f, Median: map[string]*float64{}, Reps: map[string][]float64{}}
		for _, rt := range runtimes {
			var vals []float64
			for _, r := range runs {
				if r.Runtime != rt {
					continue
				}
				v, ok := r.Values[f.Name]
				if !ok {
					v = math.NaN()
				}
				vals = append(vals, v)
			}
			row.Reps[rt] = jsonSafe(vals)
			row.Median[rt] = number(Median(vals))
		}
		b, c := row.Median[Berth], row.Median[Containerd]
		if b != nil && c != nil && *c != 0 {
			row.Ratio = number(*b / *c)
		}
		rows = append(rows, row)
	}
	return rows
}

// Value is the median of figure name on runtime, and whether there is one.
func (r *Result) Value(name, runtime string) (float64, bool) {
	for _, row := range r.Rows {
		if row.Name == name {
			if v := row.Median[runtime]; v != nil {
				return *v, true
			}
			return 0, false
		}
	}
	return 0, false
}

// Row is the row of figure name.
func (r *Result) Row(name string) (Row, bool) {
	for _, row := range r.Rows {
		if row.Name == name {
			return row, true
		}
	}
	return Row{}, false
}

// Write stores results.json and results.md in dir.
func (r *Result) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create results dir: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write results.md: %w", err)
	}
	return nil
}

// Load reads a results.json.
func Load(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &r, nil
}

// number is v as a JSON-encodable pointer: nil for NaN or infinity.
func number(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// jsonSafe replaces the NaNs of failed repetitions by -1, which no figure
// can be, since encoding/json refuses NaN.
func jsonSafe(vals []float64) []float64 {
	out := make([]float64, len(vals))
	for i, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = -1
		}
		out[i] = v
	}
	return out
}
