package oci

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-runtime/berth/test/nsowner"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// usernsHostID is the host uid and gid of root in the test's user
// namespace.
const usernsHostID = 5 << 16

// newPodUserns makes a user namespace mapping 0-65535 to usernsHostID on,
// with network, IPC and UTS namespaces it owns, as a pod with its own
// user namespace has, held by a process until the test ends. It returns
// the holder's PID.
func newPodUserns(t *testing.T) int {
	t.Helper()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: usernsHostID, Size: 65536}}
	holder := exec.Command("sleep", "infinity")
	holder.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		UidMappings: m, GidMappings: m, GidMappingsEnableSetgroups: true,
		Credential: &syscall.Credential{},
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	return holder.Process.Pid
}

// reachable lets any user traverse the directories above path, as the
// root of a user namespace must to reach a container's rootfs: Berth's
// state dir is 0711.
func reachable(t *testing.T, path string) {
	t.Helper()
	for dir := filepath.Dir(path); dir != "/"; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestBuiltinContainerAndExecRunAsRootOfAJoinedUserNamespace(t *testing.T) {
	rt := newRuntime(t, handlers()[0])
	holder := newPodUserns(t)
	// A volume below a directory the container's root may not traverse,
	// as kubelet's are: the runtime hands it over cloned on the host.
	volume := filepath.Join(t.TempDir(), "private", "volume")
	if err := os.MkdirAll(volume, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(volume), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(volume, 0o777); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, []string{"sleep", "100000"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: volume, Options: []string{"rbind", "rw"}})
		for _, k := range []struct {
			typ  specs.LinuxNamespaceType
			name string
		}{{specs.NetworkNamespace, "net"}, {specs.IPCNamespace, "ipc"}, {specs.UTSNamespace, "uts"}} {
			joinNamespace(s, k.typ, fmt.Sprintf("/proc/%d/ns/%s", holder, k.name))
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{
			Type: specs.UserNamespace, Path: fmt.Sprintf("/proc/%d/ns/user", holder)})
		if !ownsNamespace(s, specs.CgroupNamespace) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		}
		// Set from the host. (Lowering it needs CAP_SYS_RESOURCE in the
		// host's user namespace, which the container's root lacks, and
		// so does this machine's root: its bounding set has no
		// CAP_SYS_RESOURCE, so the test raises it.)
		adj := 500
		s.Process.OOMScoreAdj = &adj
	})
	reachable(t, c.rootfs)
	// The copied rootfs is the host root's, which the container's root
	// cannot write (Berth's idmapped layers make it its own; see image/).
	if err := os.Mkdir(filepath.Join(c.rootfs, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.mustCreate(t, rt)
	if err := rt.Start(t.Context(), c.id); err != nil {
		t.Fatal(err)
	}
	status := readFile(t, fmt.Sprintf("/proc/%d/status", c.pid))
	if want := fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", usernsHostID, usernsHostID, usernsHostID, usernsHostID); !strings.Contains(status, want) {
		t.Errorf("the container's process does not run as uid %d on the host:\n%s", usernsHostID, status)
	}
	if got := strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/oom_score_adj", c.pid))); got != "500" {
		t.Errorf("oom_score_adj %s, want 500", got)
	}
	user := fmt.Sprintf("/proc/%d/ns/user", holder)
	for _, k := range []string{"user", "pid", "mnt", "cgroup"} {
		path := fmt.Sprintf("/proc/%d/ns/%s", c.pid, k)
		if k == "user" {
			// The joined one: the same file as the holder's.
			var a, b unix.Stat_t
			_ = unix.Stat(user, &a)
			_ = unix.Stat(path, &b)
			if a.Ino != b.Ino {
				t.Errorf("the container is not in the joined user namespace")
			}
			continue
		}
		if owned, err := nsowner.Owns(user, path); err != nil || !owned {
			t.Errorf("the container's new %s namespace is not owned by the joined user namespace (%v)", k, err)
		}
	}
	// Both exec paths: the C one, and the Go one, which takes what the C
	// one does not (a terminal, more than 4000 arguments).
	script := `cat /proc/self/uid_map; id -u; grep ^Uid: /proc/self/status; hostname userns-host 2>/dev/null || echo no hostname; touch /data/written-$$`
	long := append([]string{"sh", "-c", script}, strings.Fields(strings.Repeat("x ", 5000))...)
	for name, proc := range map[string]*specs.Process{"C": execProc("sh", "-c", script), "Go": execProc(long...)} {
		out, code, err := execOut(t, rt, c, proc)
		if err != nil || code != 0 {
			t.Fatalf("%s exec: %v, exit %d: %s", name, err, code, out)
		}
		want := fmt.Sprintf("0 %d 65536\n0\nUid:\t0\t0\t0\t0\nno hostname\n", usernsHostID)
		if got := strings.Join(strings.Fields(out), " "); got != strings.Join(strings.Fields(want), " ") {
			t.Errorf("%s exec printed %q, want %q", name, out, want)
		}
	}
	written, _ := filepath.Glob(filepath.Join(volume, "written-*"))
	if len(written) != 2 {
		t.Fatalf("the execs wrote %v to the volume, want two files", written)
	}
	for _, f := range written {
		var st unix.Stat_t
		if err := unix.Stat(f, &st); err != nil || st.Uid != usernsHostID || st.Gid != usernsHostID {
			t.Errorf("%s is owned by %d:%d on the host (%v), want the container root's %d", f, st.Uid, st.Gid, err, usernsHostID)
		}
	}
}
