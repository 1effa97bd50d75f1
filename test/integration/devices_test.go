package integration

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestDeviceCgroupAllowsOnlyTheStandardSetAndConfiguredDevices(t *testing.T) {
	// A c 1:1 (/dev/mem) node on the host: the host may have no /dev/mem,
	// and opening the node there fails with ENXIO, not with EPERM.
	hostDir := t.TempDir()
	mem := filepath.Join(hostDir, "mem")
	if err := unix.Mknod(mem, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
		t.Fatal(err)
	}
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		script := `for d in null zero full tty random urandom ptmx; do [ -c /dev/$d ] || echo missing-$d; done
mknod /tmp/blk b 7 0 2>/dev/null && echo made-block && head -c1 /tmp/blk 2>&1 | grep -o 'Operation not permitted'
head -c1 /host/mem 2>&1 | grep -o 'Operation not permitted'
head -c1 /dev/urandom | wc -c
echo hi > /dev/mydev && echo mydev-writable
ls -l /dev/mydev | cut -c1`
		cfg := e.config("devices", script)
		cfg.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/mydev", Permissions: "rwm"}}
		cfg.Mounts = []*runtimeapi.Mount{{HostPath: hostDir, ContainerPath: "/host", Readonly: true}}
		st, out := e.runToExit(t, cfg)
		// runc appends "mknod of any char or block node" to every spec's
		// rules, so there the block node is made, but not opened.
		want := "Operation not permitted\n1\nmydev-writable\nc\n"
		if handlerOf(t) == "runc" {
			want = "made-block\nOperation not permitted\n" + want
		}
		if st.ExitCode != 0 || out != want {
			t.Errorf("exit %d, output %q, want %q", st.ExitCode, out, want)
		}
		if strings.Contains(out, "missing-") {
			t.Errorf("a standard device node is missing: %q", out)
		}
	})
}
