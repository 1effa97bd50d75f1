package integration

// Pods: pinned namespaces without a pause process, the pod's files and
// sysctls, its cgroup, the CRI pod calls and their filters, ID prefixes,
// idempotent stop and remove, berth-podinit in PID mode POD, and recovery
// after berthd is killed. Every test ends with the harness's leak check.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// startPodDaemon starts a berthd with Berth's default CNI network, so that
// pods get their own network namespace attached to a bridge.
func startPodDaemon(t *testing.T) *harness.Daemon {
	t.Helper()
	return harness.Start(t, harness.WithConfig(func(c *config.Config) {
		c.CNI.DefaultNetwork = true
	}))
}

// podConfig is a minimal pod named name, in its own cgroup under the
// daemon's test cgroup.
func podConfig(d *harness.Daemon, name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name, Attempt: 1},
		Hostname: name + "-host",
		Labels:   map[string]string{"app": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: d.CgroupParent(name),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				// As kubelet sets it for pods that do not share their
				// process namespace; the proto's zero value is POD.
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
}

// hostNetwork puts a pod config on the host's network, IPC and PID
// namespaces.
func hostNetwork(cfg *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
	cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_NODE,
		Ipc:     runtimeapi.NamespaceMode_NODE,
		Pid:     runtimeapi.NamespaceMode_NODE,
	}
	return cfg
}

// mustRunPod runs a pod and removes it when the test ends, whatever
// happened (removing a removed pod succeeds), so that a failing test does
// not also fail the leak check.
func mustRunPod(t *testing.T, d *harness.Daemon, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	return mustRunPodWith(t, d, cfg, "")
}

func mustStopPod(t *testing.T, d *harness.Daemon, id string) {
	t.Helper()
	if _, err := d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox %s: %v", id, err)
	}
}

func mustRemovePod(t *testing.T, d *harness.Daemon, id string) {
	t.Helper()
	if _, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox %s: %v", id, err)
	}
}

func mustPodStatus(t *testing.T, d *harness.Daemon, id string) *runtimeapi.PodSandboxStatusResponse {
	t.Helper()
	st, err := d.Runtime.PodSandboxStatus(ctxFor(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	return st
}

// podVerbose is the part of verbose PodSandboxStatus info the tests read.
type podVerbose struct {
	Namespaces map[string]string `json:"namespaces"`
	Cgroup     string            `json:"cgroup"`
	InitPid    int               `json:"initPid"`
	Files      map[string]string `json:"files"`
}

func mustPodVerbose(t *testing.T, d *harness.Daemon, id string) podVerbose {
	t.Helper()
	var v podVerbose
	info := mustPodStatus(t, d, id).Info["info"]
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		t.Fatalf("verbose PodSandboxStatus info of %s is not JSON: %v\n%s", id, err, info)
	}
	return v
}

// pinDir is where berthd pins pod id's namespaces.
func pinDir(d *harness.Daemon, id string) string { return filepath.Join(d.State, "pods", id, "ns") }

// mustNsenter runs a command in the namespaces given as nsenter flags
// (--net=PATH ...) and returns its trimmed output.
func mustNsenter(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// nsInode is the inode of a namespace file: equal inodes, same namespace.
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func isNamespaceFile(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

func TestPodPinsItsOwnNamespacesWithItsHostnameAndNoProcess(t *testing.T) {
	d := startPodDaemon(t)
	id := mustRunPod(t, d, podConfig(d, "pod-a"))
	for _, kind := range []string{"net", "ipc", "uts"} {
		pin := filepath.Join(pinDir(d, id), kind)
		if !isNamespaceFile(pin) {
			t.Fatalf("%s is not a pinned namespace", pin)
		}
		if nsInode(t, pin) == nsInode(t, "/proc/self/ns/"+kind) {
			t.Errorf("pod's %s namespace is the host's", kind)
		}
	}
	if got := mustNsenter(t, "--uts="+filepath.Join(pinDir(d, id), "uts"), "hostname"); got != "pod-a-host" {
		t.Errorf("hostname in the pod's UTS namespace = %q, want pod-a-host", got)
	}
	if got := mustNsenter(t, "--net="+filepath.Join(pinDir(d, id), "net"), "ip", "-o", "link", "show", "lo"); !strings.Contains(got, "UP") {
		t.Errorf("loopback in the pod's network namespace is not up: %s", got)
	}
	if v := mustPodVerbose(t, d, id); v.InitPid != 0 {
		t.Errorf("a pod in PID mode CONTAINER has a process: initPid %d", v.InitPid)
	}
	mustStopPod(t, d, id)
	mustRemovePod(t, d, id)
	if _, err := os.Stat(filepath.Join(d.State, "pods", id)); !os.IsNotExist(err) {
		t.Errorf("pod state dir still there after RemovePodSandbox: %v", err)
	}
}

func TestTwoPodsShareNoNamespace(t *testing.T) {
	d := startPodDaemon(t)
	a := mustRunPod(t, d, podConfig(d, "pod-a"))
	b := mustRunPod(t, d, podConfig(d, "pod-b"))
	for _, kind := range []string{"net", "ipc", "uts"} {
		if nsInode(t, filepath.Join(pinDir(d, a), kind)) == nsInode(t, filepath.Join(pinDir(d, b), kind)) {
			t.Errorf("pods %s and %s share a %s namespace", a, b, kind)
		}
	}
	// A System V shared memory segment made in one pod's IPC namespace is
	// not seen in the other's.
	mustNsenter(t, "--ipc="+filepath.Join(pinDir(d, a), "ipc"), "python3", "-c",
		"import ctypes; libc = ctypes.CDLL(None); assert libc.shmget(0x4242, 4096, 0o1600) >= 0")
	if got := mustNsenter(t, "--ipc="+filepath.Join(pinDir(d, b), "ipc"), "ipcs", "-m"); strings.Contains(got, "0x00004242") {
		t.Errorf("pod b sees pod a's shared memory segment:\n%s", got)
	}
	if got := mustNsenter(t, "--ipc="+filepath.Join(pinDir(d, a), "ipc"), "ipcs", "-m"); !strings.Contains(got, "0x00004242") {
		t.Errorf("pod a does not see its own shared memory segment:\n%s", got)
	}
	mustRemovePod(t, d, a)
	mustRemovePod(t, d, b)
}

func TestPodSysctlsAreSetInsideThePodOnly(t *testing.T) {
	d := startPodDaemon(t)
	cfg := podConfig(d, "pod-a")
	cfg.Linux.Sysctls = map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "80",
		"net.ipv4.conf.eth0.arp_announce":     "2", // on the interface CNI adds
		"kernel.shmmni":                       "1234",
	}
	id := mustRunPod(t, d, cfg)
	for _, c := range []struct{ ns, file, want string }{
		{"--net", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "80"},
		{"--net", "/proc/sys/net/ipv4/conf/eth0/arp_announce", "2"},
		{"--ipc", "/proc/sys/kernel/shmmni", "1234"},
	} {
		kind := strings.TrimPrefix(c.ns, "--")
		if got := mustNsenter(t, c.ns+"="+filepath.Join(pinDir(d, id), kind), "cat", c.file); got != c.want {
			t.Errorf("%s in the pod = %q, want %q", c.file, got, c.want)
		}
		host, _ := os.ReadFile(c.file)
		if strings.TrimSpace(string(host)) == c.want {
			t.Errorf("%s on the host is the pod's value %q", c.file, c.want)
		}
	}
	mustRemovePod(t, d, id)
}

func TestPodFilesFollowTheDNSConfigAndHostname(t *testing.T) {
	d := startPodDaemon(t)
	cfg := podConfig(d, "pod-a")
	cfg.DnsConfig = &runtimeapi.DNSConfig{
		Servers:  []string{"10.96.0.10"},
		Searches: []string{"default.svc.cluster.local", "svc.cluster.local"},
		Options:  []string{"ndots:5"},
	}
	id := mustRunPod(t, d, cfg)
	v := mustPodVerbose(t, d, id)
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(v.Files[path])
		if err != nil {
			t.Fatalf("pod file for %s: %v", path, err)
		}
		return string(b)
	}
	wantResolv := "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
	if got := read("/etc/resolv.conf"); got != wantResolv {
		t.Errorf("resolv.conf = %q, want %q", got, wantResolv)
	}
	if got := read("/etc/hostname"); got != "pod-a-host\n" {
		t.Errorf("hostname file = %q, want pod-a-host", got)
	}
	st := mustPodStatus(t, d, id).Status
	hosts := read("/etc/hosts")
	if !strings.Contains(hosts, "127.0.0.1\tlocalhost") || !strings.Contains(hosts, st.GetNetwork().GetIp()+"\tpod-a-host") {
		t.Errorf("hosts file lacks localhost or the pod's name on its IP %s:\n%s", st.GetNetwork().GetIp(), hosts)
	}
	var shm unix.Statfs_t
	if err := unix.Statfs(v.Files["/dev/shm"], &shm); err != nil || shm.Type != unix.TMPFS_MAGIC {
		t.Errorf("pod /dev/shm %s is not a tmpfs: %v", v.Files["/dev/shm"], err)
	} else if size := shm.Blocks * uint64(shm.Bsize); size != 64<<20 {
		t.Errorf("pod /dev/shm size = %d, want 64 MiB", size)
	}
	mustRemovePod(t, d, id)
}

// cgroupFile is a file of the pod cgroup at parent for the memory
// controller, on the host's cgroup version.
func memoryLimitFile(parent string) string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return filepath.Join("/sys/fs/cgroup", parent, "memory.max")
	}
	return filepath.Join("/sys/fs/cgroup/memory", parent, "memory.limit_in_bytes")
}

func TestPodCgroupGetsResourcesPlusOverheadAndGoesWithThePod(t *testing.T) {
	d := startPodDaemon(t)
	cfg := podConfig(d, "pod-a")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}
	cfg.Linux.Overhead = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20}
	id := mustRunPod(t, d, cfg)
	file := memoryLimitFile(cfg.Linux.CgroupParent)
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pod cgroup: %v", err)
	}
	if want := strconv.Itoa(80 << 20); strings.TrimSpace(string(got)) != want {
		t.Errorf("%s = %s, want %s (resources + overhead)", file, got, want)
	}
	if v := mustPodVerbose(t, d, id); v.Cgroup != cfg.Linux.CgroupParent {
		t.Errorf("pod cgroup = %q, want its cgroup_parent %q", v.Cgroup, cfg.Linux.CgroupParent)
	}
	mustRemovePod(t, d, id)
	if _, err := os.Stat(filepath.Dir(file)); !os.IsNotExist(err) {
		t.Errorf("pod cgroup %s is still there after RemovePodSandbox: %v", filepath.Dir(file), err)
	}
}

func TestUpdatePodSandboxResourcesResizesThePodCgroupAndIsKept(t *testing.T) {
	d := startPodDaemon(t)
	cfg := podConfig(d, "pod-a")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}
	id := mustRunPod(t, d, cfg)
	_, err := d.Runtime.UpdatePodSandboxResources(ctxFor(t), &runtimeapi.UpdatePodSandboxResourcesRequest{
		PodSandboxId: id[:12],
		Resources:    &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 112 << 20},
		Overhead:     &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20},
	})
	if err != nil {
		t.Fatalf("UpdatePodSandboxResources: %v", err)
	}
	file := memoryLimitFile(cfg.Linux.CgroupParent)
	if got, _ := os.ReadFile(file); strings.TrimSpace(string(got)) != strconv.Itoa(128<<20) {
		t.Errorf("%s = %s after the resize, want %d", file, got, 128<<20)
	}
	d.Kill(t)
	d.Restart(t)
	var v struct {
		Resources struct {
			Memory int64 `json:"memory_limit_in_bytes"`
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(mustPodStatus(t, d, id).Info["info"]), &v); err != nil {
		t.Fatal(err)
	}
	if v.Resources.Memory != 112<<20 {
		t.Errorf("pod resources after a restart: memory %d, want the resized %d", v.Resources.Memory, 112<<20)
	}
	mustStopPod(t, d, id)
	if _, err := d.Runtime.UpdatePodSandboxResources(ctxFor(t), &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("UpdatePodSandboxResources of a stopped pod: %v, want FailedPrecondition", err)
	}
	mustRemovePod(t, d, id)
}

func TestHostNamespacePodUsesTheHostsNamespacesAndName(t *testing.T) {
	d := startPodDaemon(t)
	cfg := hostNetwork(podConfig(d, "pod-host"))
	id := mustRunPod(t, d, cfg)
	for _, kind := range []string{"net", "ipc", "uts", "pid"} {
		if _, err := os.Stat(filepath.Join(pinDir(d, id), kind)); !os.IsNotExist(err) {
			t.Errorf("host-namespace pod has a %s pin: %v", kind, err)
		}
	}
	st := mustPodStatus(t, d, id)
	if got := st.Status.GetLinux().GetNamespaces().GetOptions(); got.GetNetwork() != runtimeapi.NamespaceMode_NODE ||
		got.GetIpc() != runtimeapi.NamespaceMode_NODE || got.GetPid() != runtimeapi.NamespaceMode_NODE {
		t.Errorf("status namespace options = %v, want NODE for network, IPC and PID", got)
	}
	host, _ := os.Hostname()
	v := mustPodVerbose(t, d, id)
	if b, _ := os.ReadFile(v.Files["/etc/hostname"]); string(b) != "pod-host-host\n" {
		t.Errorf("host-network pod's hostname file = %q, want its configured hostname", b)
	}
	if _, ok := v.Files["/dev/shm"]; ok {
		t.Errorf("host-IPC pod has its own /dev/shm %s", v.Files["/dev/shm"])
	}
	if out, _ := os.Hostname(); out != host {
		t.Errorf("the host was renamed to %q", out)
	}
	mustRemovePod(t, d, id)
}

func TestPodStatusAndListReportThePod(t *testing.T) {
	d := startPodDaemon(t)
	a := podConfig(d, "pod-a")
	a.Annotations = map[string]string{"note": "a"}
	a.Labels["tier"] = "front"
	idA := mustRunPod(t, d, a)
	idB := mustRunPod(t, d, podConfig(d, "pod-b"))
	mustStopPod(t, d, idB)

	st := mustPodStatus(t, d, idA)
	s := st.Status
	if s.Id != idA || s.State != runtimeapi.PodSandboxState_SANDBOX_READY || s.CreatedAt == 0 ||
		s.GetMetadata().GetName() != "pod-a" || s.Labels["tier"] != "front" || s.Annotations["note"] != "a" ||
		s.RuntimeHandler != "berth" || s.GetNetwork().GetIp() == "" {
		t.Errorf("PodSandboxStatus = %v", s)
	}
	if s := mustPodStatus(t, d, idB).Status; s.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("stopped pod state = %v, want NOTREADY", s.State)
	}

	ids := func(f *runtimeapi.PodSandboxFilter) string {
		t.Helper()
		resp, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range resp.Items {
			switch p.Id {
			case idA:
				out = append(out, "a")
			case idB:
				out = append(out, "b")
			default:
				out = append(out, p.Id)
			}
		}
		if len(out) == 2 && out[0] == "b" {
			out[0], out[1] = out[1], out[0]
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name   string
		filter *runtimeapi.PodSandboxFilter
		want   string
	}{
		{"no filter lists every pod", nil, "a,b"},
		{"an ID lists its pod", &runtimeapi.PodSandboxFilter{Id: idB}, "b"},
		{"an ID prefix lists its pod", &runtimeapi.PodSandboxFilter{Id: idA[:12]}, "a"},
		{"an unknown ID lists nothing", &runtimeapi.PodSandboxFilter{Id: "ffffnotapod"}, ""},
		{"state ready lists the ready pod", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}, "a"},
		{"state not ready lists the stopped pod", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}, "b"},
		{"a label selector lists the pods with all its labels", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "pod-a", "tier": "front"}}, "a"},
		{"a label selector no pod matches lists nothing", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "pod-a", "tier": "back"}}, ""},
	} {
		if got := ids(c.filter); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	mustRemovePod(t, d, idA)
	mustRemovePod(t, d, idB)
}

func TestPodIDPrefixesWorkAndAmbiguousOnesAreRefused(t *testing.T) {
	d := startPodDaemon(t)
	// Host-network pods until two IDs share their first digit.
	byFirst := map[byte]string{}
	var all []string
	var a, b string
	for i := 0; a == ""; i++ {
		id := mustRunPod(t, d, hostNetwork(podConfig(d, fmt.Sprintf("pod-%d", i))))
		all = append(all, id)
		if other, ok := byFirst[id[0]]; ok {
			a, b = other, id
		}
		byFirst[id[0]] = id
	}
	if got := mustPodStatus(t, d, a[:10]).Status.Id; got != a {
		t.Errorf("PodSandboxStatus of prefix %s = pod %s, want %s", a[:10], got, a)
	}
	_, err := d.Runtime.PodSandboxStatus(ctxFor(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: a[:1]})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("PodSandboxStatus of ambiguous prefix %s (pods %s and %s): %v, want InvalidArgument saying ambiguous", a[:1], a, b, err)
	}
	// Every call taking a pod ID refuses the ambiguous prefix, saying so,
	// and touches neither pod.
	ambiguous := a[:1]
	for name, call := range map[string]func() error{
		"StopPodSandbox": func() error {
			_, err := d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: ambiguous})
			return err
		},
		"RemovePodSandbox": func() error {
			_, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: ambiguous})
			return err
		},
		"UpdatePodSandboxResources": func() error {
			_, err := d.Runtime.UpdatePodSandboxResources(ctxFor(t), &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: ambiguous,
				Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512}})
			return err
		},
		"CreateContainer": func() error {
			_, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: ambiguous,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}}})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ambiguous") {
			t.Errorf("%s of ambiguous prefix %s: %v, want InvalidArgument saying ambiguous", name, ambiguous, err)
		}
	}
	for _, id := range []string{a, b} {
		if s := mustPodStatus(t, d, id).Status; s.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s is %v after calls with an ambiguous prefix, want READY", id, s.State)
		}
	}
	// A list filter is no place for an error: an ambiguous prefix selects
	// no pod, as in containerd.
	if resp, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: ambiguous}}); err != nil || len(resp.Items) != 0 {
		t.Errorf("ListPodSandbox by ambiguous prefix %s: %d pods, %v; want none", ambiguous, len(resp.GetItems()), err)
	}
	// A unique prefix works for every call and for the list filter.
	if _, err := d.Runtime.UpdatePodSandboxResources(ctxFor(t), &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: a[:10],
		Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512}}); err != nil {
		t.Errorf("UpdatePodSandboxResources of prefix %s: %v", a[:10], err)
	}
	if resp, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: a[:10]}}); err != nil || len(resp.Items) != 1 || resp.Items[0].Id != a {
		t.Errorf("ListPodSandbox by prefix %s: %v, %v; want pod %s alone", a[:10], resp.GetItems(), err, a)
	}
	if _, err := d.Runtime.PodSandboxStatus(ctxFor(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "notapod"}); status.Code(err) != codes.NotFound {
		t.Errorf("PodSandboxStatus of an unknown ID: %v, want NotFound", err)
	}
	mustStopPod(t, d, b[:10])
	for _, id := range all {
		mustRemovePod(t, d, id[:10])
	}
}

func TestStopAndRemovePodAreIdempotent(t *testing.T) {
	d := startPodDaemon(t)
	cfg := podConfig(d, "pod-a")
	id := mustRunPod(t, d, cfg)
	mustStopPod(t, d, id)
	mustStopPod(t, d, id)
	mustRemovePod(t, d, id)
	mustRemovePod(t, d, id)
	mustStopPod(t, d, id) // all reclaimed: no error, as the CRI asks
	if _, err := d.Runtime.PodSandboxStatus(ctxFor(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("PodSandboxStatus after removal: %v, want NotFound", err)
	}
	// Without a stop first, RemovePodSandbox stops the pod itself.
	id = mustRunPod(t, d, cfg)
	mustRemovePod(t, d, id)
	if _, err := os.Stat(filepath.Join(d.State, "pods", id)); !os.IsNotExist(err) {
		t.Errorf("pod state dir still there: %v", err)
	}
}

func TestSecondPodWithTheSameMetadataIsAlreadyExists(t *testing.T) {
	d := startPodDaemon(t)
	cfg := hostNetwork(podConfig(d, "pod-a"))
	id := mustRunPod(t, d, cfg)
	_, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("second RunPodSandbox with the same metadata: %v, want AlreadyExists", err)
	}
	mustRemovePod(t, d, id)
	// Once removed, the name is free again.
	mustRemovePod(t, d, mustRunPod(t, d, cfg))
}

func TestRunPodSandboxRefusesBadConfigsAndLeavesNothing(t *testing.T) {
	d := startPodDaemon(t)
	for _, c := range []struct {
		name    string
		edit    func(*runtimeapi.PodSandboxConfig)
		handler string
		want    codes.Code
	}{
		{name: "a config without metadata", edit: func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil }, want: codes.InvalidArgument},
		{name: "metadata without a name", edit: func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" }, want: codes.InvalidArgument},
		{name: "a sysctl of the whole host", edit: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.panic": "1"}
		}, want: codes.InvalidArgument},
		{name: "a sysctl that does not exist", edit: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net.ipv4.no_such_sysctl": "1"}
		}, want: codes.InvalidArgument},
		{name: "a network sysctl on the host network", edit: func(c *runtimeapi.PodSandboxConfig) {
			hostNetwork(c)
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, want: codes.InvalidArgument},
		{name: "PID mode TARGET for a pod", edit: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		}, want: codes.InvalidArgument},
		{name: "an unknown runtime handler", handler: "nosuch", want: codes.InvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := podConfig(d, "pod-bad")
			if c.edit != nil {
				c.edit(cfg)
			}
			_, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: c.handler})
			if status.Code(err) != c.want {
				t.Fatalf("RunPodSandbox: %v, want %v", err, c.want)
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(d.State, "pods"))
	if len(entries) > 0 {
		t.Errorf("refused pods left state dirs: %v", entries)
	}
	resp, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != 0 {
		t.Errorf("refused pods are listed: %v %v", resp, err)
	}
}

// childrenOf lists the processes whose parent is pid, zombies included,
// as their /proc stat lines.
func childrenOf(pid int) []string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, dir := range dirs {
		stat, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}

// waitGone waits until process pid has exited and been reaped.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is still there: %s", pid, stat)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunPodSandboxWithoutANetworkFailsAndLeavesNothing(t *testing.T) {
	d := harness.Start(t) // an empty CNI conf dir: the network is not ready
	_, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(d, "pod-a")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RunPodSandbox without a network: %v, want FailedPrecondition", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.State, "pods")); len(entries) > 0 {
		t.Errorf("the failed pod left state dirs: %v", entries)
	}
	// A host-network pod needs no CNI network.
	mustRemovePod(t, d, mustRunPod(t, d, hostNetwork(podConfig(d, "pod-host"))))
}

func TestPodAttemptsSharingACgroupParentKeepItUntilTheLastIsRemoved(t *testing.T) {
	d := startPodDaemon(t)
	first := podConfig(d, "pod-a")
	second := podConfig(d, "pod-a")
	second.Metadata.Attempt = 2
	id1 := mustRunPod(t, d, first)
	id2 := mustRunPod(t, d, second)
	dir := filepath.Dir(memoryLimitFile(first.Linux.CgroupParent))
	mustRemovePod(t, d, id1)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("removing attempt 1 removed the pod cgroup attempt 2 still uses: %v", err)
	}
	mustRemovePod(t, d, id2)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("pod cgroup %s is still there after the last attempt was removed: %v", dir, err)
	}
}

func TestManyPodsRunAndGoAtOnce(t *testing.T) {
	d := startPodDaemon(t)
	const n = 8
	ids := make([]string, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			cfg := podConfig(d, fmt.Sprintf("pod-%d", i))
			if i%2 == 1 {
				cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
			}
			resp, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err == nil {
				ids[i] = resp.PodSandboxId
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	resp, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != n {
		t.Errorf("ListPodSandbox = %d pods, %v; want %d", len(resp.GetItems()), err, n)
	}
	for _, id := range ids {
		go func() {
			_, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestRestartUndoesAPodHalfMadeWhenBerthdDied(t *testing.T) {
	d := startPodDaemon(t)
	d.Kill(t)
	// What a berthd killed inside RunPodSandbox leaves: a state dir with
	// the intent record, a pinned network namespace and a pod cgroup.
	id := strings.Repeat("ab", 32)
	nsDir := filepath.Join(d.State, "pods", id, "ns")
	if err := os.MkdirAll(nsDir, 0o711); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(nsDir, "net")
	if err := os.WriteFile(pin, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net="+pin, "true").CombinedOutput(); err != nil {
		t.Fatalf("pin a network namespace: %v\n%s", err, out)
	}
	parent := d.CgroupParent("half")
	cgDir := filepath.Dir(memoryLimitFile(parent))
	if err := os.MkdirAll(cgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	intent, _ := json.Marshal(map[string]any{
		"id": id, "namespaces": map[string]string{"net": pin},
		"cgroup": parent, "cgroup_created": true, "state": "ready",
	})
	if err := os.WriteFile(filepath.Join(d.State, "pods", id, "creating.json"), intent, 0o600); err != nil {
		t.Fatal(err)
	}

	d.Restart(t)

	if isNamespaceFile(pin) {
		t.Errorf("the half-made pod's network namespace is still pinned at %s", pin)
	}
	if _, err := os.Stat(filepath.Join(d.State, "pods", id)); !os.IsNotExist(err) {
		t.Errorf("the half-made pod's state dir is still there: %v", err)
	}
	if _, err := os.Stat(cgDir); !os.IsNotExist(err) {
		t.Errorf("the half-made pod's cgroup %s is still there: %v", cgDir, err)
	}
	resp, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != 0 {
		t.Errorf("a half-made pod is listed: %v %v", resp, err)
	}
}

// nsPid reads the NSpid line of a process: its pid in each PID namespace
// it is in, outermost first.
func nsPid(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return strings.Fields(f)
		}
	}
	t.Fatalf("no NSpid in /proc/%d/status", pid)
	return nil
}

func TestPodPIDModePodRunsAReaperAsPID1UntilStop(t *testing.T) {
	d := startPodDaemon(t)
	cfg := podConfig(d, "pod-a")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	id := mustRunPod(t, d, cfg)
	v := mustPodVerbose(t, d, id)
	if v.InitPid == 0 {
		t.Fatal("pod in PID mode POD reports no init process")
	}
	if got := nsPid(t, v.InitPid); len(got) != 2 || got[1] != "1" {
		t.Errorf("berth-podinit NSpid = %v, want PID 1 in a namespace of its own", got)
	}
	pin := filepath.Join(pinDir(d, id), "pid")
	if nsInode(t, pin) != nsInode(t, fmt.Sprintf("/proc/%d/ns/pid", v.InitPid)) {
		t.Errorf("pid pin %s is not berth-podinit's PID namespace", pin)
	}
	if nsInode(t, fmt.Sprintf("/proc/%d/ns/net", v.InitPid)) != nsInode(t, filepath.Join(pinDir(d, id), "net")) {
		t.Errorf("berth-podinit is not in the pod's network namespace")
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", v.InitPid))
	if !strings.Contains(string(cg), cfg.Linux.CgroupParent) {
		t.Errorf("berth-podinit is not in the pod cgroup %s:\n%s", cfg.Linux.CgroupParent, cg)
	}
	// It reaps: an orphan left in its namespace does not stay a zombie.
	mustNsenter(t, "--pid="+pin, "--", "sh", "-c", "sh -c 'sleep 0.2 &' ; exit 0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := childrenOf(v.InitPid)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth-podinit has not reaped its children: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustStopPod(t, d, id)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", v.InitPid)); !os.IsNotExist(err) {
		t.Errorf("berth-podinit %d is still there after StopPodSandbox", v.InitPid)
	}
	if s := mustPodStatus(t, d, id).Status; s.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("state after stop = %v", s.State)
	}
	mustRemovePod(t, d, id)
}

func TestPodsSurviveBerthdSIGKILLAndRestart(t *testing.T) {
	d := startPodDaemon(t)
	pidCfg := podConfig(d, "pod-pid")
	pidCfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	ready := mustRunPod(t, d, podConfig(d, "pod-ready"))
	withInit := mustRunPod(t, d, pidCfg)
	stopped := mustRunPod(t, d, podConfig(d, "pod-stopped"))
	mustStopPod(t, d, stopped)
	initPid := mustPodVerbose(t, d, withInit).InitPid
	netPin := filepath.Join(pinDir(d, ready), "net")
	netIno := nsInode(t, netPin)

	d.Kill(t)
	d.Restart(t)

	want := map[string]runtimeapi.PodSandboxState{
		ready:    runtimeapi.PodSandboxState_SANDBOX_READY,
		withInit: runtimeapi.PodSandboxState_SANDBOX_READY,
		stopped:  runtimeapi.PodSandboxState_SANDBOX_NOTREADY,
	}
	resp, err := d.Runtime.ListPodSandbox(ctxFor(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Items) != len(want) {
		t.Errorf("after restart %d pods are listed, want %d", len(resp.Items), len(want))
	}
	for _, p := range resp.Items {
		if w, ok := want[p.Id]; !ok || p.State != w {
			t.Errorf("after restart pod %s (%s) is %v, want %v", p.Id, p.GetMetadata().GetName(), p.State, w)
		}
	}
	if nsInode(t, netPin) != netIno {
		t.Errorf("network namespace pin of pod %s changed across the restart", ready)
	}
	if got := mustPodVerbose(t, d, withInit).InitPid; got != initPid {
		t.Errorf("berth-podinit after restart = %d, want %d", got, initPid)
	}
	// The same metadata is still taken.
	if _, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(d, "pod-ready")}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("RunPodSandbox of a recovered pod's metadata: %v, want AlreadyExists", err)
	}
	mustStopPod(t, d, withInit)
	// berthd is no longer its parent: the host's init reaps it, in its
	// own time.
	waitGone(t, initPid)
	for id := range want {
		mustRemovePod(t, d, id)
	}
}

// The tests below run containers in pods and look from inside them.

// pullPodTestImage serves busybox from a loopback registry and pulls it
// into d, returning its reference.
func pullPodTestImage(t *testing.T, d *harness.Daemon) string {
	t.Helper()
	if err := images.Prepare(); err != nil {
		t.Fatal(err)
	}
	r := registry.Start(t)
	ref := r.Push(t, "library/busybox:pods", images.Busybox())
	if _, err := d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	return ref
}

// startPodContainer creates and starts a container named name in pod
// podID running cmd; pidMode is its PID namespace mode.
func startPodContainer(t *testing.T, d *harness.Daemon, podID string, pod *runtimeapi.PodSandboxConfig, name, image string, pidMode runtimeapi.NamespaceMode, cmd ...string) string {
	t.Helper()
	resp, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: podID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  cmd,
			Linux: &runtimeapi.LinuxContainerConfig{
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{
						Network: pod.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork(),
						Ipc:     pod.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc(),
						Pid:     pidMode,
					},
				},
			},
		},
		SandboxConfig: pod,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := d.Runtime.StartContainer(ctxFor(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return resp.ContainerId
}

// podExec runs cmd in container id and returns its exit code and output.
func podExec(t *testing.T, d *harness.Daemon, id string, cmd ...string) (int32, string) {
	t.Helper()
	resp, err := d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 60})
	if err != nil {
		t.Fatalf("ExecSync %v in %s: %v", cmd, id, err)
	}
	return resp.ExitCode, strings.TrimSpace(string(resp.Stdout) + string(resp.Stderr))
}

// mustPodExec runs cmd in container id, fails the test unless it exits
// 0, and returns its output.
func mustPodExec(t *testing.T, d *harness.Daemon, id string, cmd ...string) string {
	t.Helper()
	code, out := podExec(t, d, id, cmd...)
	if code != 0 {
		t.Fatalf("ExecSync %v in %s exited %d: %s", cmd, id, code, out)
	}
	return out
}

// nsLink is how readlink shows the namespace at path ("net:[4026532...]").
func nsLink(t *testing.T, kind, path string) string {
	return fmt.Sprintf("%s:[%d]", kind, nsInode(t, path))
}

// serveHTTP is a container command: busybox httpd answering body on
// 127.0.0.1:8080, with body also written to /dev/shm/marker.
func serveHTTP(body string) []string {
	return []string{"sh", "-c", "echo " + body + " > /dev/shm/marker && mkdir -p /tmp/www && echo " + body +
		" > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"}
}

// fetchLocal is an exec command fetching 127.0.0.1:8080, retrying while
// the server starts. (Debian's busybox wget crashes with -T.)
var fetchLocal = []string{"sh", "-c",
	"for i in $(seq 100); do wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1"}

// podHandlers are the runtime handlers the pod-sharing tests run under:
// Berth's own runtime and runc joining the same pinned namespaces. (crun
// refuses this host's hybrid cgroup layout.)
var podHandlers = []string{"berth", "runc"}

// forEachPodHandler runs fn as a subtest per runtime handler, on one
// daemon with the busybox image pulled.
func forEachPodHandler(t *testing.T, fn func(t *testing.T, d *harness.Daemon, image, handler string)) {
	d := startPodDaemon(t)
	image := pullPodTestImage(t, d)
	for _, h := range podHandlers {
		t.Run(h, func(t *testing.T) { fn(t, d, image, h) })
	}
}

func mustRunPodWith(t *testing.T, d *harness.Daemon, cfg *runtimeapi.PodSandboxConfig, handler string) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox %s (handler %q): %v", cfg.GetMetadata().GetName(), handler, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_, _ = d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
	})
	return resp.PodSandboxId
}

func TestContainersOfAPodShareNetworkIPCAndHostnameButNotWithOtherPods(t *testing.T) {
	forEachPodHandler(t, testContainersOfAPodShareNamespaces)
}

func testContainersOfAPodShareNamespaces(t *testing.T, d *harness.Daemon, image, handler string) {
	cfgA, cfgB := podConfig(d, handler+"-pod-a"), podConfig(d, handler+"-pod-b")
	cfgA.Hostname, cfgB.Hostname = "pod-a-host", "pod-b-host"
	podA, podB := mustRunPodWith(t, d, cfgA, handler), mustRunPodWith(t, d, cfgB, handler)
	server := startPodContainer(t, d, podA, cfgA, "server", image, runtimeapi.NamespaceMode_CONTAINER, serveHTTP("from-pod-a")...)
	client := startPodContainer(t, d, podA, cfgA, "client", image, runtimeapi.NamespaceMode_CONTAINER, "sleep", "3600")
	other := startPodContainer(t, d, podB, cfgB, "other", image, runtimeapi.NamespaceMode_CONTAINER, "sleep", "3600")

	if got := mustPodExec(t, d, client, fetchLocal...); got != "from-pod-a" {
		t.Errorf("client fetched %q from 127.0.0.1:8080 in its pod, want from-pod-a", got)
	}
	if got := mustPodExec(t, d, client, "cat", "/dev/shm/marker"); got != "from-pod-a" {
		t.Errorf("client reads %q in the server's /dev/shm/marker, want from-pod-a", got)
	}
	for _, kind := range []string{"net", "ipc", "uts"} {
		want := nsLink(t, kind, filepath.Join(pinDir(d, podA), kind))
		for _, c := range []string{server, client} {
			if got := mustPodExec(t, d, c, "readlink", "/proc/self/ns/"+kind); got != want {
				t.Errorf("container %s %s namespace = %s, want the pod's pinned %s", c, kind, got, want)
			}
		}
		if got := mustPodExec(t, d, other, "readlink", "/proc/self/ns/"+kind); got == want {
			t.Errorf("a container of pod b is in pod a's %s namespace", kind)
		}
	}
	for _, c := range []string{server, client} {
		if got := mustPodExec(t, d, c, "hostname"); got != "pod-a-host" {
			t.Errorf("hostname in pod a's container %s = %q, want pod-a-host", c, got)
		}
	}
	if got := mustPodExec(t, d, other, "hostname"); got != "pod-b-host" {
		t.Errorf("hostname in pod b = %q, want pod-b-host", got)
	}
	// Pod b reaches nothing on its loopback and sees no /dev/shm/marker.
	if code, out := podExec(t, d, other, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"); code == 0 {
		t.Errorf("pod b fetched %q from pod a's loopback server", out)
	}
	if code, out := podExec(t, d, other, "cat", "/dev/shm/marker"); code == 0 {
		t.Errorf("pod b reads pod a's /dev/shm/marker: %q", out)
	}
	mustRemovePod(t, d, podA)
	mustRemovePod(t, d, podB)
}

func TestPodPIDModePodShowsEveryContainersProcesses(t *testing.T) {
	forEachPodHandler(t, testPodPIDModePodShowsEveryProcess)
}

func testPodPIDModePodShowsEveryProcess(t *testing.T, d *harness.Daemon, image, handler string) {
	cfg := podConfig(d, handler+"-pod-pid")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	pod := mustRunPodWith(t, d, cfg, handler)
	first := startPodContainer(t, d, pod, cfg, "first", image, runtimeapi.NamespaceMode_POD, "sleep", "1111")
	second := startPodContainer(t, d, pod, cfg, "second", image, runtimeapi.NamespaceMode_POD, "sleep", "2222")
	for _, c := range []string{first, second} {
		ps := mustPodExec(t, d, c, "ps", "-o", "pid,args")
		for _, want := range []string{"sleep 1111", "sleep 2222"} {
			if !strings.Contains(ps, want) {
				t.Errorf("ps in container %s does not show %q:\n%s", c, want, ps)
			}
		}
		if init := mustPodExec(t, d, c, "cat", "/proc/1/cmdline"); !strings.HasPrefix(init, "berth-podinit") {
			t.Errorf("PID 1 in container %s is %q, want berth-podinit", c, init)
		}
	}
	// A container in PID mode CONTAINER of the same pod sees only itself.
	alone := startPodContainer(t, d, pod, cfg, "alone", image, runtimeapi.NamespaceMode_CONTAINER, "sleep", "3333")
	if ps := mustPodExec(t, d, alone, "ps", "-o", "pid,args"); strings.Contains(ps, "sleep 1111") {
		t.Errorf("a PID mode CONTAINER container sees the pod's processes:\n%s", ps)
	}
	mustRemovePod(t, d, pod)
}

func TestHostNetworkPodContainersSeeTheHostsInterfaces(t *testing.T) {
	forEachPodHandler(t, testHostNetworkPodSeesTheHostsInterfaces)
}

func testHostNetworkPodSeesTheHostsInterfaces(t *testing.T, d *harness.Daemon, image, handler string) {
	cfg := hostNetwork(podConfig(d, handler+"-pod-host"))
	pod := mustRunPodWith(t, d, cfg, handler)
	c := startPodContainer(t, d, pod, cfg, "c", image, runtimeapi.NamespaceMode_NODE, "sleep", "3600")
	ifaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	inside := mustPodExec(t, d, c, "cat", "/proc/net/dev")
	for _, i := range ifaces {
		if !strings.Contains(inside, i.Name()+":") {
			t.Errorf("host interface %s is not in the host-network container's /proc/net/dev:\n%s", i.Name(), inside)
		}
	}
	if got := mustPodExec(t, d, c, "readlink", "/proc/self/ns/net"); got != nsLink(t, "net", "/proc/self/ns/net") {
		t.Errorf("host-network container's network namespace = %s, want the host's", got)
	}
	mustRemovePod(t, d, pod)
}

// cgroupDirOf returns the directory of the cgroup of process pid for a v1
// controller, or of the v2 hierarchy when controller is "".
func cgroupDirOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2]
			}
		}
	}
	t.Fatalf("process %d has no %q cgroup:\n%s", pid, controller, b)
	return ""
}

// containerHostPid finds the host pid of the process running args in
// container cgroup dir below the memory (v1) or unified (v2) hierarchy.
func cgroupProcs(t *testing.T, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	return pids
}

func TestContainerCgroupNestsUnderThePodCgroup(t *testing.T) {
	forEachPodHandler(t, testContainerCgroupNests)
}

func testContainerCgroupNests(t *testing.T, d *harness.Daemon, image, handler string) {
	cfg := podConfig(d, handler+"-pod-cg")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20}
	pod := mustRunPodWith(t, d, cfg, handler)
	c := startPodContainer(t, d, pod, cfg, "c", image, runtimeapi.NamespaceMode_CONTAINER, "sleep", "3600")

	var st unix.Statfs_t
	v2 := unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	root, controller := "/sys/fs/cgroup/memory", "memory"
	if v2 {
		root, controller = "/sys/fs/cgroup", ""
	}
	want := filepath.Join(cfg.Linux.CgroupParent, c)
	procs := cgroupProcs(t, filepath.Join(root, want))
	if len(procs) == 0 {
		t.Fatalf("container cgroup %s under the pod cgroup has no process", filepath.Join(root, want))
	}
	for _, pid := range procs {
		if got := cgroupDirOf(t, pid, controller); got != want {
			t.Errorf("container process %d is in cgroup %s, want %s", pid, got, want)
		}
	}
	// The pod cgroup's limit holds over the container's.
	limitFile := memoryLimitFile(cfg.Linux.CgroupParent)
	if b, _ := os.ReadFile(limitFile); strings.TrimSpace(string(b)) != strconv.Itoa(96<<20) {
		t.Errorf("pod cgroup limit %s = %s, want %d", limitFile, b, 96<<20)
	}
	mustRemovePod(t, d, pod)
	if _, err := os.Stat(filepath.Join(root, cfg.Linux.CgroupParent)); !os.IsNotExist(err) {
		t.Errorf("pod cgroup is still there after RemovePodSandbox: %v", err)
	}
}

func TestRunningPodsSurviveBerthdSIGKILL(t *testing.T) {
	forEachPodHandler(t, testRunningPodSurvivesBerthdSIGKILL)
}

func testRunningPodSurvivesBerthdSIGKILL(t *testing.T, d *harness.Daemon, image, handler string) {
	cfg := podConfig(d, handler+"-pod-a")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	pod := mustRunPodWith(t, d, cfg, handler)
	server := startPodContainer(t, d, pod, cfg, "server", image, runtimeapi.NamespaceMode_POD, serveHTTP("still-here")...)
	client := startPodContainer(t, d, pod, cfg, "client", image, runtimeapi.NamespaceMode_POD, "sleep", "3600")
	mustPodExec(t, d, client, fetchLocal...)
	initPid := mustPodVerbose(t, d, pod).InitPid

	d.Kill(t)
	d.Restart(t)

	if s := mustPodStatus(t, d, pod).Status; s.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod after restart is %v, want READY", s.State)
	}
	if got := mustPodExec(t, d, client, fetchLocal...); got != "still-here" {
		t.Errorf("after restart the client fetched %q, want still-here", got)
	}
	if ps := mustPodExec(t, d, client, "ps", "-o", "args"); !strings.Contains(ps, "httpd") {
		t.Errorf("after restart the client does not see the server's process:\n%s", ps)
	}
	// A new container joins the recovered pod's namespaces.
	late := startPodContainer(t, d, pod, cfg, "late", image, runtimeapi.NamespaceMode_POD, "sleep", "3600")
	if got := mustPodExec(t, d, late, fetchLocal...); got != "still-here" {
		t.Errorf("a container created after the restart fetched %q, want still-here", got)
	}
	mustStopPod(t, d, pod)
	resp, err := d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.Containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("container %s (%s) is %v after StopPodSandbox, want EXITED", c.Id, c.GetMetadata().GetName(), c.State)
		}
	}
	waitGone(t, initPid)
	mustRemovePod(t, d, pod)
	_ = server
}

// systemdRunning is how the cgroup library (and runc) tell that systemd
// is the init system.
func systemdRunning() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func TestSystemdCgroupDriverIsUsedWhereSystemdRunsAndRefusedElsewhere(t *testing.T) {
	if systemdRunning() {
		d := harness.Start(t, harness.WithConfig(func(c *config.Config) { c.Runtime.CgroupDriver = "systemd" }))
		cfg := hostNetwork(podConfig(d, "pod-systemd"))
		id := mustRunPod(t, d, cfg)
		if v := mustPodVerbose(t, d, id); v.Cgroup != cfg.Linux.CgroupParent {
			t.Errorf("pod cgroup %q, want the slice %q", v.Cgroup, cfg.Linux.CgroupParent)
		}
		mustRemovePod(t, d, id)
		return
	}
	// Here (as on this project's test machine) systemd is not PID 1:
	// berthd must refuse the driver at start, saying why, not fail each
	// pod later.
	harness.RequireRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte("[runtime]\ncgroup_driver = \"systemd\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A berthd that wrongly starts would serve forever.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, harness.Binary(t), "--config", path, "--socket", filepath.Join(dir, "s.sock"),
		"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "systemd is not running") {
		t.Fatalf("berthd with the systemd cgroup driver where systemd does not run: %v\n%s", err, out)
	}
}
