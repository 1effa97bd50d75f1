package integration

// Hostile CRI input: strings from the CRI that become host paths or image
// references are checked before anything is made (issue 16).

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerLogPathCannotLeaveThePodLogDirectory(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		outside := t.TempDir()
		const escape = "/tmp/berth-escape-log"
		os.Remove(escape)
		if err := os.Symlink(outside, filepath.Join(e.logDir, "evil")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(outside, "f.log"), filepath.Join(e.logDir, "evil.log")); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, logPath string }{
			{name: "a path climbing out of the log directory", logPath: "../../../../tmp/berth-escape-log"},
			{name: "a path climbing out to a sibling directory", logPath: filepath.Join("..", filepath.Base(outside), "x.log")},
			{name: "an absolute path", logPath: escape},
			{name: "a path through a symlinked directory pointing out", logPath: "evil/0.log"},
			{name: "a path that is a symlink pointing out", logPath: "evil.log"},
		} {
			cfg := e.config("escape-"+strings.ReplaceAll(tc.name, " ", "-"), "true")
			cfg.LogPath = tc.logPath
			_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "log") {
				t.Errorf("%s (%q): CreateContainer = %v, want InvalidArgument about the log", tc.name, tc.logPath, err)
			}
		}
		if _, err := os.Lstat(escape); err == nil {
			t.Errorf("%s was created", escape)
			os.Remove(escape)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Errorf("files made outside the log directory: %v", ents)
		}
		resp, err := e.d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: e.pod}})
		if err != nil || len(resp.Containers) != 0 {
			t.Errorf("containers left by refused creates: %v, %v", resp.GetContainers(), err)
		}

		// A symlink swapped in after a rotation is not followed by the
		// reopen: the monitor keeps the file it has.
		cfg := e.config("swapped", `while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after`)
		cfg.LogPath = "swapped/0.log"
		id := e.mustRun(t, cfg)
		path := filepath.Join(e.logDir, cfg.LogPath)
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(outside, "swapped.log")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		_, err = e.d.Runtime.ReopenContainerLog(ctxFor(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
		if err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Errorf("ReopenContainerLog through a swapped-in symlink: %v, want an error naming the symlink", err)
		}
		e.mustExec(t, id, "touch", "/tmp/go")
		e.waitExited(t, id)
		if _, err := os.Lstat(target); err == nil {
			t.Errorf("the reopen followed the symlink to %s", target)
		}
		if got := logRecords(t, path+".1"); len(got) != 1 || got[0].content != "after" {
			t.Errorf("the log kept in use got %v, want the line written after the refused reopen", got)
		}
	})
}

// TestAProgramThatCannotBeExecdFailsNamingTheCause: the execve of the
// container's program fails, and the cause reaches the caller through
// CreateContainer's or StartContainer's error or the status message,
// never as a bare exit 127 (with runc, which reports it on the
// container's stderr only, through the log).
func TestAProgramThatCannotBeExecdFailsNamingTheCause(t *testing.T) {
	files := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	garbage := write("garbage", "\x00\x01\x02 not a program\n", 0o755)
	script := write("script", "#!/nonexistent/interp\necho hi\n", 0o755)
	noexec := write("noexec", "#!/bin/sh\necho hi\n", 0o644)
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		for _, tc := range []struct {
			name  string
			edit  func(*runtimeapi.ContainerConfig)
			cause []string // any of these
		}{
			{name: "a 1 MiB environment variable", cause: []string{"argument list too long"}, edit: func(c *runtimeapi.ContainerConfig) {
				c.Envs = []*runtimeapi.KeyValue{{Key: "BIG", Value: []byte(strings.Repeat("x", 1<<20))}}
			}},
			{name: "a file that is no executable format", cause: []string{"exec format error"}, edit: func(c *runtimeapi.ContainerConfig) {
				c.Command = []string{"/garbage"}
				c.Mounts = []*runtimeapi.Mount{{HostPath: garbage, ContainerPath: "/garbage", Readonly: true}}
			}},
			{name: "a script whose interpreter is missing", cause: []string{"/nonexistent/interp", "no such file or directory"}, edit: func(c *runtimeapi.ContainerConfig) {
				c.Command = []string{"/script"}
				c.Mounts = []*runtimeapi.Mount{{HostPath: script, ContainerPath: "/script", Readonly: true}}
			}},
			{name: "a file without execute permission", cause: []string{"permission denied"}, edit: func(c *runtimeapi.ContainerConfig) {
				c.Command = []string{"/noexec"}
				c.Mounts = []*runtimeapi.Mount{{HostPath: noexec, ContainerPath: "/noexec", Readonly: true}}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := e.config("exec-"+strings.ReplaceAll(tc.name, " ", "-"), "true")
				cfg.Args = nil
				tc.edit(cfg)
				var said []string
				resp, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
				if err != nil {
					said = append(said, "CreateContainer: "+err.Error())
				} else {
					id := resp.ContainerId
					if _, err := e.d.Runtime.StartContainer(ctxFor(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
						said = append(said, "StartContainer: "+err.Error())
					}
					st := e.waitExited(t, id)
					if st.ExitCode == 0 {
						t.Errorf("the container exited 0")
					}
					said = append(said, "status: "+st.Reason+": "+st.Message)
					if strings.Contains(t.Name(), "/runc/") {
						// runc's init writes an execve failure to the
						// container's stderr only: the log is where it is.
						said = append(said, "log: "+logContent(t, filepath.Join(e.logDir, cfg.LogPath)))
					}
					if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
						t.Errorf("RemoveContainer: %v", err)
					}
				}
				all := strings.Join(said, "; ")
				for _, c := range tc.cause {
					if strings.Contains(all, c) {
						return
					}
				}
				t.Errorf("the user is told %q, want one of %q", all, tc.cause)
			})
		}
	})
}
