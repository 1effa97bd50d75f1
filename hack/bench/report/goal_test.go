package report

import "testing"

func TestCheckHoldsGoalsToTheirLimits(t *testing.T) {
	runs := []*Run{
		{Runtime: Berth, Values: map[string]float64{"a": 40, "b": 3, "c": 100, "d": 6}},
		{Runtime: Containerd, Values: map[string]float64{"a": 100, "b": 3, "c": 100, "d": 1}},
	}
	res := &Result{Runtimes: []string{Berth, Containerd}, Rows: Build(
		[]Figure{{Name: "a", Unit: "ms"}, {Name: "b", Unit: "MiB"}, {Name: "c", Unit: "ms"}, {Name: "d", Unit: "ms"}},
		[]string{Berth, Containerd}, runs)}
	tests := []struct {
		name string
		goal Goal
		want *bool
	}{
		{name: "a ratio of 0.4 meets at most 0.5", goal: Goal{Figure: "a", Ratio: true, Limit: 0.5}, want: ptr(true)},
		{name: "a ratio of 0.4 misses at most 0.25", goal: Goal{Figure: "a", Ratio: true, Limit: 0.25}, want: ptr(false)},
		{name: "an equal value misses a strict below-1 ratio", goal: Goal{Figure: "b", Ratio: true, Strict: true, Limit: 1}, want: ptr(false)},
		{name: "an absolute 6 ms misses under 5 ms", goal: Goal{Figure: "d", Strict: true, Limit: 5}, want: ptr(false)},
		{name: "an absolute 100 meets at most 100", goal: Goal{Figure: "c", Limit: 100}, want: ptr(true)},
		{name: "a figure nobody measured is not judged", goal: Goal{Figure: "zzz", Ratio: true, Limit: 1}, want: nil},
		{name: "Berth's 6 against its own 3 misses within 5%", goal: Goal{Figure: "d", Against: "b", Limit: 1.05}, want: ptr(false)},
		{name: "Berth's 100 against its own 100 meets within 5%", goal: Goal{Figure: "c", Against: "c", Limit: 1.05}, want: ptr(true)},
		{name: "a missing base figure is not judged", goal: Goal{Figure: "c", Against: "zzz", Limit: 1.05}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(res, []Goal{tt.goal})[0]
			if (got.Met == nil) != (tt.want == nil) || (got.Met != nil && *got.Met != *tt.want) {
				t.Errorf("Met = %v, want %v (%s)", deref(got.Met), deref(tt.want), got.Detail)
			}
		})
	}
}

func TestCheckShowsTheFloorBesideAGoalsFigure(t *testing.T) {
	runs := []*Run{{Runtime: Berth, Values: map[string]float64{"list.p99": 6.2, "list.floor.p99": 5.9}}}
	res := &Result{Runtimes: []string{Berth}, Rows: Build(
		[]Figure{{Name: "list.p99", Unit: "ms"}, {Name: "list.floor.p99", Unit: "ms"}}, []string{Berth}, runs)}
	got := Check(res, []Goal{{Figure: "list.p99", Strict: true, Limit: 5, Floor: "list.floor.p99"}})[0]
	if want := "6.2 ms, limit 5: 24% over; floor 5.9 ms"; got.Detail != want {
		t.Errorf("detail %q, want %q", got.Detail, want)
	}
}

func ptr(b bool) *bool { return &b }

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
