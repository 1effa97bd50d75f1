package sandbox

import (
	"errors"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerFilters: ListContainers' and ListContainerStats' filters,
// with ID and pod ID prefixes resolved as containerd and CRI-O resolve
// them: a unique prefix selects its object, an ambiguous or unknown one
// selects nothing.
func TestContainerFilters(t *testing.T) {
	m := &Manager{ctrIDs: idIndex{}, podIDs: idIndex{}}
	for _, id := range []string{"abcdef", "abd000"} {
		m.ctrIDs.add(id)
	}
	for _, id := range []string{"pod123", "pod200"} {
		m.podIDs.add(id)
	}
	c := &Container{id: "abcdef", podID: "pod123", config: &runtimeapi.ContainerConfig{Labels: map[string]string{"app": "web", "tier": "1"}}}
	for _, tc := range []struct {
		name string
		f    *runtimeapi.ContainerFilter
		want bool
	}{
		{name: "no filter matches", want: true},
		{name: "the full ID matches", f: &runtimeapi.ContainerFilter{Id: "abcdef"}, want: true},
		{name: "a unique ID prefix matches", f: &runtimeapi.ContainerFilter{Id: "abc"}, want: true},
		{name: "another container's ID does not match", f: &runtimeapi.ContainerFilter{Id: "abd"}},
		{name: "an ambiguous ID prefix matches nothing", f: &runtimeapi.ContainerFilter{Id: "ab"}},
		{name: "an unknown ID matches nothing", f: &runtimeapi.ContainerFilter{Id: "ff"}},
		{name: "a unique pod ID prefix matches", f: &runtimeapi.ContainerFilter{PodSandboxId: "pod1"}, want: true},
		{name: "another pod does not match", f: &runtimeapi.ContainerFilter{PodSandboxId: "pod2"}},
		{name: "an ambiguous pod ID prefix matches nothing", f: &runtimeapi.ContainerFilter{PodSandboxId: "pod"}},
		{name: "the state matches", f: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: stateRunning}}, want: true},
		{name: "another state does not match", f: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: stateExited}}},
		{name: "a label subset matches", f: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"app": "web"}}, want: true},
		{name: "a differing label value does not match", f: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"app": "db"}}},
		{name: "a missing label does not match", f: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"zone": "a"}}},
		{name: "a unique ID prefix with a label matches", f: &runtimeapi.ContainerFilter{Id: "abc", LabelSelector: map[string]string{"tier": "1"}}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := m.resolveContainerFilter(tc.f)
			if got := ok && matchContainer(c, stateRunning, f); got != tc.want {
				t.Fatalf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSetExitedReasons(t *testing.T) {
	at := time.Unix(100, 0)
	for _, tc := range []struct {
		name       string
		st         exitStatus
		ok         bool
		started    bool
		wantState  containerState
		wantReason string
		wantCode   int32
	}{
		{name: "exit 0 is Completed", st: exitStatus{FinishedAt: at}, ok: true, started: true, wantState: stateExited, wantReason: "Completed"},
		{name: "non-zero exit is Error", st: exitStatus{ExitCode: 3, FinishedAt: at}, ok: true, started: true, wantState: stateExited, wantReason: "Error", wantCode: 3},
		{name: "an OOM kill is OOMKilled", st: exitStatus{ExitCode: 137, Signal: 9, OOMKilled: true, FinishedAt: at}, ok: true, started: true,
			wantState: stateExited, wantReason: "OOMKilled", wantCode: 137},
		{name: "a lost status of a started container is Unknown", started: true, wantState: stateUnknown, wantReason: "Unknown", wantCode: 255},
		{name: "a lost status of a never-started container is exited", wantState: stateExited, wantReason: "Unknown", wantCode: 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Container{status: containerStatus{State: stateCreated}}
			if tc.started {
				c.status.State, c.status.StartedAt = stateRunning, at.Add(-time.Second)
			}
			c.setExited(tc.st, tc.ok)
			s := c.snapshot()
			if s.State != tc.wantState || s.Reason != tc.wantReason || s.ExitCode != tc.wantCode || s.FinishedAt.IsZero() {
				t.Fatalf("status = %+v", s)
			}
			// A second report changes nothing.
			before := s
			c.setExited(exitStatus{ExitCode: 9}, true)
			if tc.wantState == stateExited && c.snapshot() != before {
				t.Fatalf("second exit report changed the status: %+v", c.snapshot())
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"SIGTERM": 15, "TERM": 15, "sigquit": 3, "9": 9, "SIGRTMIN+3": 37} {
		got, err := parseSignal(in)
		if err != nil || int(got) != want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSignal("SIGBOGUS"); err == nil {
		t.Error("SIGBOGUS parsed")
	}
}

func TestExecNotFoundNeedsTheCommandNamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  string
		want bool
	}{
		{name: "runc's message for a missing command", err: `exec: "/no/such": stat /no/such: no such file or directory`, want: true},
		{name: "a PATH lookup failure", err: `exec: "nosuch": executable file not found in $PATH`, want: true},
		{name: "a missing state file is not the command", err: "open /run/berth/runtime/x/state.json: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := "/no/such"
			if tc.name == "a PATH lookup failure" {
				cmd = "nosuch"
			}
			if got := notFound(errors.New(tc.err), cmd); got != tc.want {
				t.Fatalf("notFound = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExecOutputFitsOneResponse(t *testing.T) {
	for _, tc := range []struct {
		name           string
		stdout, stderr int
	}{
		{name: "small outputs stay whole", stdout: 10, stderr: 20},
		{name: "a full stdout is trimmed to leave room", stdout: maxExecOutput},
		{name: "two full outputs together fit", stdout: maxExecOutput, stderr: maxExecOutput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &cappedBuffer{buf: make([]byte, tc.stdout), truncated: tc.stdout == maxExecOutput}
			b := &cappedBuffer{buf: make([]byte, tc.stderr), truncated: tc.stderr == maxExecOutput}
			fitResponse(a, b)
			out, errOut := a.bytes(), b.bytes()
			if len(out)+len(errOut) > maxExecResponse {
				t.Fatalf("%d + %d bytes do not fit in %d", len(out), len(errOut), maxExecResponse)
			}
			whole := tc.stdout+tc.stderr < maxExecResponse
			if whole && (len(out) != tc.stdout || len(errOut) != tc.stderr) {
				t.Fatalf("small outputs were cut: %d, %d", len(out), len(errOut))
			}
			if !whole && !strings.HasSuffix(string(out), truncatedNote) {
				t.Fatal("trimmed output does not say so")
			}
		})
	}
}
