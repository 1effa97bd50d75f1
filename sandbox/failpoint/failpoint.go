// Package failpoint kills berthd at a named step of a CRI call, so that
// tests can crash it where its rollback and recovery code must hold, not
// where luck puts a SIGKILL.
//
// berthd reads BERTH_FAILPOINT once at start-up (Arm) and removes it from
// its environment, so that nothing it starts inherits it. When it is unset,
// Hit is a comparison with an empty string. When it names a step, the first
// goroutine to reach that step writes one line to stderr and sends berthd
// SIGKILL: nothing after the step runs, no deferred cleanup, no flush, as
// in a real crash.
//
// Every step is listed in Steps, in the order a call reaches them; the
// crash test (test/integration/crash_test.go) kills berthd at each in turn.
package failpoint

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Env is the environment variable naming the step to die at.
const Env = "BERTH_FAILPOINT"

// Step names a point in a CRI call: "<call>/<what was just done>".
type Step string

// The steps of RunPodSandbox, in order.
const (
	RunPodDirs       Step = "run-pod-sandbox/dirs"        // pod dirs made, no intent file yet
	RunPodIntent     Step = "run-pod-sandbox/intent"      // intent file written, no cgroup
	RunPodCgroup     Step = "run-pod-sandbox/cgroup"      // pod cgroup made
	RunPodNamespaces Step = "run-pod-sandbox/namespaces"  // namespaces pinned (and berth-podinit started in PID mode POD)
	RunPodInit       Step = "run-pod-sandbox/pod-init"    // berth-podinit in the pod cgroup, its PID namespace pinned
	RunPodShm        Step = "run-pod-sandbox/shm"         // the pod's /dev/shm mounted
	RunPodNetwork    Step = "run-pod-sandbox/network"     // CNI ADD done: veth, address lease
	RunPodFiles      Step = "run-pod-sandbox/files"       // hostname, hosts, resolv.conf written
	RunPodRecord     Step = "run-pod-sandbox/record"      // pod record stored, intent file still there
	RunPodReady      Step = "run-pod-sandbox/intent-gone" // intent file removed, the pod not yet answered
)

// The steps of CreateContainer.
const (
	CreateRecord   Step = "create-container/record"   // container record stored
	CreateDirs     Step = "create-container/dirs"     // bundle and rootfs dirs made
	CreateSnapshot Step = "create-container/snapshot" // writable layer prepared
	CreateMount    Step = "create-container/mount"    // rootfs overlay mounted
	CreateSpec     Step = "create-container/spec"     // config.json written
	CreateMonitor  Step = "create-container/monitor"  // monitor and container process running, no status.json
	CreateStatus   Step = "create-container/status"   // status.json written, the container not yet answered
)

// The steps of StartContainer.
const (
	StartBegin   Step = "start-container/begin"   // about to let the process run
	StartStarted Step = "start-container/started" // the process runs, status.json not updated
	StartStatus  Step = "start-container/status"  // status.json records the start
)

// The steps of StopPodSandbox (RemovePodSandbox stops the pod first and
// passes them too).
const (
	StopNotReady   Step = "stop-pod-sandbox/not-ready"  // record says NOTREADY, containers still run
	StopContainers Step = "stop-pod-sandbox/containers" // containers stopped
	StopInit       Step = "stop-pod-sandbox/pod-init"   // berth-podinit killed
	StopNetwork    Step = "stop-pod-sandbox/network"    // CNI DEL done
	StopShm        Step = "stop-pod-sandbox/shm"        // /dev/shm unmounted
)

// The steps of RemovePodSandbox, past the stop; the remove-container steps
// are passed for each container of the pod (and by RemoveContainer).
const (
	RemoveStopped         Step = "remove-pod-sandbox/stopped"        // the pod is stopped
	RemoveContainerDelete Step = "remove-container/runtime-deleted"  // the runtime deleted the container
	RemoveContainerUmount Step = "remove-container/rootfs-unmounted" // rootfs unmounted
	RemoveContainerSnap   Step = "remove-container/snapshot-removed" // writable layer removed
	RemoveContainerDirs   Step = "remove-container/dirs-removed"     // bundle and state dir removed, record still there
	RemoveContainers      Step = "remove-pod-sandbox/containers"     // every container removed
	RemoveNetwork         Step = "remove-pod-sandbox/network"        // CNI DEL repeated
	RemoveUnpinned        Step = "remove-pod-sandbox/unpinned"       // namespace pins and /dev/shm unmounted
	RemoveCgroup          Step = "remove-pod-sandbox/cgroup"         // pod cgroup removed
	RemoveDirs            Step = "remove-pod-sandbox/dirs"           // pod dirs removed, record still there
)

// The steps of PullImage.
const (
	PullManifest      Step = "pull-image/manifest"       // manifest stored
	PullConfig        Step = "pull-image/config"         // config stored
	PullLayerIngest   Step = "pull-image/layer-ingest"   // a layer downloading: its ingest file open, its layer dir made
	PullLayerUnpacked Step = "pull-image/layer-unpacked" // a blob downloaded, verified (a layer's unpacked), not yet stored
	PullLayerBlob     Step = "pull-image/layer-blob"     // a layer's blob stored, the layer not recorded
	PullLayerRecord   Step = "pull-image/layer-record"   // a layer recorded
	PullImageRecord   Step = "pull-image/image-record"   // the image recorded, not yet answered
)

// Steps lists every step, in the order of the calls above.
func Steps() []Step {
	return []Step{
		RunPodDirs, RunPodIntent, RunPodCgroup, RunPodNamespaces, RunPodInit, RunPodShm, RunPodNetwork,
		RunPodFiles, RunPodRecord, RunPodReady,
		CreateRecord, CreateDirs, CreateSnapshot, CreateMount, CreateSpec, CreateMonitor, CreateStatus,
		StartBegin, StartStarted, StartStatus,
		StopNotReady, StopContainers, StopInit, StopNetwork, StopShm,
		RemoveStopped, RemoveContainerDelete, RemoveContainerUmount, RemoveContainerSnap, RemoveContainerDirs,
		RemoveContainers, RemoveNetwork, RemoveUnpinned, RemoveCgroup, RemoveDirs,
		PullManifest, PullConfig, PullLayerIngest, PullLayerUnpacked, PullLayerBlob, PullLayerRecord, PullImageRecord,
	}
}

// armed is the step to die at, "" for none. Arm sets it before berthd
// starts any goroutine that calls Hit, and nothing changes it after.
var armed Step

// Arm reads BERTH_FAILPOINT, removes it from the environment and arms the
// step it names. An unknown step is an error: a test that misspells one
// would otherwise pass without ever crashing.
func Arm() error {
	v, ok := os.LookupEnv(Env)
	if !ok {
		return nil
	}
	os.Unsetenv(Env)
	if v == "" {
		return nil
	}
	for _, s := range Steps() {
		if string(s) == v {
			armed = s
			return nil
		}
	}
	names := make([]string, 0, len(Steps()))
	for _, s := range Steps() {
		names = append(names, string(s))
	}
	return fmt.Errorf("%s=%q names no step; the steps are: %s", Env, v, strings.Join(names, ", "))
}

// Armed is the armed step, "" for none.
func Armed() Step { return armed }

// Hit kills berthd with SIGKILL if s is the armed step.
func Hit(s Step) {
	if armed == "" || s != armed {
		return
	}
	fmt.Fprintf(os.Stderr, "berthd: failpoint %s reached: SIGKILL\n", s)
	_ = unix.Kill(os.Getpid(), unix.SIGKILL)
	select {} // the signal is on its way; nothing after the step may run
}
