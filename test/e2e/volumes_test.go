package e2e

import (
	"strings"
	"testing"
	"time"

	"context"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestVolumesReachTheContainer mounts one of each volume kind kubelet
// prepares on the host and Berth bind-mounts into the container, and the
// container prints what it sees; the test compares that with what was
// asked for.
func TestVolumesReachTheContainer(t *testing.T) {
	ctx := setUp(t)
	ns := namespace(t, ctx)
	if _, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"greeting": "hello", "sub": "via-subpath"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	writeFile(t, host+"/from-host", "host file\n")

	script := `set -e
echo "disk=$(awk '$2=="/disk"{print $3}' /proc/mounts)"
echo "memory=$(awk '$2=="/memory"{print $3}' /proc/mounts)"
echo disk-write > /disk/f && cat /disk/f
echo "cm=$(cat /cm/greeting)"
echo "secret=$(cat /secret/password)"
echo "secretfs=$(awk '$2=="/secret"{print $3}' /proc/mounts)"
echo "host=$(cat /host/from-host)"
echo from-pod > /host/from-pod
echo "podname=$(cat /downward/name)"
echo "label=$(cat /downward/labels)"
echo "sub=$(cat /sub.txt)"
echo "token=$(cut -d. -f1 /token/token | wc -c)"
echo "ca=$(head -1 /token/ca.crt)"
echo "watch-start"
while true; do echo "cm-now=$(cat /cm/greeting)"; sleep 1; done`
	pod := busyboxPod("volumes", script)
	pod.Labels = map[string]string{"tier": "e2e"}
	pod.Spec.Volumes = []corev1.Volume{
		emptyDir("disk"),
		{Name: "memory", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host}}},
		{Name: "downward", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		}}}},
		{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3600))}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
		}}}},
	}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
		{Name: "disk", MountPath: "/disk"},
		{Name: "memory", MountPath: "/memory"},
		{Name: "cm", MountPath: "/cm"},
		{Name: "secret", MountPath: "/secret"},
		{Name: "host", MountPath: "/host"},
		{Name: "downward", MountPath: "/downward"},
		{Name: "token", MountPath: "/token"},
		{Name: "cm", MountPath: "/sub.txt", SubPath: "sub"},
	}
	createPod(t, ctx, ns, pod)
	waitPod(t, ctx, ns, "volumes", "running", podTimeout, running)
	out := waitLogs(t, ctx, ns, "volumes", "watch-start", shortTimeout)
	for _, want := range []string{
		"memory=tmpfs", "disk-write", "cm=hello", "secret=s3cret", "secretfs=tmpfs", "host=host file",
		"podname=volumes", `label=tier="e2e"`, "sub=via-subpath", "ca=-----BEGIN CERTIFICATE-----",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("the container did not see %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "disk=tmpfs") {
		t.Errorf("a disk emptyDir is a tmpfs:\n%s", out)
	}
	// A JWT's header is base64 of {"alg":...}: dozens of characters.
	if strings.Contains(out, "token=1\n") || !strings.Contains(out, "token=") {
		t.Errorf("no service-account token in the projected volume:\n%s", out)
	}
	if got := readFile(t, host+"/from-pod"); got != "from-pod\n" {
		t.Errorf("the pod's write to the hostPath gave %q on the host", got)
	}

	t.Run("a configMap update reaches the running pod", func(t *testing.T) {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["greeting"] = "updated"
		if _, err := kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// kubelet resyncs the volume within its sync period and cache TTL.
		waitLogs(t, ctx, ns, "volumes", "cm-now=updated", 2*time.Minute)
	})
}

// waitLogs polls the pod's main log until it contains want, and returns it.
func waitLogs(t *testing.T, ctx context.Context, ns, pod, want string, timeout time.Duration) string {
	t.Helper()
	var out string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		b, err := kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: "main"}).DoRaw(ctx)
		out = string(b)
		return err == nil && strings.Contains(out, want), nil
	})
	if err != nil {
		t.Fatalf("the log of %s/%s never showed %q: %v\n%s", ns, pod, want, err, out)
	}
	return out
}
