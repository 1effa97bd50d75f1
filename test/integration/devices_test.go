package integration

import (
	"os"
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

func TestReadOnlyDevicesCannotBeWrittenAndFuseIsNotGiven(t *testing.T) {
	// A device no standard rule allows (the standard set is null, zero,
	// full, tty, random, urandom and the ptys), so only the configured
	// permissions decide.
	const host = "/dev/loop-control"
	if fi, err := os.Stat(host); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Skipf("%s: no such character device on this host", host)
	}
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// Opening for reading may fail for the driver's own reasons, never
		// with EPERM, which is the device cgroup's answer. The rules go by
		// major:minor, so the read-write control is another container.
		open := `( exec 3</dev/my-dev ) 2>&1 | grep -q 'Operation not permitted' || echo readable
( exec 3>/dev/my-dev ) 2>&1 | grep -q 'Operation not permitted' && echo write-refused || echo writable
`
		fuse := `[ -e /dev/fuse ] && echo fuse-given
if mknod /tmp/fuse c 10 229 2>/dev/null; then ( exec 3<>/tmp/fuse ) 2>&1 | grep -q 'Operation not permitted' && echo fuse-refused; else echo fuse-refused; fi
`
		for _, tc := range []struct {
			perms, want string
		}{
			{"r", "readable\nwrite-refused\nfuse-refused\n"},
			{"rw", "readable\nwritable\nfuse-refused\n"},
		} {
			cfg := e.config("dev-"+tc.perms, open+fuse)
			cfg.Devices = []*runtimeapi.Device{{HostPath: host, ContainerPath: "/dev/my-dev", Permissions: tc.perms}}
			// runc allows mknod of any node (see the test above), not its
			// use: fuse is refused at mknod or at open.
			if st, out := e.runToExit(t, cfg); st.ExitCode != 0 || out != tc.want {
				t.Errorf("device %q: exit %d, output %q, want %q", tc.perms, st.ExitCode, out, tc.want)
			}
		}
	})
}
