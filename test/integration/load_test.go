package integration

// Load: a hundred pods, each with a running container, started all at
// once and then stopped and removed all at once. Every call must succeed
// and nothing may be left (the harness's leak check). How long it takes is
// the benchmark's business (hack/bench, pod_start.burst and
// pod_teardown.burst), not this test's.

import (
	"fmt"
	"sync"
	"testing"

	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const loadPods = 100

func TestHundredPodsAtOnceAllStartAndGoWithoutALeak(t *testing.T) {
	d := startPodDaemon(t)
	reg := registry.Start(t)
	ref := reg.Push(t, "library/busybox:latest", images.Busybox())
	mustPullImage(t, d, ref)

	var wg sync.WaitGroup
	ids := make([]string, loadPods)
	errs := make([]error, loadPods)
	for i := range loadPods {
		wg.Go(func() {
			cfg := podConfig(d, fmt.Sprintf("load-%d", i))
			resp, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				errs[i] = fmt.Errorf("RunPodSandbox %d: %w", i, err)
				return
			}
			ids[i] = resp.PodSandboxId
			c, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{
				PodSandboxId: resp.PodSandboxId, SandboxConfig: cfg,
				Config: &runtimeapi.ContainerConfig{
					Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
					Image:    &runtimeapi.ImageSpec{Image: ref},
					Command:  []string{"/bin/sleep", "3600"},
				},
			})
			if err != nil {
				errs[i] = fmt.Errorf("CreateContainer %d: %w", i, err)
				return
			}
			if _, err := d.Runtime.StartContainer(ctxFor(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				errs[i] = fmt.Errorf("StartContainer %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	// Whatever happened, every pod that started goes at the end, all at once.
	defer func() {
		for i, id := range ids {
			if id == "" {
				continue
			}
			wg.Go(func() {
				if _, err := d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
					t.Errorf("StopPodSandbox %d: %v", i, err)
					return
				}
				if _, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
					t.Errorf("RemovePodSandbox %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		pods, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
		if err != nil || len(pods.Items) != 0 {
			t.Errorf("after removing every pod, ListPodSandbox = %d pods, %v", len(pods.GetItems()), err)
		}
		ctrs, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{})
		if err != nil || len(ctrs.Containers) != 0 {
			t.Errorf("after removing every pod, ListContainers = %d containers, %v", len(ctrs.GetContainers()), err)
		}
	}()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}

	pods, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatalf("ListPodSandbox: %v", err)
	}
	ips := map[string]bool{}
	for _, p := range pods.Items {
		if p.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s is %v", p.Id, p.State)
		}
		ip := mustPodStatus(t, d, p.Id).Status.GetNetwork().GetIp()
		if ip == "" || ips[ip] {
			t.Errorf("pod %s has address %q, empty or another pod's", p.Id, ip)
		}
		ips[ip] = true
	}
	if len(pods.Items) != loadPods {
		t.Errorf("ListPodSandbox lists %d pods, want %d", len(pods.Items), loadPods)
	}
	ctrs, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil || len(ctrs.Containers) != loadPods {
		t.Errorf("ListContainers lists %d running containers, %v; want %d", len(ctrs.GetContainers()), err, loadPods)
	}
}
