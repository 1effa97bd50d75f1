package report

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
)

// Table renders the figures as an aligned text table.
func (r *Result) Table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "figure\tunit\t%s\tratio\t\n", strings.Join(r.Runtimes, "\t"))
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%s\t%s\t", row.Name, row.Unit)
		for _, rt := range r.Runtimes {
			fmt.Fprintf(w, "%s\t", cell(row.Median[rt]))
		}
		fmt.Fprintf(w, "%s\t\n", cell(row.Ratio))
	}
	w.Flush()
	for _, g := range r.Goals {
		fmt.Fprintf(&b, "goal %-60s %s: %s\n", g.Goal, verdict(g.Met), g.Detail)
	}
	for _, run := range r.Runs {
		for _, wl := range sortedKeys(run.Errors) {
			fmt.Fprintf(&b, "error %s rep %d %s: %s\n", run.Runtime, run.Rep, wl, run.Errors[wl])
		}
	}
	return b.String()
}

// Markdown renders the result as the Markdown the README embeds.
func (r *Result) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Run %s on %s: %s, %d cores, %d GiB, kernel %s.\n\n",
		r.Date.Format("2006-01-02 15:04 UTC"), m.Hostname, m.CPU, m.Cores, m.MemoryGB, m.Kernel)
	if len(m.Versions) > 0 {
		var vs []string
		for _, k := range sortedKeys(m.Versions) {
			vs = append(vs, fmt.Sprintf("%s %s", k, m.Versions[k]))
		}
		fmt.Fprintf(&b, "Versions: %s.\n\n", strings.Join(vs, "; "))
	}
	if len(r.Options) > 0 {
		var os []string
		for _, k := range sortedKeys(r.Options) {
			os = append(os, fmt.Sprintf("`%s=%s`", k, r.Options[k]))
		}
		fmt.Fprintf(&b, "Options: %s. Values are medians of the repetitions.\n\n", strings.Join(os, " "))
	}
	fmt.Fprintf(&b, "| figure | unit | %s | ratio |\n|---|---|", strings.Join(r.Runtimes, " | "))
	for range r.Runtimes {
		b.WriteString("---:|")
	}
	b.WriteString("---:|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s |", row.Name, row.Unit)
		for _, rt := range r.Runtimes {
			fmt.Fprintf(&b, " %s |", cell(row.Median[rt]))
		}
		fmt.Fprintf(&b, " %s |\n", cell(row.Ratio))
	}
	if len(r.Goals) > 0 {
		b.WriteString("\n| goal | met | detail |\n|---|---|---|\n")
		for _, g := range r.Goals {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", g.Goal, verdict(g.Met), g.Detail)
		}
	}
	var errs []string
	for _, run := range r.Runs {
		for _, wl := range sortedKeys(run.Errors) {
			errs = append(errs, fmt.Sprintf("- %s, rep %d, %s: %s", run.Runtime, run.Rep, wl, run.Errors[wl]))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "\nErrors:\n\n%s\n", strings.Join(errs, "\n"))
	}
	for _, name := range sortedKeys(r.Profiles) {
		fmt.Fprintf(&b, "\nberthd profile %s, Berth's frames by cumulative cost:\n\n```\n%s\n```\n", name, r.Profiles[name])
	}
	return b.String()
}

func cell(v *float64) string {
	if v == nil {
		return "-"
	}
	switch a := *v; {
	case a == 0:
		return "0"
	case a >= 100 || a <= -100:
		return fmt.Sprintf("%.0f", a)
	case a >= 10 || a <= -10:
		return fmt.Sprintf("%.1f", a)
	default:
		return fmt.Sprintf("%.3g", a)
	}
}

func verdict(met *bool) string {
	switch {
	case met == nil:
		return "n/a"
	case *met:
		return "yes"
	default:
		return "NO"
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
