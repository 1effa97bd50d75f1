package e2e

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func execProbe(cmd ...string) corev1.ProbeHandler {
	return corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}
}

func probe(h corev1.ProbeHandler) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: h, PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 2}
}

func restarts(p *corev1.Pod) int32 {
	if len(p.Status.ContainerStatuses) == 0 {
		return 0
	}
	return p.Status.ContainerStatuses[0].RestartCount
}

func TestAFailingExecLivenessProbeRestartsTheContainer(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	pod := busyboxPod("exec-live", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600")
	pod.Spec.Containers[0].LivenessProbe = probe(execProbe("cat", "/tmp/healthy"))
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "exec-live", "restartCount to rise", podTimeout, func(p *corev1.Pod) bool { return restarts(p) >= 1 })
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 137 && last.ExitCode != 143 {
		t.Errorf("the killed run's state = %+v, want terminated by a signal (137 or 143)", last)
	}
}

func TestHTTPReadinessFollowsTheServersAnswers(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	// /ready exists from 2 s to 8 s after the start: not Ready, Ready, then
	// not Ready again, with no restart (readiness never restarts).
	pod := busyboxPod("http-ready", "mkdir /www; (sleep 2; echo ok > /www/ready; sleep 6; rm /www/ready) & exec httpd -f -p 8080 -h /www")
	pod.Spec.Containers[0].ReadinessProbe = probe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intOrStr(8080)}})
	createPod(t, ctx, ns, pod)
	waitPod(t, ctx, ns, "http-ready", "Ready", podTimeout, ready)
	p := waitPod(t, ctx, ns, "http-ready", "not Ready after /ready went", shortTimeout, func(p *corev1.Pod) bool { return !ready(p) })
	if restarts(p) != 0 || !running(p) {
		t.Errorf("readiness changed more than readiness: %s", podStatus(p))
	}
}

func TestTCPProbesPassOnAnOpenPortAndRestartOnAClosedOne(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	open := busyboxPod("tcp-open", "mkdir /www; exec httpd -f -p 8080 -h /www")
	open.Spec.Containers[0].ReadinessProbe = probe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrStr(8080)}})
	open.Spec.Containers[0].LivenessProbe = probe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrStr(8080)}})
	closed := busyboxPod("tcp-closed", "mkdir /www; exec httpd -f -p 8080 -h /www")
	closed.Spec.Containers[0].LivenessProbe = probe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrStr(9999)}})
	createPod(t, ctx, ns, open)
	createPod(t, ctx, ns, closed)
	waitPod(t, ctx, ns, "tcp-closed", "restartCount to rise", podTimeout, func(p *corev1.Pod) bool { return restarts(p) >= 1 })
	p := waitPod(t, ctx, ns, "tcp-open", "Ready", podTimeout, ready)
	if restarts(p) != 0 {
		t.Errorf("the pod with an open port restarted %d times", restarts(p))
	}
}

func TestAStartupProbeHoldsLivenessUntilTheAppHasStarted(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	// The app takes 4 s to "start"; a liveness probe on the same file would
	// kill it before then without the startup probe.
	pod := busyboxPod("startup", "sleep 4; touch /tmp/started; exec sleep 3600")
	c := &pod.Spec.Containers[0]
	c.StartupProbe = probe(execProbe("test", "-f", "/tmp/started"))
	c.StartupProbe.FailureThreshold = 30
	c.LivenessProbe = probe(execProbe("test", "-f", "/tmp/started"))
	createPod(t, ctx, ns, pod)
	start := time.Now()
	p := waitPod(t, ctx, ns, "startup", "Started and Ready", podTimeout, func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].Started != nil && *s[0].Started && ready(p)
	})
	if time.Since(start) < 3*time.Second {
		t.Errorf("started after %s, before the app made /tmp/started", time.Since(start))
	}
	if restarts(p) != 0 {
		t.Errorf("liveness restarted the app %d times during start-up", restarts(p))
	}
}

func TestAFailingHTTPLivenessProbeRestartsTheContainer(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	// /healthz answers for 2 s, then 404s: kubelet restarts the container.
	pod := busyboxPod("http-live", "mkdir /www; echo ok > /www/healthz; (sleep 2; rm /www/healthz) & exec httpd -f -p 8080 -h /www")
	pod.Spec.Containers[0].LivenessProbe = probe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intOrStr(8080)}})
	createPod(t, ctx, ns, pod)
	p := waitPod(t, ctx, ns, "http-live", "restartCount to rise", podTimeout, func(p *corev1.Pod) bool { return restarts(p) >= 1 })
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 137 && last.ExitCode != 143 {
		t.Errorf("the killed run's state = %+v, want terminated by a signal (137 or 143)", last)
	}
}

func TestExecReadinessFollowsAFile(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	// /tmp/ready exists from 2 s to 8 s after the start: the exec probe
	// (run through Berth's ExecSync) makes the pod Ready, then not Ready,
	// with no restart.
	pod := busyboxPod("exec-ready", "(sleep 2; touch /tmp/ready; sleep 6; rm /tmp/ready) & exec sleep 3600")
	pod.Spec.Containers[0].ReadinessProbe = probe(execProbe("test", "-f", "/tmp/ready"))
	createPod(t, ctx, ns, pod)
	waitPod(t, ctx, ns, "exec-ready", "Ready", podTimeout, ready)
	p := waitPod(t, ctx, ns, "exec-ready", "not Ready after /tmp/ready went", shortTimeout, func(p *corev1.Pod) bool { return !ready(p) })
	if restarts(p) != 0 || !running(p) {
		t.Errorf("readiness changed more than readiness: %s", podStatus(p))
	}
}
