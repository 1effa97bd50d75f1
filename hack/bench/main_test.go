package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/hack/bench/report"
)

func TestOrderAlternatesTheFirstRuntime(t *testing.T) {
	both := []string{report.Berth, report.Containerd}
	tests := []struct {
		name     string
		runtimes []string
		rep      int
		want     []string
	}{
		{name: "containerd goes first in odd repetitions", runtimes: both, rep: 1, want: []string{report.Containerd, report.Berth}},
		{name: "berth goes first in even repetitions", runtimes: both, rep: 2, want: []string{report.Berth, report.Containerd}},
		{name: "the flag's order does not matter", runtimes: []string{report.Containerd, report.Berth}, rep: 3, want: []string{report.Containerd, report.Berth}},
		{name: "one runtime runs alone", runtimes: []string{report.Berth}, rep: 1, want: []string{report.Berth}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := order(tt.runtimes, tt.rep); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("order(%v, %d) = %v, want %v", tt.runtimes, tt.rep, got, tt.want)
			}
		})
	}
}

func TestIsWorkloadSeparatesContainersFromRuntimeProcesses(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want bool
	}{
		{name: "the benchmark's sleep is a workload", argv: []string{"/bin/sleep", workloadSleep}, want: true},
		{name: "an exec'd true is a workload", argv: []string{"true"}, want: true},
		{name: "a pause image's sleep is runtime overhead", argv: []string{"sleep", "3600"}, want: false},
		{name: "a shim is runtime overhead", argv: []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io"}, want: false},
		{name: "a monitor is runtime overhead", argv: []string{"berth-monitor", "/run/berth/containers/x"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isWorkload(tt.argv); got != tt.want {
				t.Errorf("isWorkload(%q) = %v, want %v", tt.argv, got, tt.want)
			}
		})
	}
}

func TestShortModeKeepsExplicitFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("parseFlags refuses to run without root; run the tests as root")
	}
	o, err := parseFlags([]string{"-short", "-seq-pods", "7", "-runtimes", "berth"})
	if err != nil {
		t.Fatal(err)
	}
	if o.seqPods != 7 || o.parPods != 3 || o.reps != 1 || o.cpuWindow != 3*time.Second || o.largeMB != 8 {
		t.Errorf("short options = %+v, want seq-pods 7 kept and the short defaults elsewhere", o)
	}
	if !reflect.DeepEqual(o.runtimes, []string{report.Berth}) {
		t.Errorf("runtimes = %v, want [berth]", o.runtimes)
	}
	if _, err := parseFlags([]string{"-runtimes", "crio"}); err == nil {
		t.Error("an unknown runtime was accepted")
	}
}

func TestUpdateReadmeReplacesOnlyTheTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	before := "# Title\n\nintro\n\n" + readmeBegin + "\nold table\n" + readmeEnd + "\n\ntail\n"
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	res := &report.Result{Date: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC), Runtimes: []string{report.Berth},
		Rows: report.Build([]report.Figure{{Name: "exec_sync.p50", Unit: "ms"}}, []string{report.Berth},
			[]*report.Run{{Runtime: report.Berth, Values: map[string]float64{"exec_sync.p50": 1.5}}})}
	if err := updateReadme(path, res); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	s := string(got)
	for _, want := range []string{"# Title\n\nintro\n\n" + readmeBegin, "| exec_sync.p50 | ms | 1.5 |", readmeEnd + "\n\ntail\n", "2026-11-22 07:00 UTC"} {
		if !strings.Contains(s, want) {
			t.Errorf("README lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "old table") {
		t.Errorf("README still has the old table:\n%s", s)
	}
}
