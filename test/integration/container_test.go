package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// handlers are the runtime handlers every container test runs with:
// Berth's built-in runtime and runc.
var handlers = []string{"berth", "runc"}

// ctrEnv is a daemon with the busybox image pulled and a ready pod run by
// one runtime handler.
type ctrEnv struct {
	d      *harness.Daemon
	image  string
	pod    string
	podCfg *runtimeapi.PodSandboxConfig
	logDir string
}

// forEachHandler runs fn as a subtest per handler, on one daemon with the
// busybox image pulled, started with opts.
func forEachHandler(t *testing.T, fn func(t *testing.T, e *ctrEnv), opts ...harness.Option) {
	forHandlers(t, handlers, fn, opts...)
}

// forHandlers is forEachHandler for the handlers hs only, for a test of
// what no handler changes (the streaming server's transport, say).
func forHandlers(t *testing.T, hs []string, fn func(t *testing.T, e *ctrEnv), opts ...harness.Option) {
	d := harness.Start(t, opts...)
	reg := registry.Start(t)
	ref := reg.Push(t, "library/busybox:latest", images.Busybox())
	if _, err := d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	for _, h := range hs {
		t.Run(h, func(t *testing.T) {
			name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
			if len(name) > 40 {
				name = name[len(name)-40:]
			}
			cfg := podConfig(d, name)
			cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			cfg.LogDirectory = t.TempDir()
			resp, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: h})
			if err != nil {
				t.Fatalf("RunPodSandbox: %v", err)
			}
			e := &ctrEnv{d: d, image: ref, pod: resp.PodSandboxId, podCfg: cfg, logDir: cfg.LogDirectory}
			t.Cleanup(func() {
				// Kill what is left at once rather than wait out the pod's stop grace.
				if resp, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{
					Filter: &runtimeapi.ContainerFilter{PodSandboxId: e.pod}}); err == nil {
					for _, c := range resp.Containers {
						_, _ = d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: c.Id})
					}
				}
				if _, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
					t.Errorf("RemovePodSandbox: %v", err)
				}
			})
			fn(t, e)
		})
	}
}

// config is a container running sh -c script.
func (e *ctrEnv) config(name, script string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: e.image},
		Command:  []string{"/bin/sh", "-c", script},
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER, Network: runtimeapi.NamespaceMode_NODE},
		}},
	}
}

func (e *ctrEnv) mustCreate(t *testing.T, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	resp, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId
}

func (e *ctrEnv) mustStart(t *testing.T, id string) {
	t.Helper()
	if _, err := e.d.Runtime.StartContainer(ctxFor(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", id, err)
	}
}

// mustRun creates and starts a container.
func (e *ctrEnv) mustRun(t *testing.T, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	id := e.mustCreate(t, cfg)
	e.mustStart(t, id)
	return id
}

func (e *ctrEnv) mustStatus(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

// waitExited polls until the container has exited and returns its status.
func (e *ctrEnv) waitExited(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := e.mustStatus(t, id)
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %v after a minute", id, st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runToExit runs a container to its end and returns its status and log.
func (e *ctrEnv) runToExit(t *testing.T, cfg *runtimeapi.ContainerConfig) (*runtimeapi.ContainerStatus, string) {
	t.Helper()
	id := e.mustRun(t, cfg)
	st := e.waitExited(t, id)
	return st, logContent(t, filepath.Join(e.logDir, cfg.LogPath))
}

func (e *ctrEnv) mustExec(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	resp, err := e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		t.Fatalf("ExecSync %q: %v", cmd, err)
	}
	if resp.ExitCode != 0 {
		t.Fatalf("ExecSync %q: exit %d, stderr %q", cmd, resp.ExitCode, resp.Stderr)
	}
	return strings.TrimSpace(string(resp.Stdout))
}

// logRecord is one record of a CRI log file.
type logRecord struct {
	stream, tag, content string
}

func logRecords(t *testing.T, path string) []logRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	defer f.Close()
	var out []logRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("log record %q is not <time> <stream> <tag> <content>", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Fatalf("log record %q: timestamp: %v", sc.Text(), err)
		}
		out = append(out, logRecord{parts[1], parts[2], parts[3]})
	}
	return out
}

// logContent is the log's content, stream records joined as lines.
func logContent(t *testing.T, path string) string {
	var b strings.Builder
	for _, r := range logRecords(t, path) {
		b.WriteString(r.content)
		if r.tag == "F" {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestContainerSeesOnlyItsOwnProcessesAsPID1(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		st, out := e.runToExit(t, e.config("ps", "echo self=$$; ls /proc | grep -c '^[0-9]'"))
		if st.ExitCode != 0 {
			t.Fatalf("exit %d: %s", st.ExitCode, out)
		}
		lines := strings.Fields(out)
		if len(lines) != 2 || lines[0] != "self=1" {
			t.Fatalf("output %q, want self=1", out)
		}
		// The shell and ls (and grep) only: nothing of the host.
		if n, _ := strconv.Atoi(lines[1]); n > 3 {
			t.Errorf("the container sees %d processes, want only its own", n)
		}
	})
}

func TestContainerCgroupLimitsReadBackInside(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("limits", "sleep 3600")
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{
			CpuShares: 512, CpuQuota: 20000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20,
			Unified: map[string]string{"pids.max": "50"}, CpusetCpus: "0",
		}
		id := e.mustRun(t, cfg)
		for file, want := range map[string]string{
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": strconv.Itoa(64 << 20),
			"/sys/fs/cgroup/cpu/cpu.shares":               "512",
			"/sys/fs/cgroup/cpu/cpu.cfs_quota_us":         "20000",
			"/sys/fs/cgroup/pids/pids.max":                "50",
			"/sys/fs/cgroup/cpuset/cpuset.cpus":           "0",
		} {
			if got := e.mustExec(t, id, "cat", file); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
	})
}

func TestMemoryHogIsOOMKilled(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("hog", "x=a; while :; do x=$x$x; done")
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
		st, _ := e.runToExit(t, cfg)
		if st.Reason != "OOMKilled" || st.ExitCode != 137 {
			t.Fatalf("reason %q exit %d, want OOMKilled 137", st.Reason, st.ExitCode)
		}
	})
}

func TestForkBombStopsAtThePidsLimit(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// The subshell forks until it cannot (and dies of it); the parent
		// then counts processes with builtins alone, as it cannot fork either.
		cfg := e.config("forks", "(while :; do sleep 3600 & done) 2>/dev/null; set -- /proc/[0-9]*; echo $#")
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{Unified: map[string]string{"pids.max": "20"}}
		st, out := e.runToExit(t, cfg)
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		if st.ExitCode != 0 || n < 10 || n > 20 {
			t.Fatalf("exit %d, %q processes; want the limit of 20 reached", st.ExitCode, out)
		}
	})
}

func TestUserGroupsAndRunAsUsername(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("ids", "id -u; id -g; id -G")
		cfg.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: images.UserBerth}
		cfg.Linux.SecurityContext.SupplementalGroups = []int64{4242}
		_, out := e.runToExit(t, cfg)
		if got, want := strings.Fields(out), []string{"1000", "1000", "1000", "2000", "2001", "4242"}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("run_as_user: %q, want %q", got, want)
		}
		cfg = e.config("names", "id -u; id -g")
		cfg.Linux.SecurityContext.RunAsUsername = "tester"
		cfg.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: 3000}
		_, out = e.runToExit(t, cfg)
		if got := strings.Fields(out); strings.Join(got, " ") != "1001 3000" {
			t.Errorf("run_as_username tester, run_as_group 3000: %q", got)
		}
		cfg = e.config("nobody-here", "true")
		cfg.Linux.SecurityContext.RunAsUsername = "mallory"
		_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("unknown run_as_username: %v, want InvalidArgument", err)
		}
	})
}

func TestReadonlyRootfsRejectsWrites(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("ro", "touch /file")
		cfg.Linux.SecurityContext.ReadonlyRootfs = true
		st, out := e.runToExit(t, cfg)
		if st.ExitCode == 0 || !strings.Contains(out, "Read-only file system") {
			t.Fatalf("write to a read-only rootfs: exit %d, %q", st.ExitCode, out)
		}
		if st.Reason != "Error" {
			t.Errorf("reason %q, want Error", st.Reason)
		}
	})
}

func TestBindMountsWithEachPropagation(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		host := t.TempDir()
		os.WriteFile(filepath.Join(host, "f"), []byte("from host\n"), 0o644)
		// A shared mount point, so every propagation mode is allowed.
		shared := t.TempDir()
		if err := unix.Mount("tmpfs", shared, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(shared, unix.MNT_DETACH) })
		if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
			t.Fatal(err)
		}
		cfg := e.config("binds", "cat /ro/f; touch /ro/x 2>/dev/null && echo ro-writable; touch /rw/written; grep ' /slave ' /proc/self/mountinfo")
		cfg.Mounts = []*runtimeapi.Mount{
			{ContainerPath: "/ro", HostPath: host, Readonly: true},
			{ContainerPath: "/rw", HostPath: host},
			{ContainerPath: "/slave", HostPath: shared, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		}
		st, out := e.runToExit(t, cfg)
		if st.ExitCode != 0 || !strings.HasPrefix(out, "from host") || strings.Contains(out, "ro-writable") {
			t.Fatalf("exit %d, output %q", st.ExitCode, out)
		}
		if _, err := os.Stat(filepath.Join(host, "written")); err != nil {
			t.Errorf("write through the rw bind: %v", err)
		}
		// ContainerStatus reports the mounts as asked.
		if len(st.Mounts) != 3 || st.Mounts[0].ContainerPath != "/ro" || !st.Mounts[0].Readonly ||
			st.Mounts[2].Propagation != runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER {
			t.Errorf("status mounts = %v", st.Mounts)
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "master:") {
			t.Errorf("host-to-container mount is not a slave: %q", out)
		}
		// Bidirectional: a mount made inside the container shows on the host.
		cfg = e.config("bidir", "mkdir -p /shared/sub && mount -t tmpfs bidir /shared/sub && grep ' /shared ' /proc/self/mountinfo")
		cfg.Linux.SecurityContext.Privileged = true // in a privileged pod, as containerd requires
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/shared", HostPath: shared, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
		st, out = privilegedPod(t, e).runToExit(t, cfg)
		if st.ExitCode != 0 || !strings.Contains(out, "shared:") {
			t.Errorf("bidirectional: exit %d, %q", st.ExitCode, out)
		}
		sub := filepath.Join(shared, "sub")
		if !isMountPoint(t, sub) {
			t.Errorf("the container's mount at /shared/sub did not propagate to %s", sub)
		}
		unix.Unmount(sub, unix.MNT_DETACH)
		// A missing host path is refused.
		cfg = e.config("missing", "true")
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x", HostPath: filepath.Join(host, "nope")}}
		_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("missing host path: %v", err)
		}
		// Bidirectional on a private mount is refused.
		cfg = e.config("private", "true")
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x", HostPath: host, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
		if _, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("bidirectional on a private mount: %v", err)
		}
	})
}

func TestEntrypointCmdArgsEnvAndWorkdirPrecedence(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		reg := registry.Start(t)
		ref := reg.Push(t, "library/configured:latest", images.Configured())
		if _, err := e.d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatal(err)
		}
		for i, tc := range []struct {
			name          string
			command, args []string
			envs          []*runtimeapi.KeyValue
			workdir       string
			want          string
		}{
			{name: "image defaults", want: "configured hello from /srv/app as 1000:1000"},
			{name: "args replace cmd", args: []string{"echo args $BERTH_GREETING"}, want: "args hello"},
			{name: "command replaces entrypoint", command: []string{"/bin/echo"}, want: ""},
			{name: "command and args", command: []string{"/bin/echo"}, args: []string{"a", "b"}, want: "a b"},
			{name: "config env overrides image env", args: []string{"echo $BERTH_GREETING $NEW"},
				envs: []*runtimeapi.KeyValue{{Key: "BERTH_GREETING", Value: []byte("bye")}, {Key: "NEW", Value: []byte("x")}}, want: "bye x"},
			{name: "config workdir overrides image workdir", args: []string{"pwd"}, workdir: "/tmp", want: "/tmp"},
		} {
			cfg := &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "matrix" + strconv.Itoa(i)},
				Image:    &runtimeapi.ImageSpec{Image: ref},
				Command:  tc.command, Args: tc.args, Envs: tc.envs, WorkingDir: tc.workdir,
				LogPath: "matrix" + strconv.Itoa(i) + ".log",
			}
			st, out := e.runToExit(t, cfg)
			if st.ExitCode != 0 || strings.TrimSpace(out) != tc.want {
				t.Errorf("%s: exit %d, output %q, want %q", tc.name, st.ExitCode, out, tc.want)
			}
		}
	})
}

func TestStopGracefulIgnoredAndImmediate(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		graceful := e.mustRun(t, e.config("graceful", "trap 'echo got TERM; exit 3' TERM; while :; do sleep 1; done"))
		stubborn := e.mustRun(t, e.config("stubborn", "trap '' TERM; while :; do sleep 1; done"))
		immediate := e.mustRun(t, e.config("immediate", "trap '' TERM; while :; do sleep 1; done"))
		time.Sleep(200 * time.Millisecond) // let the shells install their traps
		for _, c := range []struct {
			id      string
			timeout int64
			code    int32
		}{{graceful, 30, 3}, {stubborn, 1, 137}, {immediate, 0, 137}} {
			if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: c.id, Timeout: c.timeout}); err != nil {
				t.Fatalf("StopContainer: %v", err)
			}
			st := e.mustStatus(t, c.id)
			if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != c.code {
				t.Errorf("after StopContainer(timeout %d): %v exit %d, want exited %d", c.timeout, st.State, st.ExitCode, c.code)
			}
			// Stopping again is fine.
			if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: c.id, Timeout: 1}); err != nil {
				t.Errorf("second StopContainer: %v", err)
			}
		}
		if !strings.Contains(logContent(t, filepath.Join(e.logDir, "graceful.log")), "got TERM") {
			t.Error("the graceful container did not see SIGTERM")
		}
	})
}

func TestExitCodesReasonsAndTimestamps(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		okCfg := e.config("ok", "")
		okCfg.Command = []string{"grep", "SigIgn", "/proc/self/status"}
		ok, out := e.runToExit(t, okCfg)
		// Nothing berthd or the monitor ignore leaks into the container.
		if strings.TrimSpace(out) != "SigIgn:\t0000000000000000" {
			t.Errorf("the container's process starts with ignored signals: %q", out)
		}
		bad, _ := e.runToExit(t, e.config("bad", "exit 42"))
		if ok.ExitCode != 0 || ok.Reason != "Completed" || bad.ExitCode != 42 || bad.Reason != "Error" {
			t.Errorf("ok: %d %q; bad: %d %q", ok.ExitCode, ok.Reason, bad.ExitCode, bad.Reason)
		}
		if !(ok.CreatedAt > 0 && ok.CreatedAt <= ok.StartedAt && ok.StartedAt <= ok.FinishedAt) {
			t.Errorf("timestamps created %d started %d finished %d", ok.CreatedAt, ok.StartedAt, ok.FinishedAt)
		}
		if ok.LogPath != filepath.Join(e.logDir, "ok.log") || ok.ImageRef == "" || ok.Image.GetImage() != e.image {
			t.Errorf("status: log %q image %q ref %q", ok.LogPath, ok.Image.GetImage(), ok.ImageRef)
		}
	})
}

func TestLogLinesPartialLinesAndReopen(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// 20000 bytes on one line, then a line on stderr; then a line each
		// time a file appears, for the reopened logs.
		script := `head -c 20000 /dev/zero | tr '\0' x; echo; echo oops >&2
			for f in rotated vanished; do while [ ! -e /tmp/$f ]; do sleep 0.1; done; echo after-$f; done`
		cfg := e.config("logs", script)
		// kubelet's layout: a directory per container, a file per attempt.
		cfg.LogPath = "logs/0.log"
		id := e.mustRun(t, cfg)
		dir := filepath.Join(e.logDir, "logs")
		path := filepath.Join(dir, "0.log")
		deadline := time.Now().Add(time.Minute)
		for len(logRecords(t, path)) < 3 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		recs := logRecords(t, path)
		if len(recs) != 3 || recs[0].tag != "P" || len(recs[0].content) != 16384 ||
			recs[1].tag != "F" || len(recs[1].content) != 20000-16384 || recs[2] != (logRecord{"stderr", "F", "oops"}) {
			t.Fatalf("records %.300v", recs)
		}
		// kubelet's rotation: rename, then reopen.
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.Runtime.ReopenContainerLog(ctxFor(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
			t.Fatalf("ReopenContainerLog: %v", err)
		}
		e.mustExec(t, id, "touch", "/tmp/rotated")
		waitLog(t, path, "after-rotated")
		if got := logRecords(t, path); len(got) != 1 || got[0].content != "after-rotated" {
			t.Errorf("reopened log %v, want the line written after the rename", got)
		}
		// The log directory vanished and a file stands in its way: the
		// error says which log could not be reopened and why.
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := e.d.Runtime.ReopenContainerLog(ctxFor(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("ReopenContainerLog with a file where the log directory was: %v, want an error naming %s", err, path)
		}
		// Merely vanished: it is made again.
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.Runtime.ReopenContainerLog(ctxFor(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
			t.Fatalf("ReopenContainerLog after the log directory vanished: %v", err)
		}
		e.mustExec(t, id, "touch", "/tmp/vanished")
		e.waitExited(t, id)
		if got := logRecords(t, path); len(got) != 1 || got[0].content != "after-vanished" {
			t.Errorf("log in the recreated directory %v, want the line written after it was made", got)
		}
		if _, err := e.d.Runtime.ReopenContainerLog(ctxFor(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("ReopenContainerLog of an exited container: %v", err)
		}
	})
}

func TestExecSyncOutputExitCodeTimeoutAndMissingBinary(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("exec", "sleep 3600")
		cfg.Envs = []*runtimeapi.KeyValue{{Key: "FROM_CONFIG", Value: []byte("yes")}}
		cfg.WorkingDir = "/tmp"
		cfg.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: images.UserBerth}
		id := e.mustRun(t, cfg)
		resp, err := e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id[:12],
			Cmd: []string{"sh", "-c", "echo out $FROM_CONFIG $(pwd) $(id -u); echo err >&2; exit 7"}})
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Stdout) != "out yes /tmp 1000\n" || string(resp.Stderr) != "err\n" || resp.ExitCode != 7 {
			t.Errorf("ExecSync: stdout %q stderr %q exit %d", resp.Stdout, resp.Stderr, resp.ExitCode)
		}
		if got := e.mustExec(t, id, "grep", "SigIgn", "/proc/self/status"); got != "SigIgn:\t0000000000000000" {
			t.Errorf("exec'd process starts with ignored signals: %q", got)
		}
		_, err = e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "60"}, Timeout: 1})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("ExecSync past its timeout: %v, want DeadlineExceeded", err)
		}
		if out := e.mustExec(t, id, "sh", "-c", "ps -o comm | grep -c sleep"); out != "1" {
			t.Errorf("the timed-out exec was not killed: %s sleep processes", out)
		}
		// More than 16 MiB on each stream arrives cut, saying so, in one message.
		resp, err = e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id,
			Cmd: []string{"sh", "-c", "head -c 17000000 /dev/zero; head -c 17000000 /dev/zero >&2"}}, grpc.MaxCallRecvMsgSize(16<<20))
		if err != nil || len(resp.Stdout)+len(resp.Stderr) > 16<<20 || !strings.Contains(string(resp.Stdout), "truncated") {
			t.Errorf("oversized output: %v, %d + %d bytes", err, len(resp.GetStdout()), len(resp.GetStderr()))
		}
		resp, err = e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"/no/such/binary"}})
		if err != nil || resp.ExitCode != 127 || !strings.Contains(string(resp.Stderr), "no/such/binary") {
			t.Errorf("missing binary: %v, exit %d, stderr %q", err, resp.GetExitCode(), resp.GetStderr())
		}
	})
}

func TestContainersSurviveBerthdSIGKILLAndRestart(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		running := e.mustRun(t, e.config("running", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done"))
		exits := e.mustRun(t, e.config("exits", "while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 5"))
		done, _ := e.runToExit(t, e.config("done", "exit 2"))
		created := e.mustCreate(t, e.config("created", "true"))
		e.mustExec(t, exits, "true")

		pid := containerPid(t, e, exits)
		e.d.Kill(t)
		// While berthd is down, one container exits.
		exitAfter := time.Now()
		if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/root/tmp/go", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitProcessGone(t, pid)
		before := len(logRecords(t, filepath.Join(e.logDir, "running.log")))
		// Its finish time is its real one, not when berthd learnt of it.
		restartedAfter := time.Now()
		e.d.Restart(t)

		want := map[string]runtimeapi.ContainerState{
			running: runtimeapi.ContainerState_CONTAINER_RUNNING,
			exits:   runtimeapi.ContainerState_CONTAINER_EXITED,
			done.Id: runtimeapi.ContainerState_CONTAINER_EXITED,
			created: runtimeapi.ContainerState_CONTAINER_CREATED,
		}
		resp, err := e.d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: e.pod}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Containers) != len(want) {
			t.Errorf("%d containers listed after restart, want %d", len(resp.Containers), len(want))
		}
		for _, c := range resp.Containers {
			if c.State != want[c.Id] {
				t.Errorf("%s: %v, want %v", c.Metadata.Name, c.State, want[c.Id])
			}
		}
		if st := e.mustStatus(t, exits); st.ExitCode != 5 || st.Reason != "Error" ||
			st.FinishedAt < exitAfter.UnixNano() || st.FinishedAt > restartedAfter.UnixNano() {
			t.Errorf("container that exited during the outage: exit %d (%s) finished at %d, want 5 (Error) between %d and the restart at %d",
				st.ExitCode, st.Reason, st.FinishedAt, exitAfter.UnixNano(), restartedAfter.UnixNano())
		}
		if st := e.mustStatus(t, done.Id); st.ExitCode != 2 || st.FinishedAt != done.FinishedAt {
			t.Errorf("container that exited before: exit %d finished %d, want 2 at %d", st.ExitCode, st.FinishedAt, done.FinishedAt)
		}
		e.mustExec(t, running, "true")
		deadline := time.Now().Add(time.Minute)
		for len(logRecords(t, filepath.Join(e.logDir, "running.log"))) <= before+2 {
			if time.Now().After(deadline) {
				t.Fatal("the running container stopped logging across the restart")
			}
			time.Sleep(50 * time.Millisecond)
		}
		e.mustStart(t, created)
		if st := e.waitExited(t, created); st.ExitCode != 0 {
			t.Errorf("container created before the restart: exit %d", st.ExitCode)
		}
		if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: running, Timeout: 0}); err != nil {
			t.Errorf("StopContainer after restart: %v", err)
		}
	})
}

func TestContainerIDPrefixesListFiltersAndRemove(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		a := e.config("a", "sleep 3600")
		a.Labels = map[string]string{"app": "a"}
		ida := e.mustRun(t, a)
		// CreateContainer takes a pod ID prefix too.
		resp, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod[:12], Config: e.config("b", "true"), SandboxConfig: e.podCfg})
		if err != nil {
			t.Fatalf("CreateContainer in pod prefix %s: %v", e.pod[:12], err)
		}
		idb := resp.ContainerId
		list := func(f *runtimeapi.ContainerFilter) []string {
			resp, err := e.d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{Filter: f})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, c := range resp.Containers {
				ids = append(ids, c.Id)
			}
			return ids
		}
		running := runtimeapi.ContainerState_CONTAINER_RUNNING
		for name, tc := range map[string]struct {
			f    *runtimeapi.ContainerFilter
			want []string
		}{
			"by pod":        {&runtimeapi.ContainerFilter{PodSandboxId: e.pod}, []string{ida, idb}},
			"by pod prefix": {&runtimeapi.ContainerFilter{PodSandboxId: e.pod[:12]}, []string{ida, idb}},
			"by id":         {&runtimeapi.ContainerFilter{Id: ida[:10]}, []string{ida}},
			"by state":      {&runtimeapi.ContainerFilter{PodSandboxId: e.pod, State: &runtimeapi.ContainerStateValue{State: running}}, []string{ida}},
			"by label":      {&runtimeapi.ContainerFilter{PodSandboxId: e.pod, LabelSelector: map[string]string{"app": "a"}}, []string{ida}},
			"by no label":   {&runtimeapi.ContainerFilter{PodSandboxId: e.pod, LabelSelector: map[string]string{"app": "z"}}, nil},
		} {
			if got := list(tc.f); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s: %v, want %v", name, got, tc.want)
			}
		}
		if _, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: ""}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("empty ID: %v", err)
		}
		if _, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: "ffffffffffffff"}); status.Code(err) != codes.NotFound {
			t.Errorf("unknown ID: %v", err)
		}
		// Verbose status: the PID of the container's process and the OCI
		// spec it runs.
		verbose, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: ida[:8], Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Pid         int `json:"pid"`
			RuntimeSpec struct {
				Process struct {
					Args []string `json:"args"`
				} `json:"process"`
			} `json:"runtimeSpec"`
		}
		if err := json.Unmarshal([]byte(verbose.Info["info"]), &info); err != nil {
			t.Fatalf("verbose info %q: %v", verbose.Info["info"], err)
		}
		if got := info.RuntimeSpec.Process.Args; strings.Join(got, " ") != strings.Join(a.Command, " ") {
			t.Errorf("verbose info's spec runs %q, want %q", got, a.Command)
		}
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", info.Pid)); !strings.Contains(string(cmd), "sleep\x003600") && !strings.Contains(string(cmd), "sleep 3600") {
			t.Errorf("verbose info's pid %d runs %q, not the container's sleep 3600", info.Pid, cmd)
		}
		// Every other container call takes a unique prefix.
		pa, pb := ida[:12], idb[:12]
		e.mustStart(t, pb)
		e.waitExited(t, idb)
		if _, err := e.d.Runtime.UpdateContainerResources(ctxFor(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: pa,
			Linux: &runtimeapi.LinuxContainerResources{CpuShares: 256}}); err != nil {
			t.Errorf("UpdateContainerResources of prefix %s: %v", pa, err)
		}
		if _, err := e.d.Runtime.ReopenContainerLog(ctxFor(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: pa}); err != nil {
			t.Errorf("ReopenContainerLog of prefix %s: %v", pa, err)
		}
		if got := e.mustExec(t, pa, "cat", "/sys/fs/cgroup/cpu/cpu.shares"); got != "256" {
			t.Errorf("cpu.shares after an update by prefix = %s, want 256", got)
		}
		// Created containers until two share a first hex digit (at most 17):
		// that digit is an ambiguous prefix.
		byDigit := map[byte]string{ida[0]: ida, idb[0]: idb}
		var prefix string
		var extra []string
		for i := 0; prefix == "" && i < 17; i++ {
			if ida[0] == idb[0] {
				prefix = ida[:1]
				break
			}
			id := e.mustCreate(t, e.config("c"+strconv.Itoa(i), "true"))
			extra = append(extra, id)
			if _, ok := byDigit[id[0]]; ok {
				prefix = id[:1]
			}
			byDigit[id[0]] = id
		}
		// Every call taking a container ID refuses it, saying so, and
		// changes nothing.
		before := list(&runtimeapi.ContainerFilter{PodSandboxId: e.pod})
		for name, call := range map[string]func() error{
			"ContainerStatus": func() error {
				_, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: prefix})
				return err
			},
			"StartContainer": func() error {
				_, err := e.d.Runtime.StartContainer(ctxFor(t), &runtimeapi.StartContainerRequest{ContainerId: prefix})
				return err
			},
			"StopContainer": func() error {
				_, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: prefix})
				return err
			},
			"RemoveContainer": func() error {
				_, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: prefix})
				return err
			},
			"UpdateContainerResources": func() error {
				_, err := e.d.Runtime.UpdateContainerResources(ctxFor(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: prefix,
					Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512}})
				return err
			},
			"ReopenContainerLog": func() error {
				_, err := e.d.Runtime.ReopenContainerLog(ctxFor(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: prefix})
				return err
			},
			"ExecSync": func() error {
				_, err := e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: prefix, Cmd: []string{"true"}})
				return err
			},
		} {
			if err := call(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ambiguous") {
				t.Errorf("%s of ambiguous prefix %q: %v, want InvalidArgument saying it is ambiguous", name, prefix, err)
			}
		}
		// A list filter is no place for an error: an ambiguous prefix
		// selects nothing, as in containerd and CRI-O.
		if got := list(&runtimeapi.ContainerFilter{Id: prefix}); len(got) != 0 {
			t.Errorf("ListContainers with ambiguous ID prefix %q: %v, want none", prefix, got)
		}
		stats, err := e.d.Runtime.ListContainerStats(ctxFor(t), &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{Id: prefix}})
		if err != nil || len(stats.GetStats()) != 0 {
			t.Errorf("ListContainerStats with ambiguous ID prefix %q: %d stats, %v; want none", prefix, len(stats.GetStats()), err)
		}
		if after := list(&runtimeapi.ContainerFilter{PodSandboxId: e.pod}); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("containers after calls with an ambiguous prefix: %v, want %v", after, before)
		}
		if st := e.mustStatus(t, ida); st.State != running {
			t.Errorf("container a is %v after calls with an ambiguous prefix, want running", st.State)
		}
		for _, id := range extra {
			if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Errorf("RemoveContainer %s: %v", id, err)
			}
		}
		// StopContainer by prefix; RemoveContainer kills a running
		// container, and is idempotent.
		idc := e.mustRun(t, e.config("c", "sleep 3600"))
		if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: pa}); err != nil {
			t.Errorf("StopContainer of prefix %s: %v", pa, err)
		}
		if st := e.mustStatus(t, ida); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("after StopContainer of prefix %s: %v", pa, st.State)
		}
		for _, id := range []string{idc[:12], idc, pa, idb} {
			if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Errorf("RemoveContainer %s: %v", id, err)
			}
		}
		if got := list(&runtimeapi.ContainerFilter{PodSandboxId: e.pod}); len(got) != 0 {
			t.Errorf("containers left after remove: %v", got)
		}
	})
}

// containerPid is the container's first process, from verbose status.
func containerPid(t *testing.T, e *ctrEnv, id string) int {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("verbose info %q: %v", resp.Info["info"], err)
	}
	return info.Pid
}

func waitProcessGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUpdateContainerResourcesChangesTheLiveCgroup(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("update", "sleep 3600")
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}
		id := e.mustRun(t, cfg)
		res := &runtimeapi.LinuxContainerResources{CpuShares: 1024, MemoryLimitInBytes: 128 << 20}
		if _, err := e.d.Runtime.UpdateContainerResources(ctxFor(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: res}); err != nil {
			t.Fatalf("UpdateContainerResources: %v", err)
		}
		if got := e.mustExec(t, id, "cat", "/sys/fs/cgroup/cpu/cpu.shares"); got != "1024" {
			t.Errorf("cpu.shares = %s, want 1024", got)
		}
		if got := e.mustExec(t, id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); got != strconv.Itoa(128<<20) {
			t.Errorf("memory limit = %s, want %d", got, 128<<20)
		}
		if got := e.mustStatus(t, id).GetResources().GetLinux(); got.GetCpuShares() != 1024 || got.GetMemoryLimitInBytes() != 128<<20 {
			t.Errorf("status resources = %v", got)
		}
	})
}

func TestNegativeOOMScoreAdjIsClampedWithoutCapSysResource(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// This machine's root lacks CAP_SYS_RESOURCE: the default "auto"
		// keeps containers at berthd's own score or above.
		own, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", e.d.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		for adj, want := range map[int64]string{-500: strings.TrimSpace(string(own)), 500: "500"} {
			cfg := e.config("oom"+strconv.FormatInt(adj+1000, 10), "cat /proc/self/oom_score_adj")
			cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{OomScoreAdj: adj}
			st, out := e.runToExit(t, cfg)
			if st.ExitCode != 0 || strings.TrimSpace(out) != want {
				t.Errorf("oom_score_adj %d: exit %d, reads %q, want %s", adj, st.ExitCode, out, want)
			}
		}
	})
}

func TestStdinTTYAndDevices(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// stdin open: the container's stdin is a pipe that stays open, so
		// cat keeps running; without, it is /dev/null.
		withStdin := e.config("stdin", "readlink /proc/self/fd/0; cat; echo eof")
		withStdin.Stdin = true
		id := e.mustRun(t, withStdin)
		if got := e.mustExec(t, id, "readlink", "/proc/1/fd/0"); !strings.HasPrefix(got, "pipe:") {
			t.Errorf("stdin of a container with stdin: %q, want a pipe", got)
		}
		if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("cat on an open stdin exited: %v", st.State)
		}
		_, out := e.runToExit(t, e.config("nostdin", "readlink /proc/self/fd/0; cat; echo eof"))
		if out != "/dev/null\neof\n" {
			t.Errorf("without stdin: %q", out)
		}
		tty := e.config("tty", "tty; test -t 1 && echo stdout-is-a-tty")
		tty.Tty = true
		_, out = e.runToExit(t, tty)
		if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "stdout-is-a-tty") {
			t.Errorf("tty container: %q", out)
		}
		dev := e.config("dev", "head -c 5 /dev/xzero | wc -c")
		dev.Devices = []*runtimeapi.Device{{HostPath: "/dev/zero", ContainerPath: "/dev/xzero", Permissions: "r"}}
		_, out = e.runToExit(t, dev)
		if strings.TrimSpace(out) != "5" {
			t.Errorf("device /dev/xzero: %q", out)
		}
	})
}

func TestPIDNamespaceTargetModeSharesTheTargetsProcesses(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		target := e.mustRun(t, e.config("target", "sleep 3600"))
		cfg := e.config("debug", "ps -o pid,comm | grep -c 'sleep'")
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		cfg.Linux.SecurityContext.NamespaceOptions.TargetId = target
		_, out := e.runToExit(t, cfg)
		if strings.TrimSpace(out) != "1" {
			t.Errorf("the TARGET-mode container sees %q sleep processes, want the target's 1", out)
		}
	})
}

func isMountPoint(t *testing.T, p string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

func TestPIDNamespacePodModeJoinsThePodsReaper(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := podConfig(e.d, "podpid-"+strings.TrimPrefix(strings.ToLower(t.Name()), "testpidnamespacepodmodejoinsthepodsreaper/"))
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		cfg.LogDirectory = e.logDir
		resp, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handlerOf(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		})
		shared := &ctrEnv{d: e.d, image: e.image, pod: resp.PodSandboxId, podCfg: cfg, logDir: e.logDir}
		a := shared.config("a", "sleep 3600")
		a.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		shared.mustRun(t, a)
		b := shared.config("b", "cat /proc/1/comm; ps -o comm | grep -c sleep")
		b.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		_, out := shared.runToExit(t, b)
		if f := strings.Fields(out); len(f) != 2 || f[1] != "1" || f[0] == "sh" {
			t.Errorf("a POD-mode container sees PID 1 %q and %q sleeps; want the pod's reaper and container a's sleep", f, out)
		}
	})
}

// handlerOf is the runtime handler a forEachHandler subtest runs.
func handlerOf(t *testing.T) string {
	return t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]
}

func TestCreateContainerRefusesBadRequestsAndLeavesNothing(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		create := func(pod string, cfg *runtimeapi.ContainerConfig) error {
			_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg})
			return err
		}
		noImage := e.config("noimage", "true")
		noImage.Image.Image = "127.0.0.1:1/never/pulled:latest"
		noName := e.config("", "true")
		badCwd := e.config("badcwd", "true")
		badCwd.WorkingDir = "relative"
		badCmd := e.config("badcmd", "")
		badCmd.Command = []string{"/no/such/program"}
		for _, tc := range []struct {
			name string
			pod  string
			cfg  *runtimeapi.ContainerConfig
			code codes.Code
		}{
			{"an unknown pod", "0000000000000000000000000000000000000000000000000000000000000000", e.config("x", "true"), codes.NotFound},
			{"an image not pulled", e.pod, noImage, codes.NotFound},
			{"no metadata name", e.pod, noName, codes.InvalidArgument},
			{"a relative working dir", e.pod, badCwd, codes.InvalidArgument},
		} {
			if err := create(tc.pod, tc.cfg); status.Code(err) != tc.code {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
			}
		}
		// A program that does not exist fails at create, as with runc.
		if err := create(e.pod, badCmd); err == nil || !strings.Contains(err.Error(), "/no/such/program") {
			t.Errorf("a missing program: %v, want an error naming it", err)
		}
		e.mustCreate(t, e.config("dup", "true"))
		if err := create(e.pod, e.config("dup", "true")); status.Code(err) != codes.AlreadyExists {
			t.Errorf("the same name twice: %v, want AlreadyExists", err)
		}
		if _, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
			t.Fatal(err)
		}
		if err := create(e.pod, e.config("late", "true")); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("a stopped pod: %v, want FailedPrecondition", err)
		}
		entries, _ := os.ReadDir(filepath.Join(e.d.State, "containers"))
		if len(entries) != 1 {
			t.Errorf("state dirs of failed creates are left: %d entries, want the one container's", len(entries))
		}
	})
}

// kubeletHugepageLimits is what kubelet puts in every container's
// resources: a limit for each page size the node has, 0 when the pod asks
// for none.
var kubeletHugepageLimits = []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 0}}

func TestKubeletsHugepageLimitsDoNotFailContainersWithoutHugetlb(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// This host has no hugetlb controller a container cgroup can use
		// (hybrid: hugetlb sits on the empty cgroup2 mount), so the limits
		// cannot apply; the container must still run, as under containerd.
		cfg := e.config("huge", "sleep 3600")
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, HugepageLimits: kubeletHugepageLimits}
		id := e.mustRun(t, cfg)
		if got := e.mustExec(t, id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
			t.Errorf("memory limit beside the hugepage limits = %s, want %d", got, 64<<20)
		}
		// kubelet sends them on in-place resizes too.
		res := &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, HugepageLimits: kubeletHugepageLimits}
		if _, err := e.d.Runtime.UpdateContainerResources(ctxFor(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: res}); err != nil {
			t.Fatalf("UpdateContainerResources with hugepage limits: %v", err)
		}
		if got := e.mustExec(t, id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); got != strconv.Itoa(96<<20) {
			t.Errorf("memory limit after the update = %s, want %d", got, 96<<20)
		}
		// Pod-level resources carrying them make the pod cgroup all the same.
		pod := podConfig(e.d, "huge-"+handlerOf(t))
		pod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		pod.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, HugepageLimits: kubeletHugepageLimits}
		mustRunPodWith(t, e.d, pod, handlerOf(t))
		if b, _ := os.ReadFile(memoryLimitFile(pod.Linux.CgroupParent)); strings.TrimSpace(string(b)) != strconv.Itoa(128<<20) {
			t.Errorf("pod cgroup memory limit beside hugepage limits = %q, want %d", b, 128<<20)
		}
	})
}

func TestStopPodSandboxKillsRunningContainersAtOnceByDefault(t *testing.T) {
	// kubelet stops a pod's containers with their grace period before it
	// stops the pod; the CRI then asks for the rest to be killed at once.
	// A container that would log its SIGTERM must get SIGKILL alone.
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("stubborn", "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.1; done"))
		waitLog(t, filepath.Join(e.logDir, "stubborn.log"), "ready")
		if _, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
		st := e.mustStatus(t, id)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.Message != "killed by signal 9" {
			t.Errorf("after StopPodSandbox: %v exit %d %q, want exited 137 killed by signal 9", st.State, st.ExitCode, st.Message)
		}
		if strings.Contains(logContent(t, filepath.Join(e.logDir, "stubborn.log")), "got TERM") {
			t.Error("StopPodSandbox sent SIGTERM and waited, though no stop timeout is configured")
		}
	})
}

func TestStopPodSandboxSendsTheStopSignalFirstWhenAGraceIsConfigured(t *testing.T) {
	// With stop_timeout_seconds set, StopPodSandbox stops each container
	// gracefully: its stop signal, SIGKILL only once the grace is over (an
	// hour here: the test would hang if the graceful path were not taken).
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("graceful", "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done"))
		waitLog(t, filepath.Join(e.logDir, "graceful.log"), "ready")
		if _, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
		if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 3 {
			t.Errorf("after StopPodSandbox: %v exit %d, want exited 3 from the TERM trap", st.State, st.ExitCode)
		}
		if !strings.Contains(logContent(t, filepath.Join(e.logDir, "graceful.log")), "got TERM") {
			t.Error("the container did not see SIGTERM")
		}
	}, harness.WithConfig(func(c *config.Config) { c.Runtime.StopTimeoutGrace = 3600 }))
}

// waitLog waits until the CRI log at path holds line.
func waitLog(t *testing.T, path, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(path); err == nil && strings.Contains(logContent(t, path), line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not in %s after a minute", line, path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStopContainerSendsTheImagesStopSignalUnlessTheConfigNamesOne(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		reg := registry.Start(t)
		ref := reg.Push(t, "library/configured:latest", images.Configured()) // STOPSIGNAL SIGUSR1
		if _, err := e.d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			signal runtimeapi.Signal
			code   int32
		}{
			{name: "image", code: 4},
			{name: "config", signal: runtimeapi.Signal_SIGNAL_SIGHUP, code: 6},
		} {
			cfg := &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "stopsig-" + tc.name},
				Image:    &runtimeapi.ImageSpec{Image: ref},
				// The image's entrypoint is sh -c.
				Args:       []string{"trap 'exit 4' USR1; trap 'exit 5' TERM; trap 'exit 6' HUP; echo ready; while :; do sleep 0.1; done"},
				LogPath:    "stopsig-" + tc.name + ".log",
				StopSignal: tc.signal,
			}
			id := e.mustRun(t, cfg)
			waitLog(t, filepath.Join(e.logDir, cfg.LogPath), "ready")
			if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 60}); err != nil {
				t.Fatalf("StopContainer: %v", err)
			}
			if st := e.mustStatus(t, id); st.ExitCode != tc.code {
				t.Errorf("stop signal from the %s: exit %d, want %d", tc.name, st.ExitCode, tc.code)
			}
		}
	})
}

func TestStopRightAfterStartReachesTheHandlerOfPID1(t *testing.T) {
	// A stop that follows the start at once must not lose the signal: the
	// kernel drops a signal sent from outside to a PID namespace's init
	// that has no handler for it yet, so Berth waits until the handler is
	// there (or the deadline). Every stop ends with the trap's exit code;
	// a lost SIGTERM would end in SIGKILL (137) at the deadline.
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		const rounds = 50
		lost := 0
		for i := 0; i < rounds; i++ {
			cfg := e.config("trap"+strconv.Itoa(i), "trap 'exit 7' TERM; sleep 3600 & wait")
			id := e.mustRun(t, cfg)
			if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 20}); err != nil {
				t.Fatalf("StopContainer: %v", err)
			}
			if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
				t.Errorf("round %d: %v exit %d, want exited 7 from the TERM trap", i, st.State, st.ExitCode)
				lost++
			}
			if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Fatalf("RemoveContainer: %v", err)
			}
			if lost > 2 {
				t.Fatalf("stop signal lost in %d of %d rounds", lost, i+1)
			}
		}
	})
}

func TestStopOfAPID1WithoutAHandlerKillsItAtTheDeadline(t *testing.T) {
	// sleep installs no handler: the SIGTERM can never reach it, and the
	// SIGKILL at the deadline ends it, as on other runtimes.
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("nohandler", "")
		cfg.Command = []string{"sleep", "3600"}
		id := e.mustRun(t, cfg)
		if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
			t.Fatalf("StopContainer: %v", err)
		}
		if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
			t.Errorf("after StopContainer: %v exit %d, want exited 137 (SIGKILL at the deadline)", st.State, st.ExitCode)
		}
	})
}

func TestStopAndRemoveOfUnknownIDsSucceedAndDoNothing(t *testing.T) {
	// The CRI asks stops and removals to be idempotent and kubelet retries
	// them after restarts: an ID that names nothing is OK (containerd 2.x
	// answers so), and the pod and container that do exist are untouched.
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("bystander", "sleep 3600"))
		// A first digit neither ID starts with names nothing.
		free := strings.NewReplacer(id[:1], "", e.pod[:1], "").Replace("0123456789abcdef")[:1]
		for _, unknown := range []string{strings.Repeat(free, 64), free + "notanid"} {
			for name, call := range map[string]func() error{
				"StopContainer": func() error {
					_, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: unknown, Timeout: 10})
					return err
				},
				"RemoveContainer": func() error {
					_, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: unknown})
					return err
				},
				"StopPodSandbox": func() error {
					_, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: unknown})
					return err
				},
				"RemovePodSandbox": func() error {
					_, err := e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: unknown})
					return err
				},
			} {
				if err := call(); err != nil {
					t.Errorf("%s of unknown ID %q: %v, want OK", name, unknown, err)
				}
			}
		}
		if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container is %v after stops and removals of unknown IDs, want running", st.State)
		}
		pod, err := e.d.Runtime.PodSandboxStatus(ctxFor(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.pod})
		if err != nil || pod.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod after stops and removals of unknown IDs: %v, %v; want ready", pod.GetStatus().GetState(), err)
		}
	})
}

func TestStopRightAfterStartReachesTheHandlerOfTheImagesAndTheConfigsStopSignal(t *testing.T) {
	// The image's STOPSIGNAL and the CRI stop_signal wait for the handler as
	// SIGTERM does.
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		reg := registry.Start(t)
		ref := reg.Push(t, "library/configured:latest", images.Configured()) // STOPSIGNAL SIGUSR1
		if _, err := e.d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			signal runtimeapi.Signal
			code   int32
		}{
			{name: "image", code: 4},
			{name: "config", signal: runtimeapi.Signal_SIGNAL_SIGHUP, code: 6},
		} {
			for i := 0; i < 10; i++ {
				name := "quickstop-" + tc.name + strconv.Itoa(i)
				id := e.mustRun(t, &runtimeapi.ContainerConfig{
					Metadata: &runtimeapi.ContainerMetadata{Name: name},
					Image:    &runtimeapi.ImageSpec{Image: ref},
					// The image's entrypoint is sh -c.
					Args:       []string{"trap 'exit 4' USR1; trap 'exit 5' TERM; trap 'exit 6' HUP; sleep 3600 & wait"},
					LogPath:    name + ".log",
					StopSignal: tc.signal,
				})
				if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 20}); err != nil {
					t.Fatalf("StopContainer: %v", err)
				}
				if st := e.mustStatus(t, id); st.ExitCode != tc.code {
					t.Fatalf("stop signal from the %s, round %d: exit %d, want %d", tc.name, i, st.ExitCode, tc.code)
				}
				if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
					t.Fatalf("RemoveContainer: %v", err)
				}
			}
		}
	})
}
