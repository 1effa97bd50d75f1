package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// After the container is created its monitor is the small C program
// (sandbox/monitorc), still the parent of the container's process, and it
// does the monitor's work across a berthd outage: the output, the exit
// status.
func TestMonitorIsTheCProgramAndOutlivesBerthd(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("cmon", "echo started; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo done; exit 7")
		id := e.mustRun(t, cfg)
		stateDir := filepath.Join(e.d.State, "containers", id)
		data, err := os.ReadFile(filepath.Join(stateDir, "status.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rs struct {
			MonitorPid int `json:"monitor_pid"`
		}
		if err := json.Unmarshal(data, &rs); err != nil || rs.MonitorPid == 0 {
			t.Fatalf("status.json %s: %v", data, err)
		}
		// The Go monitor execs the C one once it has reported the
		// container's pid, which may be after StartContainer returned.
		deadline := time.Now().Add(time.Minute)
		for {
			cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(rs.MonitorPid) + "/cmdline")
			args := strings.Split(string(bytes.TrimRight(cmd, "\x00")), "\x00")
			if args[0] == "berth-monitor-c" {
				if len(args) != 2 || args[1] != stateDir {
					t.Errorf("monitor %d runs %q, want berth-monitor-c %s", rs.MonitorPid, args, stateDir)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("monitor %d still runs %q, want berth-monitor-c", rs.MonitorPid, args)
			}
			time.Sleep(10 * time.Millisecond)
		}
		pid := containerPid(t, e, id)
		if ppid := parentOf(t, pid); ppid != rs.MonitorPid {
			t.Errorf("the container's process %d has parent %d, not its monitor %d", pid, ppid, rs.MonitorPid)
		}

		e.d.Kill(t)
		if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/root/tmp/go", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitProcessGone(t, pid)
		e.d.Restart(t)
		st := e.waitExited(t, id)
		if st.ExitCode != 7 || st.Reason != "Error" || st.FinishedAt == 0 {
			t.Errorf("exit %d reason %q finished %d, want 7 Error", st.ExitCode, st.Reason, st.FinishedAt)
		}
		if got := logContent(t, filepath.Join(e.logDir, cfg.LogPath)); got != "started\ndone\n" {
			t.Errorf("log %q", got)
		}
		if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("RemoveContainer: %v", err)
		}
	})
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatalf("no PPid in /proc/%d/status", pid)
	return 0
}
