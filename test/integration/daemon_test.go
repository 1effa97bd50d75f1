package integration

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/version"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestVersionNamesBerthAndCRIv1(t *testing.T) {
	d := harness.Start(t)
	v, err := d.Runtime.Version(ctxFor(t), &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" || v.Version != "0.1.0" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %+v, want runtime_name berth, runtime_api_version v1, version 0.1.0 and a runtime_version", v)
	}
	// kubelet parses runtime_version as a semantic version (else the node
	// shows berth://Unknown); berthd --version prints the same.
	if _, err := version.ParseSemantic(v.RuntimeVersion); err != nil {
		t.Errorf("runtime_version %q is not a semantic version: %v", v.RuntimeVersion, err)
	}
	out, err := exec.Command(harness.Binary(t), "--version").Output()
	if err != nil {
		t.Fatalf("berthd --version: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "berthd "+v.RuntimeVersion {
		t.Errorf("berthd --version printed %q, want \"berthd %s\"", got, v.RuntimeVersion)
	}
}

func TestStatusReportsRuntimeReadyAndNetworkNotReadyWithoutConfig(t *testing.T) {
	d := harness.Start(t) // its CNI conf dir is empty
	st, err := d.Runtime.Status(ctxFor(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.Status.Conditions {
		conds[c.Type] = c
	}
	if c := conds[runtimeapi.RuntimeReady]; c == nil || !c.Status {
		t.Errorf("RuntimeReady = %v, want true", c)
	}
	if c := conds[runtimeapi.NetworkReady]; c == nil || c.Status || c.Reason == "" || c.Message == "" {
		t.Errorf("NetworkReady = %v, want false with a reason and a message", c)
	}
	if !strings.Contains(st.Info["config"], d.Root) {
		t.Errorf("verbose Status info[config] does not show the root dir %s: %q", d.Root, st.Info["config"])
	}
	var handlers []string
	for _, h := range st.RuntimeHandlers {
		handlers = append(handlers, h.Name)
	}
	if strings.Join(handlers, ",") != ",berth,crun,runc" {
		t.Errorf("Status runtime handlers = %q, want the default (\"\") then berth, crun, runc", handlers)
	}
}

func TestRuntimeConfigReportsTheCgroupDriver(t *testing.T) {
	d := harness.Start(t)
	rc, err := d.Runtime.RuntimeConfig(ctxFor(t), &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.GetLinux().GetCgroupDriver(); got != runtimeapi.CgroupDriver_CGROUPFS {
		t.Fatalf("cgroup driver = %v, want CGROUPFS", got)
	}
}

func TestUnimplementedCallAnswersUnimplemented(t *testing.T) {
	d := harness.Start(t)
	_, err := d.Runtime.CheckpointContainer(ctxFor(t), &runtimeapi.CheckpointContainerRequest{ContainerId: "x"})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "CheckpointContainer") {
		t.Fatalf("CheckpointContainer error = %v, want Unimplemented naming the method", err)
	}
}

func TestSocketAndDirectoryModes(t *testing.T) {
	d := harness.Start(t)
	for path, want := range map[string]os.FileMode{d.Socket: 0o660, filepath.Dir(d.Socket): 0o711, d.State: 0o711, d.Root: 0o711} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", path, got, want)
		}
	}
}

func TestSecondDaemonOnTheSameSocketRefusesToStart(t *testing.T) {
	d := harness.Start(t)
	other := t.TempDir()
	cmd := exec.Command(harness.Binary(t), "--config", d.ConfigPath,
		"--root", filepath.Join(other, "root"), "--state", filepath.Join(other, "state"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a second berthd on %s started; output:\n%s", d.Socket, out)
	}
	if !strings.Contains(string(out), "in use by another running berthd") {
		t.Errorf("second berthd's error does not say the socket is in use:\n%s", out)
	}
	if _, err := d.Runtime.Version(ctxFor(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("the first berthd stopped answering after the second tried its socket: %v", err)
	}
}

func TestStaleSocketOfACrashedDaemonIsReplaced(t *testing.T) {
	d := harness.Start(t)
	d.Kill(t)
	if _, err := os.Stat(d.Socket); err != nil {
		t.Fatalf("after SIGKILL the socket should still be on disk, stale: %v", err)
	}
	d.Restart(t)
	if _, err := d.Runtime.Version(ctxFor(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestTwoDaemonsRunSideBySide(t *testing.T) {
	a := harness.Start(t)
	b := harness.Start(t)
	for _, d := range []*harness.Daemon{a, b} {
		if _, err := d.Runtime.Version(ctxFor(t), &runtimeapi.VersionRequest{}); err != nil {
			t.Fatalf("berthd on %s: %v", d.Socket, err)
		}
	}
}

func TestSIGTERMStopsCleanlyAndRemovesTheSocket(t *testing.T) {
	d := harness.Start(t)
	d.Stop(t) // fails the test unless the exit is clean
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Errorf("socket %s still exists after a clean shutdown: %v", d.Socket, err)
	}
	if !strings.Contains(d.Logs(), "shutting down") {
		t.Errorf("log does not record the shutdown:\n%s", d.Logs())
	}
}

// SIGHUP, which a daemon gets when its terminal goes away (and which nohup
// would ignore, were the ignore not reset for the containers' sake), is
// logged and otherwise ignored.
func TestSIGHUPLeavesBerthdServing(t *testing.T) {
	d := harness.Start(t)
	if err := syscall.Kill(d.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(d.Logs(), "SIGHUP ignored") {
		if !d.Running() {
			t.Fatalf("berthd exited on SIGHUP; log:\n%s", d.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := d.Runtime.Version(ctxFor(t), &runtimeapi.VersionRequest{}); err != nil || !d.Running() {
		t.Fatalf("berthd after SIGHUP: Version %v, running %v", err, d.Running())
	}
}

func TestEveryRPCIsLoggedAtDebugWithMethodDurationAndCode(t *testing.T) {
	d := harness.Start(t)
	if _, err := d.Runtime.CheckpointContainer(ctxFor(t), &runtimeapi.CheckpointContainerRequest{ContainerId: "c0ffee"}); err == nil {
		t.Fatal("CheckpointContainer succeeded")
	}
	d.Stop(t)
	var line string
	for _, l := range strings.Split(d.Logs(), "\n") {
		if strings.Contains(l, "/runtime.v1.RuntimeService/CheckpointContainer") {
			line = l
		}
	}
	for _, want := range []string{`"duration"`, `"code": "Unimplemented"`, `"container": "c0ffee"`, "DEBUG"} {
		if !strings.Contains(line, want) {
			t.Errorf("CheckpointContainer log line lacks %s: %q", want, line)
		}
	}
}

func TestBadConfigFilesFailNamingTheKey(t *testing.T) {
	harness.RequireRoot(t)
	tests := []struct {
		name string
		file string
		want string
	}{
		{name: "an unknown top-level key is named", file: "sockett = \"/x\"\n", want: "unknown key sockett"},
		{name: "an unknown key in a table is named with its table", file: "[cni]\nconfdir = \"/x\"\n", want: "unknown key cni.confdir"},
		{name: "a value of the wrong type names its key", file: "[registry]\nmax_concurrent_downloads = \"three\"\n", want: "registry.max_concurrent_downloads"},
		{name: "a bad value names its key", file: "[runtime]\ncgroup_driver = \"cgroupz\"\n", want: "key runtime.cgroup_driver"},
		{name: "a relative path names its key", file: "[cni]\nconf_dir = \"etc/cni/net.d\"\n", want: "key cni.conf_dir"},
		{name: "a default runtime without a handler names its key", file: "[runtime]\ndefault_runtime = \"kata\"\n", want: "key runtime.default_runtime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.toml")
			os.WriteFile(path, []byte(tt.file), 0o600)
			// A berthd that wrongly accepts the file would serve forever.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, harness.Binary(t), "--config", path, "--socket", filepath.Join(dir, "s.sock"),
				"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"))
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("berthd started with a bad config; output:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("error does not name %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestPrintDefaultConfigIsTheDefaultAndCommentsEveryKey(t *testing.T) {
	out, err := exec.Command(harness.Binary(t), "--print-default-config").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := config.Config{}
	if err := config.Decode(out, &got); err != nil {
		t.Fatalf("printed default config does not load: %v\n%s", err, out)
	}
	want, _ := config.Marshal(config.Default())
	again, _ := config.Marshal(got)
	if !bytes.Equal(want, again) {
		t.Errorf("printed config loads as something else than the defaults:\n%s\nvs\n%s", again, want)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if strings.Contains(l, " = ") && !strings.HasPrefix(l, "#") {
			if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
				t.Errorf("key line %q has no comment above it", l)
			}
		}
	}
}

// TestMetadataSurvivesSIGTERMAndRestart stops berthd gracefully with an
// image, a ready pod, a stopped pod, a running and a created container,
// starts it again on the same root, and reads everything back: the records
// are in the database, and the running container kept running while no
// berthd was there.
func TestMetadataSurvivesSIGTERMAndRestart(t *testing.T) {
	d := startPodDaemon(t)
	image := pullPodTestImage(t, d)
	readyCfg, stoppedCfg := podConfig(d, "ready"), podConfig(d, "stopped")
	ready, stopped := mustRunPod(t, d, readyCfg), mustRunPod(t, d, stoppedCfg)
	defer mustRemovePod(t, d, ready)
	defer mustRemovePod(t, d, stopped)
	mustStopPod(t, d, stopped)
	running := startPodContainer(t, d, ready, readyCfg, "running", image, runtimeapi.NamespaceMode_CONTAINER, "sleep", "3600")
	created, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId:  ready,
		Config:        &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "created"}, Image: &runtimeapi.ImageSpec{Image: image}, Command: []string{"true"}},
		SandboxConfig: readyCfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := containerPid(t, &ctrEnv{d: d}, running)

	d.Stop(t)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("container process %d did not outlive berthd's SIGTERM: %v", pid, err)
	}
	d.Restart(t)

	imgs, err := d.Images.ListImages(ctxFor(t), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs.Images) != 1 || !slices.Contains(imgs.Images[0].RepoTags, image) {
		t.Errorf("images after restart = %v, want one tagged %s", imgs.Images, image)
	}
	pods, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	podStates := map[string]runtimeapi.PodSandboxState{}
	for _, p := range pods.Items {
		podStates[p.Id] = p.State
	}
	if want := map[string]runtimeapi.PodSandboxState{ready: runtimeapi.PodSandboxState_SANDBOX_READY, stopped: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}; !maps.Equal(podStates, want) {
		t.Errorf("pods after restart = %v, want %v", podStates, want)
	}
	ctrs, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctrStates := map[string]runtimeapi.ContainerState{}
	for _, c := range ctrs.Containers {
		ctrStates[c.Id] = c.State
	}
	if want := map[string]runtimeapi.ContainerState{running: runtimeapi.ContainerState_CONTAINER_RUNNING, created.ContainerId: runtimeapi.ContainerState_CONTAINER_CREATED}; !maps.Equal(ctrStates, want) {
		t.Errorf("containers after restart = %v, want %v", ctrStates, want)
	}
	if got := containerPid(t, &ctrEnv{d: d}, running); got != pid {
		t.Errorf("running container's PID after restart = %d, want %d", got, pid)
	}
	// The restarted berthd still drives the container it did not start.
	if out := mustPodExec(t, d, running, "echo", "still here"); out != "still here" {
		t.Errorf("ExecSync after restart = %q", out)
	}
}
