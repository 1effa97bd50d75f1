package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

// webPod serves its hostname on 8080.
func webPod(name string) *corev1.Pod {
	p := busyboxPod(name, "mkdir /www; hostname > /www/index.html; exec httpd -f -p 8080 -h /www")
	p.Labels = map[string]string{"app": "web"}
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	p.Spec.Containers[0].ReadinessProbe = probe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrStr(8080)}})
	return p
}

// fetchScript GETs / from each address with nc and prints the bodies.
func fetchScript(addrs ...string) string {
	var b strings.Builder
	for _, a := range addrs {
		host, port, _ := strings.Cut(a, ":")
		fmt.Fprintf(&b, "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s %s | tail -1; ", host, port)
	}
	return b.String()
}

func hostGet(url string) (string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestPodsTalkByPodIPAndThroughAClusterIPService(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	createPod(t, ctx, ns, webPod("web"))
	web := waitPod(t, ctx, ns, "web", "Ready", podTimeout, ready)
	svc, err := kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intOrStr(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// kube-proxy programs the service once the endpoints exist; the client
	// retries until then.
	script := fmt.Sprintf(`for i in $(seq 60); do out=$(%s); [ "$out" = "web" ] && break; sleep 0.5; done; %s`,
		fetchScript(svc.Spec.ClusterIP+":80"), fetchScript(web.Status.PodIP+":8080", svc.Spec.ClusterIP+":80"))
	out, p := runOnce(t, ctx, ns, busyboxPod("client", script))
	if out != "web\nweb\n" {
		t.Errorf("the client pod got %q from the pod IP %s and the ClusterIP %s, want web twice: %s", out, web.Status.PodIP, svc.Spec.ClusterIP, podStatus(p))
	}
	// From the node itself, through kube-proxy's rules.
	if body, err := hostGet("http://" + svc.Spec.ClusterIP + "/"); err != nil || body != "web\n" {
		t.Errorf("GET the ClusterIP from the node: %v, %q", err, body)
	}
}

func TestHostNetworkAndHostPortPods(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	t.Run("a hostNetwork pod sees the node's interfaces", func(t *testing.T) {
		pod := busyboxPod("hostnet", "ip -o addr show | grep -c "+cluster.NodeIP)
		pod.Spec.HostNetwork = true
		if out, p := runOnce(t, ctx, ns, pod); out != "1\n" {
			t.Errorf("the hostNetwork pod does not see the node address %s: %q, %s", cluster.NodeIP, out, podStatus(p))
		}
	})
	t.Run("a hostPort reaches the pod from the node address", func(t *testing.T) {
		pod := webPod("hostport")
		pod.Spec.Containers[0].Ports[0].HostPort = 18080
		createPod(t, ctx, ns, pod)
		waitPod(t, ctx, ns, "hostport", "Ready", podTimeout, ready)
		var body string
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, shortTimeout, true, func(ctx context.Context) (bool, error) {
			b, err := hostGet(fmt.Sprintf("http://%s:18080/", cluster.NodeIP))
			body = b
			return err == nil && b == "hostport\n", nil
		})
		if err != nil {
			t.Errorf("GET %s:18080 from the node: %v (last body %q)", cluster.NodeIP, err, body)
		}
	})
}
