package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

func limits(cpu, memory string) corev1.ResourceRequirements {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		l[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return corev1.ResourceRequirements{Limits: l, Requests: l}
}

// cgroupOf waits for the pod's log line "cgroup=<memory cgroup path>"
// (printed from /proc/self/cgroup) and returns the host directory of that
// cgroup in the named hierarchy.
func cgroupOf(t *testing.T, ctx context.Context, ns, pod, controller string) string {
	t.Helper()
	out := waitLogs(t, ctx, ns, pod, "\n", shortTimeout)
	m := regexp.MustCompile(`cgroup=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no cgroup= line in the log of %s: %q", pod, out)
	}
	return filepath.Join("/sys/fs/cgroup", controller, m[1])
}

const printCgroup = `echo "cgroup=$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)"; `

func readCgroup(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestAPodsLimitsAreInItsCgroup(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("limits", printCgroup+"exec sleep 3600")
	pod.Spec.Containers[0].Resources = limits("500m", "64Mi")
	createPod(t, ctx, ns, pod)
	waitPod(t, ctx, ns, "limits", "running", podTimeout, running)
	dir := cgroupOf(t, ctx, ns, "limits", "memory")
	if got := readCgroup(t, dir, "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("%s memory.limit_in_bytes = %s, want 67108864 (64Mi)", dir, got)
	}
	cpu := strings.Replace(dir, "/memory/", "/cpu/", 1)
	if got := readCgroup(t, cpu, "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("%s cpu.cfs_quota_us = %s, want 50000 (500m of a 100 ms period)", cpu, got)
	}
}

func TestAMemoryHogIsOOMKilled(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	// dd's 200 MiB buffer does not fit in 32 MiB.
	pod := busyboxPod("hog", "exec dd if=/dev/zero of=/dev/null bs=200M count=1")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.Containers[0].Resources = limits("", "32Mi")
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "hog", "Failed", podTimeout, phase(corev1.PodFailed))
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("the hog ended %s, want OOMKilled with exit code 137", podStatus(p))
	}
}

func TestPodsLandInKubeletsQoSCgroups(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	cases := []struct {
		name, qos string
		res       corev1.ResourceRequirements
	}{
		{"guaranteed", "", limits("100m", "32Mi")},
		{"burstable", "burstable/", corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}}},
		{"besteffort", "besteffort/", corev1.ResourceRequirements{}},
	}
	for _, c := range cases {
		pod := busyboxPod(c.name, printCgroup+"exec sleep 3600")
		pod.Spec.Containers[0].Resources = c.res
		createPod(t, ctx, ns, pod)
	}
	for _, c := range cases {
		p := waitPod(t, ctx, ns, c.name, "running", podTimeout, running)
		dir := cgroupOf(t, ctx, ns, c.name, "memory")
		want := "/sys/fs/cgroup/memory/berth-e2e/kubepods/" + c.qos + "pod" + string(p.UID) + "/"
		if !strings.HasPrefix(dir, want) {
			t.Errorf("%s pod's cgroup is %s, want it under %s", c.name, dir, want)
		}
	}
}

func TestInPlaceResizeChangesTheCgroupWithoutARestart(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("resize", printCgroup+"exec sleep 3600")
	pod.Spec.Containers[0].Resources = limits("200m", "64Mi")
	createPod(t, ctx, ns, pod)
	waitPod(t, ctx, ns, "resize", "running", podTimeout, running)
	cpu := strings.Replace(cgroupOf(t, ctx, ns, "resize", "memory"), "/memory/", "/cpu/", 1)
	mem := strings.Replace(cpu, "/cpu/", "/memory/", 1)
	patch := `{"spec":{"containers":[{"name":"main","resources":{"limits":{"cpu":"400m","memory":"96Mi"},"requests":{"cpu":"400m","memory":"96Mi"}}}]}}`
	if _, err := kube.CoreV1().Pods(ns).Patch(ctx, "resize", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize"); err != nil {
		t.Fatalf("resize: %v", err)
	}
	var quota, limit string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		quota = readCgroup(t, cpu, "cpu.cfs_quota_us")
		limit = readCgroup(t, mem, "memory.limit_in_bytes")
		return quota == "40000" && limit == "100663296", nil
	})
	if err != nil {
		p, _ := kube.CoreV1().Pods(ns).Get(ctx, "resize", metav1.GetOptions{})
		t.Fatalf("after the resize cpu.cfs_quota_us = %s (want 40000) and memory.limit_in_bytes = %s (want 100663296): %v; %s, resize conditions %+v",
			quota, limit, err, podStatus(p), p.Status.Conditions)
	}
	p := waitPod(t, ctx, ns, "resize", "the resize reported done", time.Minute, func(p *corev1.Pod) bool {
		r := p.Status.ContainerStatuses[0].Resources
		return r != nil && r.Limits.Cpu().MilliValue() == 400
	})
	if restarts(p) != 0 {
		t.Errorf("the resize restarted the container %d times", restarts(p))
	}
}
