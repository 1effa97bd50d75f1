package integration

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A relative executable is found from the working directory, after the
// chdir, as runc finds it: by the container's init, by ExecSync and by
// streaming exec (with and without a terminal, which take different paths
// in Berth's runtime). A missing one still fails CreateContainer.
func TestRelativeExecutableIsFoundFromTheWorkingDirectory(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("relative", "")
		cfg.Command = []string{"./sleep", "300"}
		cfg.WorkingDir = "/bin"
		id := e.mustRun(t, cfg)
		if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("./sleep in /bin is %v (%s: %s), want running", st.State, st.Reason, st.Message)
		}
		resp, err := e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"./echo", "sync"}, Timeout: 30})
		if err != nil || resp.ExitCode != 0 || string(resp.Stdout) != "sync\n" {
			t.Errorf("ExecSync of ./echo in /bin: %v, stdout %q stderr %q", err, resp.GetStdout(), resp.GetStderr())
		}
		for _, tty := range []bool{false, true} {
			out, errOut, code := e.streamExec(t, protocols[0], id, tty, nil, nil, "./echo", "stream")
			if strings.TrimSpace(out) != "stream" || code != 0 {
				t.Errorf("streaming exec (tty %v) of ./echo in /bin: stdout %q stderr %q exit %d", tty, out, errOut, code)
			}
		}

		missing := e.config("relative-missing", "")
		missing.Command = []string{"./nosuch"}
		missing.WorkingDir = "/bin"
		_, err = e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: missing, SandboxConfig: e.podCfg})
		if err == nil || !strings.Contains(err.Error(), "./nosuch") {
			t.Errorf("CreateContainer of a missing ./nosuch: %v, want its error", err)
		}
	})
}
