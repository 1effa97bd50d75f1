package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

func deployment(name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr(int64(1)),
					Containers: []corev1.Container{{
						Name:    "web",
						Image:   image,
						Command: []string{"sh", "-c", "echo hello > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intOrStr(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

// waitDeployment waits until the deployment's rollout of its current
// generation is complete with want replicas Available.
func waitDeployment(t *testing.T, ctx context.Context, ns, name string, want int32) *appsv1.Deployment {
	t.Helper()
	var last *appsv1.Deployment
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = d
		s := d.Status
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want &&
			s.AvailableReplicas == want && s.UnavailableReplicas == 0, nil
	})
	if err != nil {
		t.Fatalf("deployment %s/%s not complete with %d available: %v; status %+v\npods: %s", ns, name, want, err, last.Status, podsSummary(t, ctx, ns))
	}
	return last
}

func podsSummary(t *testing.T, ctx context.Context, ns string) string {
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	s := ""
	for i := range pods.Items {
		s += fmt.Sprintf("\n  %s: %s", pods.Items[i].Name, podStatus(&pods.Items[i]))
	}
	return s
}

func TestADeploymentBecomesAvailableRollsOutAndScalesToZero(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	d, err := kube.AppsV1().Deployments(ns).Create(ctx, deployment("web", 3, cluster.Busybox), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, ctx, ns, d.Name, 3)
	if n := len(readySandboxes(t, ctx, ns)); n != 3 {
		t.Errorf("berthd runs %d ready sandboxes in %s, want 3", n, ns)
	}

	t.Run("a rolling update to another image completes with no failed pod", func(t *testing.T) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Template.Spec.Containers[0].Image = cluster.BusyboxOther
		if _, err := kube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitDeployment(t, ctx, ns, "web", 3)
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		updated := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodFailed {
				t.Errorf("pod %s failed: %s", p.Name, podStatus(&p))
			}
			for _, s := range p.Status.ContainerStatuses {
				if s.RestartCount != 0 {
					t.Errorf("pod %s container %s restarted %d times", p.Name, s.Name, s.RestartCount)
				}
			}
			if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == cluster.BusyboxOther && ready(&p) {
				updated++
			}
		}
		if updated != 3 {
			t.Errorf("%d ready pods run %s, want 3:%s", updated, cluster.BusyboxOther, podsSummary(t, ctx, ns))
		}
	})

	t.Run("scaling to zero removes every sandbox", func(t *testing.T) {
		scale, err := kube.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = 0
		if _, err := kube.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// kubelet stops the sandboxes as the pods go, and its garbage
		// collector (once a minute) removes them.
		var left []*runtimeapi.PodSandbox
		err = wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
			left = sandboxes(t, ctx, ns)
			return len(left) == 0, nil
		})
		if err != nil {
			for _, s := range left {
				t.Errorf("sandbox %s (%s) of pod %s still listed by berthd", s.Id, s.State, s.Metadata.Name)
			}
		}
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 0 {
			t.Errorf("%d pods left after scaling to zero:%s", len(pods.Items), podsSummary(t, ctx, ns))
		}
	})
}

func readySandboxes(t *testing.T, ctx context.Context, ns string) []*runtimeapi.PodSandbox {
	var out []*runtimeapi.PodSandbox
	for _, s := range sandboxes(t, ctx, ns) {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			out = append(out, s)
		}
	}
	return out
}
