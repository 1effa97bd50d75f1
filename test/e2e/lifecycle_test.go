package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

func emptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

func mount(name, path string) []corev1.VolumeMount {
	return []corev1.VolumeMount{{Name: name, MountPath: path}}
}

// logsOf returns a container's log through the API server (kubelet reads
// the CRI log file berthd writes).
func logsOf(t *testing.T, ctx context.Context, ns, pod, container string, previous bool) string {
	t.Helper()
	b, err := kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Previous: previous}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of %s/%s %s (previous %v): %v", ns, pod, container, previous, err)
	}
	return string(b)
}

func TestInitContainersRunInOrderBeforeTheApp(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("init", "cat /work/order")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.Volumes = []corev1.Volume{emptyDir("work")}
	pod.Spec.Containers[0].VolumeMounts = mount("work", "/work")
	for _, n := range []string{"first", "second"} {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
			Name: n, Image: busybox, Command: []string{"sh", "-c", "echo " + n + " >> /work/order"},
			VolumeMounts: mount("work", "/work"),
		})
	}
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "init", "Succeeded", podTimeout, phase(corev1.PodSucceeded))
	if got := logsOf(t, ctx, ns, "init", "main", false); got != "first\nsecond\n" {
		t.Errorf("the app read %q from the init containers' emptyDir, want %q", got, "first\nsecond\n")
	}
	for _, s := range p.Status.InitContainerStatuses {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			t.Errorf("init container %s: %s", s.Name, podStatus(p))
		}
	}
}

func TestAPodThatExitsThreeWithRestartNeverFailsWithExitCodeThree(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("exit3", "echo bye; exit 3")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "exit3", "Failed", podTimeout, phase(corev1.PodFailed))
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("container state = %s, want terminated Error exit 3", podStatus(p))
	}
	if got := logsOf(t, ctx, ns, "exit3", "main", false); got != "bye\n" {
		t.Errorf("logs = %q, want %q", got, "bye\n")
	}
}

func TestAJobCompletes(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "job"},
		Spec: batchv1.JobSpec{
			Completions:  ptr(int32(2)),
			Parallelism:  ptr(int32(2)),
			BackoffLimit: ptr(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "work", Image: busybox, Command: []string{"sh", "-c", "echo working; sleep 1"}}},
			}},
		},
	}
	if _, err := kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last *batchv1.Job
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		j, err := kube.BatchV1().Jobs(ns).Get(ctx, "job", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = j
		for _, c := range j.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("job did not finish: %v; status %+v%s", err, last.Status, podsSummary(t, ctx, ns))
	}
	if last.Status.Succeeded != 2 || last.Status.Failed != 0 {
		t.Errorf("job succeeded %d, failed %d; want 2 and 0; conditions %+v", last.Status.Succeeded, last.Status.Failed, last.Status.Conditions)
	}
}

func TestASidecarRunsBesideTheAppAndStopsAfterIt(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("sidecar", "sleep 3; cat /shared/ticks")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.Volumes = []corev1.Volume{emptyDir("shared")}
	pod.Spec.Containers[0].VolumeMounts = mount("shared", "/shared")
	pod.Spec.InitContainers = []corev1.Container{{
		Name: "ticker", Image: busybox, RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
		Command:      []string{"sh", "-c", "trap 'exit 0' TERM; while true; do echo tick >> /shared/ticks; sleep 0.5; done"},
		VolumeMounts: mount("shared", "/shared"),
	}}
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "sidecar", "Succeeded", podTimeout, phase(corev1.PodSucceeded))
	if got := logsOf(t, ctx, ns, "sidecar", "main", false); !strings.Contains(got, "tick\ntick\n") {
		t.Errorf("the app saw %q from the sidecar, want ticks", got)
	}
	// Succeeded means every container ended; kubelet stopped the sidecar
	// after the app exited.
	for _, s := range p.Status.InitContainerStatuses {
		if s.State.Terminated == nil {
			t.Errorf("sidecar %s still %s after the app ended", s.Name, podStatus(p))
		}
	}
}

func TestKubectlLogsFollowsAndShowsThePreviousRun(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	// Each run counts itself in an emptyDir; the first run fails, the
	// second keeps running.
	pod := busyboxPod("logs", `n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n
if [ $n -ge 2 ]; then i=0; while true; do i=$((i+1)); echo "run $n line $i"; sleep 0.2; done; fi
for i in 1 2 3; do echo "run $n line $i"; done
exit 1`)
	pod.Spec.Volumes = []corev1.Volume{emptyDir("state")}
	pod.Spec.Containers[0].VolumeMounts = mount("state", "/state")
	createPod(t, ctx, ns, pod)
	waitPod(t, ctx, ns, "logs", "restarted once and running", podTimeout, func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	prev := mustKubectl(t, ctx, "-n", ns, "logs", "logs", "--previous")
	if want := "run 1 line 1\nrun 1 line 2\nrun 1 line 3\n"; prev != want {
		t.Errorf("kubectl logs --previous = %q, want %q", prev, want)
	}
	// -f follows the live log: it goes on printing lines written after it
	// started, and does not return while the container runs.
	before := strings.Count(mustKubectl(t, ctx, "-n", ns, "logs", "logs"), "\n")
	fctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	out, err := kubectl(t, fctx, "-n", ns, "logs", "-f", "logs")
	if fctx.Err() == nil {
		t.Errorf("kubectl logs -f returned (%v) while the container runs: %q", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(out, "run 2 line 1\n") || len(lines) < before+5 {
		t.Errorf("kubectl logs -f printed %d lines (%d existed when it started), want the run 2 lines and at least 5 more:\n%s", len(lines), before, out)
	}
}
