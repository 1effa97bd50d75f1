package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runOnce runs a restartPolicy Never pod to its end and returns its log.
func runOnce(t *testing.T, ctx context.Context, ns string, pod *corev1.Pod) (string, *corev1.Pod) {
	t.Helper()
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, pod.Name, "finished", podTimeout, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	return logsOf(t, ctx, ns, pod.Name, "main", false), p
}

const capEff = `grep CapEff /proc/self/status | cut -f2`

func TestSecurityContextsAreApplied(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	cases := []struct {
		name   string
		script string
		sc     *corev1.SecurityContext
		want   string
	}{
		{"run-as-user", "id -u; id -g", &corev1.SecurityContext{RunAsUser: ptr(int64(1234)), RunAsGroup: ptr(int64(5678))}, "1234\n5678\n"},
		{"read-only-root", "touch /x 2>/dev/null && echo writable || echo read-only", &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr(true)}, "read-only\n"},
		{"drop-all", capEff, &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}, "0000000000000000\n"},
		// CAP_NET_ADMIN is bit 12.
		{"add-net-admin", capEff, &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}}}, "0000000000001000\n"},
		{"no-new-privs", "grep NoNewPrivs /proc/self/status | cut -f2", &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false)}, "1\n"},
	}
	for _, c := range cases {
		pod := busyboxPod(c.name, c.script)
		pod.Spec.Containers[0].SecurityContext = c.sc
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		createPod(t, ctx, ns, pod)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			waitPod(t, ctx, ns, c.name, "Succeeded", podTimeout, phase(corev1.PodSucceeded))
			if got := logsOf(t, ctx, ns, c.name, "main", false); got != c.want {
				t.Errorf("the container printed %q, want %q", got, c.want)
			}
		})
	}
}

func TestAPrivilegedContainerHasEveryCapabilityAndTheHostsDevices(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("privileged", capEff+"; ls /dev | wc -l")
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
	out, p := runOnce(t, ctx, ns, pod)
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("privileged pod: %s", podStatus(p))
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("privileged pod printed %q", out)
	}
	// Every capability berthd has: its bounding set (root here lacks
	// CAP_SYS_RESOURCE, so that is not every capability the kernel knows).
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cl.BerthdPid()))
	if err != nil {
		t.Fatal(err)
	}
	var bnd string
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			bnd = strings.TrimSpace(v)
		}
	}
	if f[0] != bnd {
		t.Errorf("privileged CapEff = %s, want berthd's bounding set %s", f[0], bnd)
	}
	plainOut, _ := runOnce(t, ctx, ns, busyboxPod("plain", "ls /dev | wc -l"))
	privDevs, _ := strconv.Atoi(f[1])
	plainDevs, _ := strconv.Atoi(strings.TrimSpace(plainOut))
	if privDevs <= plainDevs {
		t.Errorf("a privileged container sees %d entries in /dev, an ordinary one %d: want the host's devices", privDevs, plainDevs)
	}
}

func TestRunAsNonRootRefusesAnImageThatRunsAsRoot(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("nonroot", "id -u")
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr(true)}
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "nonroot", "refused", podTimeout, func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].State.Waiting != nil && s[0].State.Waiting.Reason == "CreateContainerConfigError"
	})
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "runAsNonRoot") {
		t.Errorf("refused with %q, want the runAsNonRoot reason", msg)
	}
	// The same with an explicit non-root user runs.
	ok := busyboxPod("nonroot-uid", "id -u")
	ok.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(1000))}
	if out, p := runOnce(t, ctx, ns, ok); out != "1000\n" {
		t.Errorf("runAsNonRoot with runAsUser 1000 printed %q: %s", out, podStatus(p))
	}
}

// refusedFor reports a pod whose container berthd refused to create, with
// kubelet's message.
func refusedFor(p *corev1.Pod) (string, bool) {
	for _, s := range p.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil && (w.Reason == "CreateContainerError" || w.Reason == "RunContainerError") {
			return w.Message, true
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReadyToStartContainers && c.Status == corev1.ConditionFalse && c.Message != "" {
			return c.Message, true
		}
	}
	return "", false
}

func TestSeccompRuntimeDefaultIsEnforced(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("seccomp", "grep Seccomp: /proc/self/status | cut -f2")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "seccomp", "finished or refused", podTimeout, func(p *corev1.Pod) bool {
		_, refused := refusedFor(p)
		return refused || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if msg, refused := refusedFor(p); refused {
		t.Fatalf("the pod with seccomp RuntimeDefault was refused: %s", msg)
	}
	// 2 is SECCOMP_MODE_FILTER.
	if out := logsOf(t, ctx, ns, "seccomp", "main", false); out != "2\n" {
		t.Errorf("Seccomp mode in the container = %q, want 2 (filter): %s", out, podStatus(p))
	}
}

func TestHostUsersFalseRunsThePodInAUserNamespace(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	st, err := cri.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// kubelet refuses hostUsers: false unless the pod's handler (the
	// default, "") reports user namespace support.
	supported := false
	for _, h := range st.RuntimeHandlers {
		if h.Name == "" && h.GetFeatures().GetUserNamespaces() {
			supported = true
		}
	}
	if !supported {
		t.Fatalf("berthd's default runtime handler does not report user namespace support in Status, so kubelet refuses hostUsers: false")
	}
	pod := busyboxPod("userns", "cat /proc/self/uid_map")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.HostUsers = ptr(false)
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "userns", "finished or refused", podTimeout, func(p *corev1.Pod) bool {
		_, refused := refusedFor(p)
		return refused || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if msg, refused := refusedFor(p); refused {
		t.Fatalf("the hostUsers: false pod was refused: %s", msg)
	}
	out := logsOf(t, ctx, ns, "userns", "main", false)
	f := strings.Fields(out)
	// Inside a user namespace uid 0 maps to a host uid other than 0.
	if len(f) != 3 || f[0] != "0" || f[1] == "0" {
		t.Errorf("uid_map = %q, want 0 mapped to a non-root host range: %s", out, podStatus(p))
	}
}
