package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// waitGone waits until the pod object is deleted and returns how long it
// took.
func waitGone(t *testing.T, ctx context.Context, ns, name string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not gone within %s: %v", ns, name, timeout, err)
	}
	return time.Since(start)
}

func TestGracefulDeletionHonoursTheGracePeriod(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	handles := busyboxPod("handles-term", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
	handles.Spec.TerminationGracePeriodSeconds = ptr(int64(60))
	ignores := busyboxPod("ignores-term", "trap '' TERM; while true; do sleep 0.1; done")
	ignores.Spec.TerminationGracePeriodSeconds = ptr(int64(4))
	createPod(t, ctx, ns, handles)
	createPod(t, ctx, ns, ignores)
	waitPod(t, ctx, ns, "handles-term", "running", podTimeout, running)
	waitPod(t, ctx, ns, "ignores-term", "running", podTimeout, running)
	// Let the shells install their traps.
	time.Sleep(time.Second)
	for _, n := range []string{"handles-term", "ignores-term"} {
		if err := kube.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The one that exits on SIGTERM goes long before its 60 s; the one that
	// ignores it is killed at its 4 s deadline, not before.
	if d := waitGone(t, ctx, ns, "handles-term", 50*time.Second); d > 45*time.Second {
		t.Errorf("a pod that exits on SIGTERM took %s to go, its grace period is 60 s", d)
	}
	if d := waitGone(t, ctx, ns, "ignores-term", time.Minute); d < 3*time.Second {
		t.Errorf("a pod that ignores SIGTERM went after %s, before its 4 s grace period", d)
	}
}

func TestDeletingANamespaceRemovesAllItsPods(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	for i := range 3 {
		createPod(t, ctx, ns, busyboxPod(fmt.Sprintf("p%d", i), "exec sleep 3600"))
	}
	for i := range 3 {
		waitPod(t, ctx, ns, fmt.Sprintf("p%d", i), "running", podTimeout, running)
	}
	if err := kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err) && len(readySandboxes(t, ctx, ns)) == 0, nil
	})
	if err != nil {
		t.Errorf("namespace %s or its running sandboxes still there: %v; %d ready sandboxes", ns, err, len(readySandboxes(t, ctx, ns)))
	}
}

// TestRestartingBerthdLeavesRunningPodsAlone restarts berthd under 20
// running pods, gracefully and by SIGKILL: kubelet must see no container
// restart, logs keep working, and a pod created while berthd was down
// starts once it is back.
func TestRestartingBerthdLeavesRunningPodsAlone(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	d := deployment("many", 20, busybox)
	d.Spec.Template.Spec.Containers[0].Command = []string{"sh", "-c", "echo started; mkdir /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www"}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, ctx, ns, "many", 20)
	before := containerIDs(t, ctx, ns)
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			if err := cl.StopBerthd(sig); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("during-outage-%d", i)
			createPod(t, ctx, ns, busyboxPod(name, "echo came-up; exec sleep 3600"))
			time.Sleep(3 * time.Second)
			if err := cl.StartBerthd(ctx); err != nil {
				t.Fatal(err)
			}
			waitPod(t, ctx, ns, name, "running after berthd came back", podTimeout, running)
			waitLogs(t, ctx, ns, name, "came-up", shortTimeout)
			waitDeployment(t, ctx, ns, "many", 20)
			after := containerIDs(t, ctx, ns)
			for pod, id := range before {
				if after[pod] != id {
					t.Errorf("pod %s: container %s became %s", pod, id, after[pod])
				}
			}
			pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=many"})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pods.Items {
				if restarts(&p) != 0 {
					t.Errorf("pod %s restarted %d times", p.Name, restarts(&p))
				}
			}
			if len(pods.Items) > 0 {
				if out := logsOf(t, ctx, ns, pods.Items[0].Name, "web", false); out != "started\n" {
					t.Errorf("logs of %s after the restart = %q", pods.Items[0].Name, out)
				}
				if out, err := kubectl(t, ctx, "-n", ns, "exec", pods.Items[0].Name, "--", "cat", "/www/index.html"); err != nil || out != "ok\n" {
					t.Errorf("kubectl exec into %s after the restart: %v, %q; want ok", pods.Items[0].Name, err, out)
				}
			}
		})
	}
}

// containerIDs maps each app=many pod to its container's ID.
func containerIDs(t *testing.T, ctx context.Context, ns string) map[string]string {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=many"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if len(p.Status.ContainerStatuses) == 1 {
			out[p.Name] = p.Status.ContainerStatuses[0].ContainerID
		}
	}
	return out
}
