package e2e

import (
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/e2e/cluster"
)

const busybox = cluster.Busybox

func TestTheNodeIsReadyAndRunsOnBerth(t *testing.T) {
	ctx := setUp(t)
	node, err := kube.CoreV1().Nodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	isReady := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			isReady = true
		}
	}
	if !isReady {
		t.Errorf("node %s is not Ready: %v", node.Name, node.Status.Conditions)
	}
	var internal string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	if internal != cluster.NodeIP {
		t.Errorf("node InternalIP = %q, want %s", internal, cluster.NodeIP)
	}
	if node.Spec.PodCIDR == "" {
		t.Errorf("node has no podCIDR")
	}
	info := node.Status.NodeInfo
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "berth://") {
		t.Fatalf("node's container runtime = %q, want berth://...", info.ContainerRuntimeVersion)
	}

	v, err := cri.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := version.ParseSemantic(v.RuntimeVersion); err != nil {
		t.Fatalf("berthd reports RuntimeVersion %q, which kubelet cannot parse (%v), so kubelet shows %q",
			v.RuntimeVersion, err, info.ContainerRuntimeVersion)
	}
	want := "berth://" + v.RuntimeVersion
	if info.ContainerRuntimeVersion != want {
		t.Errorf("node's container runtime = %q, want %q", info.ContainerRuntimeVersion, want)
	}
	out := mustKubectl(t, ctx, "get", "nodes", "-o", "wide")
	if !regexp.MustCompile(`\s` + regexp.QuoteMeta(want) + `\s*$`).MatchString(strings.TrimSpace(strings.Split(out, "\n")[1]) + " ") {
		t.Errorf("kubectl get nodes -o wide does not end with %s:\n%s", want, out)
	}
}
