package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

// Timeouts. Pods start in about a second on an idle machine; these allow
// for a loaded CI machine, they are not performance assertions.
const (
	podTimeout   = 2 * time.Minute
	shortTimeout = 30 * time.Second
)

// setUp marks the logs and, when the test fails, prints what kubelet,
// berthd and the control plane logged while it ran.
func setUp(t *testing.T) context.Context {
	t.Helper()
	mark := cl.Mark()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("component logs while %s ran:\n%s", t.Name(), cl.LogsSince(mark, 150))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// namespace makes a fresh namespace for the test and deletes it at the end.
// It waits for the namespace's default ServiceAccount (made by the
// controller-manager), without which the API server refuses pods.
func namespace(t *testing.T, ctx context.Context) string {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(b)
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, shortTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s has no default ServiceAccount: %v", name, err)
	}
	return name
}

// createPod creates pod in ns.
func createPod(t *testing.T, ctx context.Context, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	p, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return p
}

// waitPod polls the pod until cond holds and returns it; it fails the test
// with the pod's status after timeout.
func waitPod(t *testing.T, ctx context.Context, ns, name, what string, timeout time.Duration, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %s: %v; last status: %s", ns, name, what, err, podStatus(last))
	}
	return last
}

func podStatus(p *corev1.Pod) string {
	if p == nil {
		return "no pod"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, ", %s=%s", c.Type, c.Status)
	}
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, "; container %s ready=%v restarts=%d", s.Name, s.Ready, s.RestartCount)
		switch {
		case s.State.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s: %s", s.State.Waiting.Reason, s.State.Waiting.Message)
		case s.State.Running != nil:
			b.WriteString(" running")
		case s.State.Terminated != nil:
			fmt.Fprintf(&b, " terminated %s exit %d: %s", s.State.Terminated.Reason, s.State.Terminated.ExitCode, s.State.Terminated.Message)
		}
	}
	return b.String()
}

func running(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func phase(ph corev1.PodPhase) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool { return p.Status.Phase == ph }
}

// busyboxPod is a one-container pod running sh -c script.
func busyboxPod(name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   busybox,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func intOrStr(port int) intstr.IntOrString { return intstr.FromInt32(int32(port)) }

// kubectl runs the cluster's kubectl as the admin and returns its output.
func kubectl(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(cl.Bin, "kubectl"), append([]string{"--kubeconfig", cl.Kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustKubectl(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := kubectl(t, ctx, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// sandboxes lists berthd's pod sandboxes of namespace ns, by state.
func sandboxes(t *testing.T, ctx context.Context, ns string) []*runtimeapi.PodSandbox {
	t.Helper()
	resp, err := cri.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns}}})
	if err != nil {
		t.Fatalf("ListPodSandbox: %v", err)
	}
	return resp.Items
}

// cliSecond is a second, for kubectl commands that run until cancelled.
const cliSecond = time.Second

// kubectlCmd is the kubectl command for args, for callers that need its
// stdin or a streaming stdout.
func kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(cl.Bin, "kubectl"), append([]string{"--kubeconfig", cl.Kubeconfig}, args...)...)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// portForwardGet runs kubectl port-forward to the pod's port on a free
// local port and GETs path through it.
func portForwardGet(t *testing.T, ctx context.Context, ns, pod string, port int, path string) (string, error) {
	t.Helper()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := kubectlCmd(pctx, "-n", ns, "port-forward", "pod/"+pod, fmt.Sprintf(":%d", port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer cmd.Wait()
	// "Forwarding from 127.0.0.1:NNNNN -> 8080"
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("kubectl port-forward: %v: %s", err, stderr.String())
	}
	var local int
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "Forwarding from 127.0.0.1:%d ->", &local); err != nil {
		return "", fmt.Errorf("kubectl port-forward printed %q: %v", line, err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", local, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// withKubelet restarts the cluster's kubelet with settings for the rest of
// the test, and with the cluster's defaults again when the test ends.
func withKubelet(t *testing.T, ctx context.Context, settings cluster.KubeletSettings) {
	t.Helper()
	if err := cl.RestartKubelet(ctx, settings); err != nil {
		t.Fatalf("restart kubelet with %+v: %v", settings, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cl.RestartKubelet(ctx, cluster.KubeletSettings{}); err != nil {
			t.Errorf("restart kubelet with the cluster's defaults: %v", err)
		}
	})
}
