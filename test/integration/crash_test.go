package integration

// Crash points: berthd is killed with SIGKILL at every step of
// sandbox/failpoint (RunPodSandbox, CreateContainer, StartContainer,
// StopPodSandbox, RemovePodSandbox and PullImage) in turn, a new berthd
// starts on the same root and state, and the test checks what a user
// sees: over the CRI the object is whole or absent (a half-made one is
// NOTREADY, EXITED or UNKNOWN and removable), and once it is removed the
// host holds nothing of it (the harness's leak check: mounts, namespace
// pins, processes, cgroups, veths, address leases, snapshots, ingest
// files) and berthd's directories hold no pod or container.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crashEnv is one berthd, restarted for every step, with busybox pulled.
type crashEnv struct {
	d     *harness.Daemon
	reg   *registry.Registry
	image string
	seq   int
	// userns: the pods have their own user namespace; env is berthd's
	// environment without a failpoint.
	userns bool
	volume string // an idmapped volume of the userns pods' containers
	env    []string
}

func TestCrashAtEveryFailpointLeavesTheObjectWholeOrAbsentAndNothingLeaks(t *testing.T) {
	e := &crashEnv{d: startPodDaemon(t), reg: registry.Start(t)}
	e.image = e.reg.Push(t, "library/busybox:latest", images.Busybox())
	mustPullImage(t, e.d, e.image)
	e.crashAt(t, failpoint.Steps())
}

// A pod with its own user namespace has one more pin, berth-podinit made
// with it, and containers with an idmapped rootfs and volume: a crash at
// any step of their making, stopping or removal leaves them whole or
// absent, and nothing of them once removed.
func TestCrashInAUserNamespacePodLeavesItWholeOrAbsentAndNothingLeaks(t *testing.T) {
	e := &crashEnv{d: startPodDaemon(t), reg: registry.Start(t), userns: true, volume: t.TempDir()}
	// The containers' root reaches its rootfs through the state dir.
	if err := os.Chmod(e.d.Dir, 0o711); err != nil {
		t.Fatal(err)
	}
	e.image = e.reg.Push(t, "library/busybox:latest", images.Busybox())
	mustPullImage(t, e.d, e.image)
	var steps []failpoint.Step
	for _, s := range failpoint.Steps() {
		if call, _, _ := strings.Cut(string(s), "/"); call != "pull-image" {
			steps = append(steps, s)
		}
	}
	e.crashAt(t, steps)
}

// crashAt crashes berthd at each of steps in turn.
func (e *crashEnv) crashAt(t *testing.T, steps []failpoint.Step) {
	for _, step := range steps {
		t.Run(string(step), func(t *testing.T) {
			e.seq++
			e.ensureRunning(t)
			defer func() {
				// Also after a failed step, so that the next starts clean.
				e.ensureRunning(t)
				e.removeEverything(t)
				e.assertNothingLeft(t)
			}()
			call, _, _ := strings.Cut(string(step), "/")
			switch call {
			case "run-pod-sandbox":
				e.crashRunPod(t, step)
			case "create-container":
				e.crashCreate(t, step)
			case "start-container":
				e.crashStart(t, step)
			case "stop-pod-sandbox":
				e.crashStop(t, step)
			case "remove-pod-sandbox", "remove-container":
				e.crashRemove(t, step)
			case "pull-image":
				e.crashPull(t, step)
			default:
				t.Fatalf("step %s belongs to no call this test knows", step)
			}
		})
	}
}

// podConfig is a pod in PID mode POD, so that berth-podinit's steps are
// passed too, with its own network.
func (e *crashEnv) podConfig() *runtimeapi.PodSandboxConfig {
	cfg := podConfig(e.d, fmt.Sprintf("crash-%d", e.seq))
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	if e.userns {
		cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns(5<<16, 6<<16)
	}
	return cfg
}

func (e *crashEnv) ctrConfig() *runtimeapi.ContainerConfig {
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleeper"},
		Image:    &runtimeapi.ImageSpec{Image: e.image},
		Command:  []string{"/bin/sleep", "3600"},
	}
	if e.userns {
		userns := e.podConfig().Linux.SecurityContext.NamespaceOptions.UsernsOptions
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: e.volume, UidMappings: userns.Uids, GidMappings: userns.Gids}}
	}
	return cfg
}

// ensureRunning starts berthd with no failpoint if a failed step left it
// dead.
func (e *crashEnv) ensureRunning(t *testing.T) {
	t.Helper()
	if !e.d.Running() {
		e.d.Env = e.env
		e.d.Restart(t)
	}
}

// arm restarts berthd with the failpoint at step.
func (e *crashEnv) arm(t *testing.T, step failpoint.Step) {
	t.Helper()
	e.d.Stop(t)
	e.d.Env = append([]string{failpoint.Env + "=" + string(step)}, e.env...)
	e.d.Restart(t)
}

// mustDieAt checks that berthd's call failed because berthd killed itself
// at step, and starts a new berthd with no failpoint.
func (e *crashEnv) mustDieAt(t *testing.T, step failpoint.Step, callErr error) {
	t.Helper()
	st := e.d.WaitExit(30 * time.Second)
	if st == nil {
		t.Fatalf("berthd is still running after the call (%v): step %s was never reached", callErr, step)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("berthd ended with %v, not by its SIGKILL at %s; log:\n%s", st, step, e.d.Logs())
	}
	if callErr == nil {
		t.Fatalf("the call succeeded although berthd died at %s", step)
	}
	if !strings.Contains(e.d.Logs(), "failpoint "+string(step)+" reached") {
		t.Fatalf("berthd died, but not at failpoint %s; log:\n%s", step, e.d.Logs())
	}
	e.d.Env = e.env
	e.d.Restart(t)
}

func (e *crashEnv) runPod(t *testing.T) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := e.podConfig()
	resp, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return resp.PodSandboxId, cfg
}

func (e *crashEnv) create(t *testing.T, pod string, cfg *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod, Config: e.ctrConfig(), SandboxConfig: cfg})
	return resp.GetContainerId(), err
}

func (e *crashEnv) start(t *testing.T, id string) error {
	_, err := e.d.Runtime.StartContainer(ctxFor(t), &runtimeapi.StartContainerRequest{ContainerId: id})
	return err
}

func (e *crashEnv) mustCreateAndStart(t *testing.T, pod string, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	id, err := e.create(t, pod, cfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := e.start(t, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	return id
}

func (e *crashEnv) pods(t *testing.T) []*runtimeapi.PodSandbox {
	t.Helper()
	resp, err := e.d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatalf("ListPodSandbox: %v", err)
	}
	return resp.Items
}

func (e *crashEnv) containers(t *testing.T) []*runtimeapi.Container {
	t.Helper()
	resp, err := e.d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	return resp.Containers
}

// assertPodWhole checks that a pod reported READY is one: its network
// namespace is pinned with an address, and a container starts in it.
func (e *crashEnv) assertPodWhole(t *testing.T, pod *runtimeapi.PodSandbox) {
	t.Helper()
	st := mustPodStatus(t, e.d, pod.Id)
	if st.Status.GetNetwork().GetIp() == "" {
		t.Errorf("pod %s is READY with no address", pod.Id)
	}
	kinds := []string{"net", "ipc", "uts", "pid"}
	if e.userns {
		kinds = append(kinds, "user")
	}
	for _, k := range kinds {
		if p := filepath.Join(pinDir(e.d, pod.Id), k); !isNamespaceFile(p) {
			t.Errorf("pod %s is READY but its %s namespace is not pinned at %s", pod.Id, k, p)
		}
	}
	if e.userns {
		assertUsernsOwnsThePods(t, pinDir(e.d, pod.Id))
	}
	cfg := e.podConfig()
	cfg.Metadata = pod.Metadata
	id := e.mustCreateAndStart(t, pod.Id, cfg)
	e.assertRunning(t, id)
}

// assertRunning checks that a container reported RUNNING runs: an exec in
// it works.
func (e *crashEnv) assertRunning(t *testing.T, id string) {
	t.Helper()
	resp, err := e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 30})
	if err != nil || resp.ExitCode != 0 {
		t.Errorf("container %s is RUNNING but an exec in it gives %v, %v", id, resp, err)
	}
}

// assertContainerWholeOrDead checks the containers listed after a crash:
// each is CREATED and starts, RUNNING and runs, or EXITED or UNKNOWN (a
// half-made one); removal is checked by removeEverything.
func (e *crashEnv) assertContainerWholeOrDead(t *testing.T) {
	t.Helper()
	for _, c := range e.containers(t) {
		switch c.State {
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			if err := e.start(t, c.Id); err != nil {
				t.Errorf("container %s is CREATED after the restart but does not start: %v", c.Id, err)
				continue
			}
			e.assertRunning(t, c.Id)
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			e.assertRunning(t, c.Id)
		default:
			if procs := e.cgroupProcs(t, c.Id); len(procs) > 0 {
				t.Errorf("container %s is %v after the restart but processes %v run in its cgroup", c.Id, c.State, procs)
			}
		}
	}
}

// cgroupProcs lists the processes in a container's cgroup (its memory
// cgroup, which every runtime makes); none when there is no cgroup.
func (e *crashEnv) cgroupProcs(t *testing.T, id string) []string {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	var info struct {
		Spec struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("verbose ContainerStatus %s: %v", id, err)
	}
	if info.Spec.Linux.CgroupsPath == "" {
		return nil // killed before its spec was written
	}
	data, _ := os.ReadFile(filepath.Join(filepath.Dir(memoryLimitFile(info.Spec.Linux.CgroupsPath)), "cgroup.procs"))
	return strings.Fields(string(data))
}

func (e *crashEnv) crashRunPod(t *testing.T, step failpoint.Step) {
	e.arm(t, step)
	_, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: e.podConfig()})
	e.mustDieAt(t, step, err)
	pods := e.pods(t)
	if len(pods) > 1 {
		t.Fatalf("one RunPodSandbox left %d pods", len(pods))
	}
	for _, p := range pods {
		if p.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			e.assertPodWhole(t, p)
		}
	}
}

func (e *crashEnv) crashCreate(t *testing.T, step failpoint.Step) {
	pod, cfg := e.runPod(t)
	e.arm(t, step)
	_, err := e.create(t, pod, cfg)
	e.mustDieAt(t, step, err)
	if n := len(e.containers(t)); n > 1 {
		t.Fatalf("one CreateContainer left %d containers", n)
	}
	e.assertContainerWholeOrDead(t)
}

func (e *crashEnv) crashStart(t *testing.T, step failpoint.Step) {
	pod, cfg := e.runPod(t)
	id, err := e.create(t, pod, cfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	e.arm(t, step)
	e.mustDieAt(t, step, e.start(t, id))
	e.assertContainerWholeOrDead(t)
}

func (e *crashEnv) crashStop(t *testing.T, step failpoint.Step) {
	pod, cfg := e.runPod(t)
	e.mustCreateAndStart(t, pod, cfg)
	e.arm(t, step)
	_, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod})
	e.mustDieAt(t, step, err)
	// The pod is NOTREADY before anything is stopped, and a second stop
	// finishes the first.
	if st := mustPodStatus(t, e.d, pod).Status.State; st != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod is %v after a crash in StopPodSandbox, want NOTREADY", st)
	}
	mustStopPod(t, e.d, pod)
	for _, c := range e.containers(t) {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING || c.State == runtimeapi.ContainerState_CONTAINER_CREATED {
			t.Errorf("container %s is %v after StopPodSandbox", c.Id, c.State)
		}
	}
}

func (e *crashEnv) crashRemove(t *testing.T, step failpoint.Step) {
	pod, cfg := e.runPod(t)
	e.mustCreateAndStart(t, pod, cfg)
	e.arm(t, step)
	_, err := e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod})
	e.mustDieAt(t, step, err)
	for _, p := range e.pods(t) {
		if p.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s is READY after a crash in RemovePodSandbox", p.Id)
		}
	}
	for _, c := range e.containers(t) {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s is RUNNING after a crash in RemovePodSandbox", c.Id)
		}
	}
}

func (e *crashEnv) crashPull(t *testing.T, step failpoint.Step) {
	// Layers of their own, so that every step of the pull is passed.
	img := images.Large(2, 512<<10, uint64(1000+e.seq))
	ref := e.reg.Push(t, fmt.Sprintf("crash/pull-%d:1", e.seq), img)
	e.arm(t, step)
	_, err := pullImage(t, e.d, ref, nil)
	e.mustDieAt(t, step, err)
	resp, err := e.d.Images.ImageStatus(ctxFor(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus: %v", err)
	}
	if im := resp.GetImage(); im != nil {
		// Whole: a container runs on it.
		if im.Id != configDigest(t, img) {
			t.Errorf("image %s after the crash has ID %s, want %s", ref, im.Id, configDigest(t, img))
		}
		pod, cfg := e.runPod(t)
		ccfg := e.ctrConfig()
		ccfg.Image.Image = ref
		resp, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ccfg, SandboxConfig: cfg})
		if err != nil {
			t.Fatalf("CreateContainer on the image recorded at the crash: %v", err)
		}
		if err := e.start(t, resp.ContainerId); err != nil {
			t.Fatalf("StartContainer on the image recorded at the crash: %v", err)
		}
		e.assertRunning(t, resp.ContainerId)
	} else if n := len(listImages(t, e.d)); n != 1 {
		t.Errorf("%d images listed after the crash, want busybox only", n)
	}
	if got := mustPullImage(t, e.d, ref); got != configDigest(t, img) {
		t.Errorf("pull after the crash gave %s", got)
	}
	removeImage(t, e.d, ref)
}

// removeEverything removes every pod and container the step left: each
// must go.
func (e *crashEnv) removeEverything(t *testing.T) {
	t.Helper()
	for _, c := range e.containers(t) {
		if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			t.Errorf("RemoveContainer %s (%v) after the crash: %v", c.Id, c.State, err)
		}
	}
	for _, p := range e.pods(t) {
		if _, err := e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("RemovePodSandbox %s (%v) after the crash: %v", p.Id, p.State, err)
		}
	}
	if n := len(e.pods(t)); n != 0 {
		t.Errorf("%d pods listed after removing them all", n)
	}
	if n := len(e.containers(t)); n != 0 {
		t.Errorf("%d containers listed after removing them all", n)
	}
}

// assertNothingLeft fails the step if the host or berthd's directories
// hold anything of the removed pods and containers.
func (e *crashEnv) assertNothingLeft(t *testing.T) {
	t.Helper()
	var extra []string
	if e.userns {
		// Whatever runs as the pods' root outside every cgroup the
		// harness checks (a berth-podinit not yet in the pod cgroup):
		// no other test uses this host uid.
		extra = processesOfUID(e.podConfig().Linux.SecurityContext.NamespaceOptions.UsernsOptions.Uids[0].HostId)
	}
	assertNothingLeft(t, e.d, extra...)
}

// assertNothingLeft fails the test if the host or d's directories hold
// anything of pods and containers, all of which were removed, or extra
// names something the caller found left.
func assertNothingLeft(t *testing.T, d *harness.Daemon, extra ...string) {
	t.Helper()
	leaks := append(d.Leaks(), extra...)
	for _, dir := range []string{
		filepath.Join(d.Root, "sandbox", "pods"), filepath.Join(d.Root, "sandbox", "containers"),
		filepath.Join(d.State, "pods"), filepath.Join(d.State, "containers"),
	} {
		entries, _ := os.ReadDir(dir)
		for _, en := range entries {
			leaks = append(leaks, "dir "+filepath.Join(dir, en.Name()))
		}
	}
	if len(leaks) > 0 {
		t.Errorf("after removing everything berthd left:\n  %s\nlog: %s", strings.Join(leaks, "\n  "), d.LogPath)
	}
}

// processesOfUID describes the live processes whose uid is uid; zombies
// (a killed berth-podinit its new parent has not reaped yet) are gone.
func processesOfUID(uid uint32) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, en := range entries {
		if _, err := strconv.Atoi(en.Name()); err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join("/proc", en.Name()))
		if err != nil {
			continue
		}
		if status, _ := os.ReadFile(filepath.Join("/proc", en.Name(), "status")); strings.Contains(string(status), "\nState:\tZ") {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == uid {
			comm, _ := os.ReadFile(filepath.Join("/proc", en.Name(), "comm"))
			out = append(out, fmt.Sprintf("process %s (%s) as uid %d", en.Name(), strings.TrimSpace(string(comm)), uid))
		}
	}
	return out
}
