package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// dirWithSubmount is a host directory holding a tmpfs at sub/, unmounted
// when t ends.
func dirWithSubmount(t *testing.T) string {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	return dir
}

func TestRecursiveReadOnlyBindMakesItsSubmountsReadOnly(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		dir := dirWithSubmount(t)
		script := "touch /data/top 2>/dev/null && echo top-written; touch /data/sub/file 2>/dev/null && echo sub-written"
		for _, tc := range []struct {
			name      string
			recursive bool
			want      string
		}{
			// A plain read-only bind leaves the submount writable: the
			// reason the recursive option exists.
			{"ro", false, "sub-written\n"},
			{"rro", true, ""},
		} {
			cfg := e.config(tc.name, script)
			cfg.Mounts = []*runtimeapi.Mount{{HostPath: dir, ContainerPath: "/data", Readonly: true, RecursiveReadOnly: tc.recursive}}
			st, out := e.runToExit(t, cfg)
			if out != tc.want {
				t.Errorf("%s: exit %d, %q, want %q", tc.name, st.ExitCode, out, tc.want)
			}
		}
		for _, tc := range []struct {
			name  string
			mount *runtimeapi.Mount
		}{
			{"rro-writable", &runtimeapi.Mount{HostPath: dir, ContainerPath: "/data", RecursiveReadOnly: true}},
			{"rro-slave", &runtimeapi.Mount{HostPath: dir, ContainerPath: "/data", Readonly: true, RecursiveReadOnly: true,
				Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}},
		} {
			cfg := e.config(tc.name, "true")
			cfg.Mounts = []*runtimeapi.Mount{tc.mount}
			_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: CreateContainer: %v, want InvalidArgument", tc.name, err)
			}
		}
	})
}

func TestRecursiveReadOnlyIsRefusedByAHandlerWithoutIt(t *testing.T) {
	// Debian's crun 1.8 cannot say it supports "rro", so Berth does not
	// hand it one to ignore.
	d := harness.Start(t)
	reg := registry.Start(t)
	ref := reg.Push(t, "library/busybox:latest", images.Busybox())
	if _, err := d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	dir := dirWithSubmount(t)
	e := &ctrEnv{d: d, image: ref}
	cfg := podConfig(d, "rro-crun")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.LogDirectory = t.TempDir()
	resp, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "crun"})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		_, _ = d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
	})
	e.pod, e.podCfg = resp.PodSandboxId, cfg
	ccfg := e.config("rro", "true")
	ccfg.Mounts = []*runtimeapi.Mount{{HostPath: dir, ContainerPath: "/data", Readonly: true, RecursiveReadOnly: true}}
	_, err = d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: ccfg, SandboxConfig: cfg})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateContainer with a recursive read-only mount on crun: %v, want InvalidArgument", err)
	}
}
