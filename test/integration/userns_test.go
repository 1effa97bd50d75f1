package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/nsowner"
	"github.com/berth-runtime/berth/test/registry"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodUserNamespaceOptionsAreCheckedAsTheCRISays(t *testing.T) {
	d := startPodDaemon(t)
	one := func(container, host uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: container, HostId: host, Length: 65536}}
	}
	for _, tc := range []struct {
		name   string
		userns *runtimeapi.UserNamespace
		want   codes.Code
	}{
		{"node", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, codes.OK},
		{"unmapped-root", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one(1, 100000), Gids: one(0, 100000)}, codes.InvalidArgument},
		{"two-mappings", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: append(one(0, 100000), one(65536, 300000)...), Gids: one(0, 100000)}, codes.InvalidArgument},
		{"container-mode", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, codes.InvalidArgument},
		{"target-mode", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, codes.InvalidArgument},
		{"pod-on-the-host-network", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one(0, 100000), Gids: one(0, 100000)}, codes.InvalidArgument},
		// Unimplemented on crun (see the loop).
		{"pod", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one(0, 100000), Gids: one(0, 100000)}, codes.OK},
	} {
		for _, h := range append(handlers, "crun") {
			want := tc.want
			if tc.name == "pod" && h == "crun" {
				// Not tested with crun: refused, never run in the host's
				// user namespace.
				want = codes.Unimplemented
			}
			cfg := podConfig(d, "userns-"+tc.name+"-"+h)
			if tc.name != "pod" {
				cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			}
			cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = tc.userns
			resp, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: h})
			if status.Code(err) != want {
				t.Errorf("%s on %s: RunPodSandbox: %v, want %v", tc.name, h, err, want)
			}
			if err == nil {
				if _, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
					t.Errorf("RemovePodSandbox: %v", err)
				}
			}
		}
	}
	resp, err := d.Runtime.Status(ctxFor(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range resp.GetRuntimeHandlers() {
		if want := h.GetName() != "crun"; h.GetFeatures().GetUserNamespaces() != want {
			t.Errorf("handler %q reports user_namespaces %v, want %v", h.GetName(), h.GetFeatures().GetUserNamespaces(), want)
		}
	}
}

// usernsPodsEnv lets berthd run pods of user namespace mode POD on a
// handler that cannot run containers in them (sandbox.UsernsPodsEnv).
const usernsPodsEnv = "BERTH_TEST_USERNS_PODS=1"

// podUserns is a user namespace of mode POD mapping 0-65535 to 65536 IDs
// from hostUID and hostGID.
func podUserns(hostUID, hostGID uint32) *runtimeapi.UserNamespace {
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
		Uids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: hostUID, Length: 65536}},
		Gids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: hostGID, Length: 65536}}}
}

// assertUsernsOwnsThePods checks that the user namespace pinned in dir
// owns the pod's other pinned namespaces (NS_GET_USERNS).
func assertUsernsOwnsThePods(t *testing.T, dir string) {
	t.Helper()
	for _, k := range []string{"net", "ipc", "uts", "pid"} {
		path := filepath.Join(dir, k)
		if _, err := os.Stat(path); os.IsNotExist(err) && k == "pid" {
			continue
		}
		if owned, err := nsowner.Owns(filepath.Join(dir, "user"), path); err != nil || !owned {
			t.Errorf("the pod's %s namespace is not owned by the pod's user namespace (%v)", k, err)
		}
	}
}

func TestAUserNamespacePodIsMappedOwnsItsNamespacesSurvivesARestartAndLeavesNothing(t *testing.T) {
	d := startPodDaemon(t)
	d.Stop(t)
	d.Env = []string{usernsPodsEnv}
	d.Restart(t)
	const hostUID, hostGID = 7 << 16, 8 << 16
	for _, pid := range []runtimeapi.NamespaceMode{runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD} {
		t.Run("PID mode "+pid.String(), func(t *testing.T) {
			cfg := podConfig(d, "userns-"+strings.ToLower(pid.String()))
			cfg.Linux.SecurityContext.NamespaceOptions.Pid = pid
			cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns(hostUID, hostGID)
			cfg.Linux.Sysctls = map[string]string{
				"net.ipv4.ip_unprivileged_port_start": "80",
				"kernel.shmmni":                       "1234",
			}
			// On crun, which cannot run containers in it: only the test
			// knob makes such a pod there.
			id := mustRunPodWith(t, d, cfg, "crun")
			dir := pinDir(d, id)
			check := func(t *testing.T) {
				st := mustPodStatus(t, d, id)
				if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Status.GetNetwork().GetIp() == "" {
					t.Errorf("pod is %v with address %q, want READY with one", st.Status.State, st.Status.GetNetwork().GetIp())
				}
				user := "--user=" + filepath.Join(dir, "user")
				for file, want := range map[string]string{
					"uid_map": fmt.Sprintf("0 %d 65536", hostUID),
					"gid_map": fmt.Sprintf("0 %d 65536", hostGID),
				} {
					got := strings.Join(strings.Fields(mustNsenter(t, user, "cat", "/proc/self/"+file)), " ")
					if got != want {
						t.Errorf("%s of the pod's user namespace: %q, want %q", file, got, want)
					}
				}
				assertUsernsOwnsThePods(t, dir)
				for _, c := range []struct{ ns, cmd, want string }{
					{"uts", "hostname", cfg.Hostname},
					{"net", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start", "80"},
					{"ipc", "cat /proc/sys/kernel/shmmni", "1234"},
				} {
					args := append([]string{"--" + c.ns + "=" + filepath.Join(dir, c.ns)}, strings.Fields(c.cmd)...)
					if got := mustNsenter(t, args...); got != c.want {
						t.Errorf("%s in the pod = %q, want %q", c.cmd, got, c.want)
					}
				}
				if pid == runtimeapi.NamespaceMode_POD {
					v := mustPodVerbose(t, d, id)
					status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", v.InitPid))
					if want := fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", hostUID, hostUID, hostUID, hostUID); !strings.Contains(string(status), want) {
						t.Errorf("berth-podinit %d does not run as the pod's root, uid %d on the host:\n%s", v.InitPid, hostUID, status)
					}
				}
			}
			check(t)
			// Containers cannot run in it yet: refused, nothing made.
			_, err := d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: id, SandboxConfig: cfg,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}}})
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("CreateContainer in a user namespace pod: %v, want Unimplemented", err)
			}
			d.Kill(t)
			d.Restart(t)
			t.Run("after a berthd restart", check)
			mustRemovePod(t, d, id)
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the pod's pins are still there after removal: %v", err)
			}
		})
	}
}

func TestHostUsersFalseRunsTheContainersAsTheMappedRoot(t *testing.T) {
	d := startPodDaemon(t)
	// The container's root, uid H on the host, reaches its rootfs by path
	// through the state dir, which this test's dir holds.
	if err := os.Chmod(d.Dir, 0o711); err != nil {
		t.Fatal(err)
	}
	reg := registry.Start(t)
	ref := reg.Push(t, "library/busybox:latest", images.Busybox())
	mustPullImage(t, d, ref)
	for i, h := range handlers {
		t.Run(h, func(t *testing.T) { hostUsersFalse(t, d, ref, h, uint32(11+2*i)<<16, uint32(12+2*i)<<16) })
	}
}

func hostUsersFalse(t *testing.T, d *harness.Daemon, ref, handler string, hostUID, hostGID uint32) {
	cfg := podConfig(d, "host-users-false-"+handler)
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns(hostUID, hostGID)
	e := &ctrEnv{d: d, image: ref, pod: mustRunPodWith(t, d, cfg, handler), podCfg: cfg}
	// A hostPath, writable by anyone, below a dir the container's root
	// may not traverse, as kubelet's volume dirs are.
	volume := filepath.Join(t.TempDir(), "private", "volume")
	if err := os.MkdirAll(volume, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(volume, 0o777); err != nil {
		t.Fatal(err)
	}
	// A volume kubelet gives the pod's mappings: idmapped, so the host's
	// root-owned files are the container root's, and its writes root's.
	mapped := filepath.Join(t.TempDir(), "private", "mapped")
	if err := os.MkdirAll(mapped, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mapped, "host-file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ccfg := e.config("c", "sleep 100000")
	ccfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: volume}, {ContainerPath: "/mapped", HostPath: mapped,
		UidMappings: cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Uids,
		GidMappings: cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Gids}}
	ccfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"SYS_TIME"}}}}
	id := e.mustRun(t, ccfg)

	check := func(t *testing.T) {
		out := e.mustExec(t, id, "sh", "-c", `cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g
stat -c %u:%g /bin/busybox /etc/hosts /
echo pod > /etc/hosts && echo hosts writable
touch /data/by-root-$$ && echo volume writable
# busybox's date exits 0 when it cannot set the clock: read its complaint.
date -s 2001-01-01 2>&1 >/dev/null | grep -q 'not permitted' && echo clock refused || echo clock set`)
		want := fmt.Sprintf("0 %d 65536\n0 %d 65536\n0\n0\n0:0\n0:0\n0:0\nhosts writable\nvolume writable\nclock refused\n", hostUID, hostGID)
		if got := strings.Join(strings.Fields(out), " "); !strings.HasPrefix(got, strings.Join(strings.Fields(want), " ")) {
			t.Errorf("inside the container:\n%s\nwant it to start with:\n%s", out, want)
		}
		pid := containerPid(t, e, id)
		var pinned, joined unix.Stat_t
		_ = unix.Stat(filepath.Join(pinDir(d, e.pod), "user"), &pinned)
		_ = unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &joined)
		if pinned.Ino == 0 || pinned.Ino != joined.Ino {
			t.Errorf("the container is not in its pod's user namespace")
		}
		for _, k := range []string{"pid", "mnt"} {
			if owned, err := nsowner.Owns(filepath.Join(pinDir(d, e.pod), "user"), fmt.Sprintf("/proc/%d/ns/%s", pid, k)); err != nil || !owned {
				t.Errorf("the container's %s namespace is not owned by its pod's user namespace (%v)", k, err)
			}
		}
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if want := fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", hostUID, hostUID, hostUID, hostUID); !strings.Contains(string(status), want) {
			t.Errorf("the container's process does not run as uid %d on the host:\n%s", hostUID, status)
		}
		written, _ := filepath.Glob(filepath.Join(volume, "by-root-*"))
		if len(written) == 0 {
			t.Fatalf("nothing written to the hostPath")
		}
		for _, f := range written {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != hostUID || st.Gid != hostGID {
				t.Errorf("%s, written by the container's root, is owned by %d:%d on the host, want %d:%d", f, st.Uid, st.Gid, hostUID, hostGID)
			}
		}
		out = e.mustExec(t, id, "sh", "-c", "stat -c %u:%g /mapped /mapped/host-file; echo new > /mapped/by-root-$$ && echo mapped writable")
		if got := strings.Join(strings.Fields(out), " "); got != "0:0 0:0 mapped writable" {
			t.Errorf("the idmapped volume inside: %q, want its root-owned files the container root's, and writable", out)
		}
		written, _ = filepath.Glob(filepath.Join(mapped, "by-root-*"))
		for _, f := range written {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
				t.Errorf("%s, written by the container's root to an idmapped volume, is owned by %d:%d on the host, want 0:0", f, st.Uid, st.Gid)
			}
		}
		if len(written) == 0 {
			t.Errorf("nothing written to the idmapped volume")
		}
		if time.Now().Year() < 2020 {
			t.Errorf("the container, holding CAP_SYS_TIME in its user namespace only, set the host's clock")
		}
	}
	check(t)
	d.Kill(t)
	d.Restart(t)
	t.Run("after a berthd restart", check)
}

func TestIDMappedMountsAreRefusedWhereBerthCannotMakeThemAsAsked(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// forEachHandler's pod is on the host's network and user
		// namespace.
		m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
		cfg := e.config("c", "true")
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: t.TempDir(), UidMappings: m, GidMappings: m}}
		_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("an idmapped mount in a pod without its own user namespace: %v, want InvalidArgument", err)
		}
	})
}
