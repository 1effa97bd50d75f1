package integration

// GetContainerEvents, as kubelet's evented PLEG uses it: a pod's life
// cycle arrives in order with the statuses kubelet reads, and a
// subscriber that never reads is dropped without holding up any RPC.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventStream collects one subscriber's events on a channel.
type eventStream struct {
	events chan *runtimeapi.ContainerEventResponse
	err    chan error // the stream's end
	cancel context.CancelFunc
}

// subscribe opens GetContainerEvents and reads it until the test ends.
func subscribe(t *testing.T, rt runtimeapi.RuntimeServiceClient) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatalf("GetContainerEvents: %v", err)
	}
	s := &eventStream{events: make(chan *runtimeapi.ContainerEventResponse, 10000), err: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			e, err := st.Recv()
			if err != nil {
				s.err <- err
				return
			}
			s.events <- e
		}
	}()
	return s
}

// next returns the next event about one of ids, skipping others.
func (s *eventStream) next(t *testing.T, ids ...string) *runtimeapi.ContainerEventResponse {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case e := <-s.events:
			for _, id := range ids {
				if e.ContainerId == id {
					return e
				}
			}
		case err := <-s.err:
			t.Fatalf("event stream ended: %v", err)
		case <-timeout:
			t.Fatalf("no event about %v within a minute", ids)
		}
	}
}

func eventName(e *runtimeapi.ContainerEventResponse) string {
	return strings.TrimSuffix(strings.TrimPrefix(e.ContainerEventType.String(), "CONTAINER_"), "_EVENT")
}

// statusOf is the status of container id in an event, nil if absent.
func statusOf(e *runtimeapi.ContainerEventResponse, id string) *runtimeapi.ContainerStatus {
	for _, c := range e.ContainersStatuses {
		if c.Id == id {
			return c
		}
	}
	return nil
}

func TestContainerEventsFollowAPodsLifeCycleInOrder(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		ev := subscribe(t, e.d.Runtime)
		second := subscribe(t, e.d.Runtime) // several subscribers at once
		cfg := podConfig(e.d, "events-"+handlerOf(t))
		cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		pod := mustRunPodWith(t, e.d, cfg, handlerOf(t))
		pe := &ctrEnv{d: e.d, image: e.image, pod: pod, podCfg: cfg, logDir: e.logDir}

		// One container exits on its own (the monitor sees it), one is stopped.
		dies := pe.mustRun(t, pe.config("dies", "sleep 1; exit 3"))
		pe.waitExited(t, dies)
		// One exits at once, likely before StartContainer returns: its
		// STOPPED still comes after its STARTED.
		quick := pe.mustRun(t, pe.config("quick", "true"))
		pe.waitExited(t, quick)
		if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: quick}); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
		stopped := pe.mustRun(t, pe.config("stopped", "exec sleep 1000"))
		if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: stopped, Timeout: 0}); err != nil {
			t.Fatalf("StopContainer: %v", err)
		}
		if _, err := e.d.Runtime.RemoveContainer(ctxFor(t), &runtimeapi.RemoveContainerRequest{ContainerId: dies}); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
		mustStopPod(t, e.d, pod)
		mustRemovePod(t, e.d, pod) // removes "stopped" too

		want := []string{
			"CREATED " + pod, "STARTED " + pod,
			"CREATED dies", "STARTED dies", "STOPPED dies",
			"CREATED quick", "STARTED quick", "STOPPED quick", "DELETED quick",
			"CREATED stopped", "STARTED stopped", "STOPPED stopped",
			"DELETED dies",
			"STOPPED " + pod,
			"DELETED stopped",
			"DELETED " + pod,
		}
		name := map[string]string{pod: pod, dies: "dies", quick: "quick", stopped: "stopped"}
		for _, s := range []*eventStream{ev, second} {
			var got []*runtimeapi.ContainerEventResponse
			for range want {
				got = append(got, s.next(t, pod, dies, quick, stopped))
			}
			var seq []string
			for _, x := range got {
				seq = append(seq, eventName(x)+" "+name[x.ContainerId])
			}
			if strings.Join(seq, "\n") != strings.Join(want, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(seq, "\n"), strings.Join(want, "\n"))
			}
			for i, x := range got {
				// What the evented PLEG reads of every event.
				if x.PodSandboxStatus.GetId() != pod || x.PodSandboxStatus.GetMetadata().GetUid() != cfg.Metadata.Uid {
					t.Errorf("event %q: pod sandbox status %v, want pod %s with uid %s", seq[i], x.PodSandboxStatus, pod, cfg.Metadata.Uid)
				}
				if x.CreatedAt == 0 || (i > 0 && x.CreatedAt < got[i-1].CreatedAt) {
					t.Errorf("event %q: created_at %d after %d", seq[i], x.CreatedAt, got[max(i-1, 0)].CreatedAt)
				}
			}
			check := func(i int, id string, state runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
				t.Helper()
				st := statusOf(got[i], id)
				if st.GetState() != state {
					t.Errorf("event %q: status of %s is %v, want %v", seq[i], name[id], st.GetState(), state)
				}
				return st
			}
			check(2, dies, runtimeapi.ContainerState_CONTAINER_CREATED)
			check(3, dies, runtimeapi.ContainerState_CONTAINER_RUNNING)
			if st := check(4, dies, runtimeapi.ContainerState_CONTAINER_EXITED); st.GetExitCode() != 3 {
				t.Errorf("STOPPED dies: exit code %d, want 3", st.GetExitCode())
			}
			if st := check(11, stopped, runtimeapi.ContainerState_CONTAINER_EXITED); st.GetExitCode() != 137 {
				t.Errorf("STOPPED stopped: exit code %d, want 137", st.GetExitCode())
			}
			if statusOf(got[12], dies) != nil {
				t.Errorf("DELETED dies still lists dies")
			}
			if got[1].PodSandboxStatus.State != runtimeapi.PodSandboxState_SANDBOX_READY ||
				got[13].PodSandboxStatus.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
				t.Errorf("pod states %v at STARTED and %v at STOPPED, want ready then not ready",
					got[1].PodSandboxStatus.State, got[13].PodSandboxStatus.State)
			}
			if len(got[15].ContainersStatuses) != 0 {
				t.Errorf("DELETED pod lists containers %v", got[15].ContainersStatuses)
			}
		}
	})
}

// ballast is an annotation that makes every event of its pod 64 KiB, so
// that gRPC's flow control holds a non-reading subscriber's sends after a
// handful of events, and its queue in berthd fills.
var ballast = strings.Repeat("x", 64<<10)

func TestContainerEventsSubscriberThatNeverReadsIsDroppedAndBlocksNothing(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// The idle subscriber and the RPCs share one connection, as
		// kubelet's do; its fixed 64 KiB windows (no BDP growth) make the
		// point where sends block the same on every run.
		conn, err := grpc.NewClient("unix://"+e.d.Socket,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rt := runtimeapi.NewRuntimeServiceClient(conn)
		idleCtx, cancelIdle := context.WithCancel(context.Background())
		defer cancelIdle()
		idle, err := rt.GetContainerEvents(idleCtx, &runtimeapi.GetEventsRequest{})
		if err != nil {
			t.Fatalf("GetContainerEvents: %v", err)
		}
		reader := subscribe(t, e.d.Runtime)

		heavy := e.config("ballast", "exec sleep 1000")
		heavy.Annotations = map[string]string{"ballast": ballast}
		ballastID := e.mustCreate(t, heavy)
		_ = reader.next(t, ballastID)

		// create makes a container on the idle subscriber's connection,
		// with the call's normal deadline.
		create := func(name string) string {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			resp, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
				PodSandboxId: e.pod, Config: e.config(name, "true"), SandboxConfig: e.podCfg})
			if err != nil {
				t.Fatalf("CreateContainer %s with a subscriber that never reads: %v", name, err)
			}
			return resp.ContainerId
		}

		// First fill the idle subscriber past its bound: 210 lifecycle
		// events (created, stopped by the removal, deleted), far more
		// than its queue (128) and what gRPC's windows hold of 64 KiB
		// events (a few).
		const rounds = 70
		var fill []string
		for i := range rounds {
			id := create(fmt.Sprintf("c%d", i))
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, err = rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
			cancel()
			if err != nil {
				t.Fatalf("RemoveContainer %d: %v", i, err)
			}
			fill = append(fill, id)
		}
		// Then create containers, with that subscriber still not reading.
		var after []string
		for i := range 10 {
			after = append(after, create(fmt.Sprintf("after%d", i)))
		}
		for _, id := range after {
			if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
				t.Errorf("container %s created past the full queue: %v, want CREATED", id, st.State)
			}
		}

		// The subscriber that reads got every event, in order.
		var order []string // the reader's events, as "type id"
		all := append(append([]string{}, fill...), after...)
		for i, id := range fill {
			for _, want := range []runtimeapi.ContainerEventType{
				runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
				runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
			} {
				x := reader.next(t, all...)
				if x.ContainerId != id || x.ContainerEventType != want {
					t.Fatalf("reader: event %d is %v of %s, want %v of %s", i, x.ContainerEventType, x.ContainerId, want, id)
				}
				order = append(order, fmt.Sprint(x.ContainerEventType, " ", x.ContainerId))
			}
		}
		for _, id := range after {
			if x := reader.next(t, all...); x.ContainerId != id || x.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT {
				t.Fatalf("reader: %v of %s, want CREATED of %s", x.ContainerEventType, x.ContainerId, id)
			}
		}

		// The idle one was dropped while the queue was being filled:
		// reading now gives what was in flight, the first of the same
		// events in the same order, none of the containers created after
		// the fill, then ResourceExhausted.
		n := 0
		for {
			x, err := idle.Recv()
			if err != nil {
				if status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("idle subscriber ended with %v after %d events, want ResourceExhausted", err, n)
				}
				break
			}
			if x.ContainerId == ballastID {
				continue
			}
			if got := fmt.Sprint(x.ContainerEventType, " ", x.ContainerId); n >= len(order) || got != order[n] {
				t.Fatalf("idle subscriber's event %d is %s; the fill's events are %d, that one %q", n, got, len(order), order[min(n, len(order)-1)])
			}
			n++
		}
		if n >= 3*rounds {
			t.Fatalf("idle subscriber got all %d events: it was never dropped", n)
		}
		t.Logf("idle subscriber got %d events before it was dropped", n)

		// berthd still serves new subscribers.
		again := subscribe(t, rt)
		id := e.mustCreate(t, e.config("after", "true"))
		if x := again.next(t, id); x.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT {
			t.Fatalf("new subscriber: %v, want CREATED", x.ContainerEventType)
		}
	})
}

func TestContainerEventsEndAtShutdownAndFollowAdoptedContainersAfterRestart(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("survivor", "exec sleep 1000"))
		ev := subscribe(t, e.d.Runtime)
		e.d.Stop(t) // the container keeps running
		select {
		case err := <-ev.err:
			if status.Code(err) != codes.Unavailable {
				t.Errorf("event stream ended with %v at shutdown, want Unavailable", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("event stream still open a minute after berthd stopped")
		}
		if strings.Contains(e.d.Logs(), "outlived the shutdown grace") {
			t.Errorf("an open event stream held up berthd's shutdown; log:\n%s", e.d.Logs())
		}
		e.d.Restart(t)

		// The restarted berthd adopted the container's monitor: the
		// container dying on its own is still sent.
		after := subscribe(t, e.d.Runtime)
		resp, err := e.d.Runtime.ContainerStatus(ctxFor(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err != nil {
			t.Fatalf("ContainerStatus: %v", err)
		}
		var info struct {
			Pid int `json:"pid"`
		}
		if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid <= 0 {
			t.Fatalf("container pid from %q: %v", resp.Info["info"], err)
		}
		if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill the container's process %d: %v", info.Pid, err)
		}
		x := after.next(t, id)
		if x.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
			t.Fatalf("after the kill: %v, want STOPPED", x.ContainerEventType)
		}
		if st := statusOf(x, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 137 {
			t.Errorf("STOPPED carries %v exit %d, want EXITED 137", st.GetState(), st.GetExitCode())
		}
	})
}

// PodSandboxStatus carries the statuses of all the pod's containers, which
// kubelet's evented PLEG reads instead of listing them (without them it
// takes a running container for a missing one and creates another, again
// and again), and a timestamp no later than the statuses.
func TestPodSandboxStatusCarriesEveryContainersStatus(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		created := e.mustCreate(t, e.config("created", "sleep 3600"))
		running := e.mustRun(t, e.config("running", "sleep 3600"))
		exited := e.mustRun(t, e.config("exited", "exit 3"))
		e.waitExited(t, exited)
		before := time.Now().UnixNano()
		resp, err := e.d.Runtime.PodSandboxStatus(ctxFor(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.pod})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Timestamp < before || resp.Timestamp > time.Now().UnixNano() {
			t.Errorf("timestamp %d is not the time of the call (%d and after)", resp.Timestamp, before)
		}
		want := map[string]runtimeapi.ContainerState{
			created: runtimeapi.ContainerState_CONTAINER_CREATED,
			running: runtimeapi.ContainerState_CONTAINER_RUNNING,
			exited:  runtimeapi.ContainerState_CONTAINER_EXITED,
		}
		got := map[string]*runtimeapi.ContainerStatus{}
		for _, s := range resp.ContainersStatuses {
			got[s.Id] = s
		}
		if len(got) != len(want) {
			t.Errorf("PodSandboxStatus carries %d container statuses, want %d: %v", len(got), len(want), resp.ContainersStatuses)
		}
		for id, state := range want {
			s := got[id]
			if s == nil {
				t.Errorf("no status for container %s", id)
				continue
			}
			if s.State != state || s.Metadata.GetName() != e.mustStatus(t, id).Metadata.GetName() ||
				s.Labels == nil && e.mustStatus(t, id).Labels != nil {
				t.Errorf("container %s: status %v, want state %v and what ContainerStatus says", id, s, state)
			}
		}
		if s := got[exited]; s != nil && s.ExitCode != 3 {
			t.Errorf("the exited container's status has exit code %d, want 3", s.ExitCode)
		}
	})
}
