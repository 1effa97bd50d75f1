package e2e

import (
	"net"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

// A second node, with its own kubelet and berthd in a network namespace of
// the test's own (what kind's node containers are, without the container):
// it registers Ready on Berth, its berthd takes the node's pod CIDR from
// kubelet, a Deployment spreads over both nodes, and pods on each node
// reach the other's by pod IP over plain routes.
func TestTwoNodesSpreadADeploymentAndTheirPodsTalkByIP(t *testing.T) {
	ctx := setUp(t)
	if err := cl.StartNode2(ctx); err != nil {
		t.Fatalf("start the second node: %v", err)
	}
	t.Cleanup(func() {
		if err := cl.StopNode2(); err != nil {
			t.Errorf("stop the second node: %v", err)
		}
	})
	node2, err := kube.CoreV1().Nodes().Get(ctx, cluster.Node2Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := node2.Status.NodeInfo.ContainerRuntimeVersion; !strings.HasPrefix(v, "berth://") {
		t.Errorf("the second node's container runtime = %q, want berth://...", v)
	}
	_, cidr2, err := net.ParseCIDR(node2.Spec.PodCIDR)
	if err != nil {
		t.Fatalf("the second node's pod CIDR %q: %v", node2.Spec.PodCIDR, err)
	}

	ns := namespace(t, ctx)
	d := deployment("spread", 4, busybox)
	d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector: d.Spec.Selector,
	}}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, ctx, ns, "spread", 4)
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=spread"})
	if err != nil {
		t.Fatal(err)
	}
	on := map[string][]string{} // node -> pod IPs
	for _, p := range pods.Items {
		on[p.Spec.NodeName] = append(on[p.Spec.NodeName], p.Status.PodIP)
		if p.Spec.NodeName == cluster.Node2Name && !cidr2.Contains(net.ParseIP(p.Status.PodIP)) {
			t.Errorf("pod %s on the second node has IP %s, outside the node's pod CIDR %s", p.Name, p.Status.PodIP, cidr2)
		}
	}
	if len(on[cluster.NodeName]) != 2 || len(on[cluster.Node2Name]) != 2 {
		t.Fatalf("the Deployment's pods by node: %v, want two on each of %s and %s", on, cluster.NodeName, cluster.Node2Name)
	}

	for _, c := range []struct{ from, to string }{{cluster.NodeName, cluster.Node2Name}, {cluster.Node2Name, cluster.NodeName}} {
		var addrs []string
		for _, ip := range on[c.to] {
			addrs = append(addrs, ip+":8080")
		}
		client := busyboxPod("from-"+strings.TrimPrefix(c.from, "berth-e2e-"), fetchScript(addrs...))
		client.Spec.NodeName = c.from
		out, p := runOnce(t, ctx, ns, client)
		if out != "hello\nhello\n" {
			t.Errorf("a pod on %s got %q from the pods on %s (%s), want hello twice: %s", c.from, out, c.to, strings.Join(addrs, " "), podStatus(p))
		}
	}
	t.Logf("the Deployment's pod IPs by node: %v", on)
}
