package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerID is the CRI ID of a pod's container, from its status.
func containerID(t *testing.T, ctx context.Context, ns, pod, container string) string {
	t.Helper()
	p, err := kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(append(p.Status.ContainerStatuses, p.Status.InitContainerStatuses...), p.Status.EphemeralContainerStatuses...) {
		if s.Name == container {
			return strings.TrimPrefix(s.ContainerID, "berth://")
		}
	}
	t.Fatalf("pod %s/%s has no container %s: %s", ns, pod, container, podStatus(p))
	return ""
}

// requireStream fails the test when berthd refused the CRI streaming call
// it asked for first: the kubectl command after it could only fail less
// clearly.
func requireStream(t *testing.T, call string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
}

func requireExec(t *testing.T, ctx context.Context, ns, pod string) {
	t.Helper()
	_, err := cri.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: containerID(t, ctx, ns, pod, "main"), Cmd: []string{"true"}, Stdout: true})
	requireStream(t, "Exec", err)
}

// mustExecOK runs a command in the pod's main container with kubectl exec
// and reports whether it succeeded; it fails the test when berthd refuses
// the Exec call.
func mustExecOK(t *testing.T, ctx context.Context, ns, pod string, cmd ...string) bool {
	t.Helper()
	requireExec(t, ctx, ns, pod)
	out, err := kubectl(t, ctx, append([]string{"-n", ns, "exec", pod, "--"}, cmd...)...)
	if err != nil {
		t.Errorf("kubectl exec %s %v: %v\n%s", pod, cmd, err, out)
		return false
	}
	return true
}

func sleeper(name string) *corev1.Pod {
	return busyboxPod(name, "trap 'exit 0' TERM; mkdir -p /www; echo hello-from-pod > /www/index.html; httpd -p 8080 -h /www; while true; do sleep 1; done")
}

func TestKubectlExecRunsInTheContainer(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, sleeper("exec"))
	waitPod(t, ctx, ns, "exec", "running", podTimeout, running)
	requireExec(t, ctx, ns, "exec")
	out := mustKubectl(t, ctx, "-n", ns, "exec", "exec", "--", "sh", "-c", "cat /www/index.html; hostname")
	if out != "hello-from-pod\nexec\n" {
		t.Errorf("kubectl exec printed %q, want the pod's file and hostname", out)
	}
	// The exit status is the command's.
	if out, err := kubectl(t, ctx, "-n", ns, "exec", "exec", "--", "sh", "-c", "exit 7"); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("kubectl exec of exit 7: %v (%q), want exit status 7", err, out)
	}
	// -i with stdin.
	cmd := kubectlCmd(ctx, "-n", ns, "exec", "-i", "exec", "--", "tr", "a-z", "A-Z")
	cmd.Stdin = strings.NewReader("shout\n")
	if b, err := cmd.CombinedOutput(); err != nil || string(b) != "SHOUT\n" {
		t.Errorf("kubectl exec -i tr: %v, %q; want SHOUT", err, b)
	}
}

// openPTY opens a pseudo-terminal of rows x cols: its master, and its
// slave for a process's stdio.
func openPTY(t *testing.T, rows, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sl.Close() })
	if err := unix.IoctlSetWinsize(int(sl.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	return m, sl
}

// kubectl exec -it, as a user at a terminal runs it: kubectl's stdio is a
// terminal, the container's process gets one too, of the user's size.
func TestKubectlExecWithATerminal(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, sleeper("exec-tty"))
	waitPod(t, ctx, ns, "exec-tty", "running", podTimeout, running)
	requireExec(t, ctx, ns, "exec-tty")
	master, slave := openPTY(t, 33, 111)
	cmd := kubectlCmd(ctx, "-n", ns, "exec", "-it", "exec-tty", "--", "sh", "-c", "tty; stty size; exit 5")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, master); close(copied) }()
	err := cmd.Wait()
	<-copied // the master reads EIO once kubectl, the slave's last holder, is gone
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if !regexp.MustCompile(`(?m)^/dev/pts/\d+\n33 111\n`).MatchString(got) {
		t.Errorf("kubectl exec -it printed %q, want the container's terminal and its size 33 111", got)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("kubectl exec -it of exit 5: %v, want exit status 5", err)
	}
}

func TestKubectlAttachSeesTheContainersOutput(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, busyboxPod("attach", "while true; do echo tick; sleep 0.2; done"))
	waitPod(t, ctx, ns, "attach", "running", podTimeout, running)
	_, err := cri.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: containerID(t, ctx, ns, "attach", "main"), Stdout: true})
	requireStream(t, "Attach", err)
	actx, cancel := context.WithTimeout(ctx, 3*cliSecond)
	defer cancel()
	out, _ := kubectl(t, actx, "-n", ns, "attach", "attach")
	if !strings.Contains(out, "tick\ntick\n") {
		t.Errorf("kubectl attach printed %q, want ticks", out)
	}
}

func TestKubectlPortForwardReachesAWebServerInThePod(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, sleeper("pf"))
	p := waitPod(t, ctx, ns, "pf", "running", podTimeout, running)
	sb := sandboxes(t, ctx, ns)
	if len(sb) == 0 {
		t.Fatalf("berthd has no sandbox for %s", p.Name)
	}
	_, err := cri.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb[0].Id, Port: []int32{8080}})
	requireStream(t, "PortForward", err)
	body, err := portForwardGet(t, ctx, ns, "pf", 8080, "/index.html")
	if err != nil || body != "hello-from-pod\n" {
		t.Errorf("GET through kubectl port-forward: %v, %q", err, body)
	}
}

func TestKubectlCpCopiesBothWays(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, sleeper("cp"))
	waitPod(t, ctx, ns, "cp", "running", podTimeout, running)
	requireExec(t, ctx, ns, "cp")
	dir := t.TempDir()
	local := dir + "/in.txt"
	writeFile(t, local, "copied in\n")
	mustKubectl(t, ctx, "-n", ns, "cp", local, "cp:/tmp/in.txt")
	if out := mustKubectl(t, ctx, "-n", ns, "exec", "cp", "--", "cat", "/tmp/in.txt"); out != "copied in\n" {
		t.Errorf("the file copied in holds %q", out)
	}
	mustKubectl(t, ctx, "-n", ns, "cp", "cp:/www/index.html", dir+"/out.txt")
	if got := readFile(t, dir+"/out.txt"); got != "hello-from-pod\n" {
		t.Errorf("the file copied out holds %q", got)
	}
}

func TestKubectlDebugRunsAnEphemeralContainerThatSeesTheTarget(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, sleeper("debug"))
	waitPod(t, ctx, ns, "debug", "running", podTimeout, running)
	requireExec(t, ctx, ns, "debug")
	mustKubectl(t, ctx, "-n", ns, "debug", "debug", "--image", busybox, "--target", "main", "--container", "dbg", "--", "sh", "-c", "ps; sleep 3600")
	waitPod(t, ctx, ns, "debug", "the ephemeral container running", podTimeout, func(p *corev1.Pod) bool {
		for _, s := range p.Status.EphemeralContainerStatuses {
			if s.Name == "dbg" && s.State.Running != nil {
				return true
			}
		}
		return false
	})
	if out := logsOf(t, ctx, ns, "debug", "dbg", false); !strings.Contains(out, "httpd") {
		t.Errorf("ps in the debug container does not show the target's httpd:\n%s", out)
	}
}
