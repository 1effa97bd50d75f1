package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/test/nsowner"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestMain lets the test binary play the roles berthd re-executes itself
// as, as cmd/berthd does.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case nsHolderRole:
		NSHolderMain()
	case podInitRole:
		PodInitMain()
	}
	os.Exit(m.Run())
}

func TestAPodsUserNamespaceIsMappedPinnedAndOwnsItsOtherNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes namespaces and mounts: run it as root")
	}
	uid := &runtimeapi.IDMapping{HostId: 3 << 16, Length: 65536}
	gid := &runtimeapi.IDMapping{HostId: 4 << 16, Length: 65536}
	for _, withInit := range []bool{false, true} {
		t.Run(fmt.Sprintf("berth-podinit %v", withInit), func(t *testing.T) {
			dir := t.TempDir()
			kinds := []string{"net", "ipc", "uts"}
			pins := append([]string{"user"}, kinds...)
			if withInit {
				pins = append(pins, "pid")
			}
			t.Cleanup(func() {
				for _, k := range pins {
					_ = unpin(filepath.Join(dir, k))
				}
			})
			var hostname, sysctl string
			init, err := inNewUserns(dir, kinds, withInit, uid, gid, func() error {
				if err := unix.Sethostname([]byte("userns-pod")); err != nil {
					return err
				}
				if err := loopbackUp(); err != nil {
					return err
				}
				if err := writeSysctlsInUserns(map[string]string{"kernel.shmmni": "321", "net.ipv4.ip_forward": "1", "kernel.domainname": "pod.test"}, uid.GetHostId()); err != nil {
					return err
				}
				b, _ := os.ReadFile("/proc/sys/kernel/hostname")
				hostname = strings.TrimSpace(string(b))
				b, _ = os.ReadFile("/proc/sys/kernel/shmmni")
				sysctl = strings.TrimSpace(string(b))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if hostname != "userns-pod" || sysctl != "321" {
				t.Errorf("inside: hostname %q, kernel.shmmni %q; want userns-pod, 321", hostname, sysctl)
			}
			if h, _ := os.Hostname(); h == "userns-pod" {
				t.Errorf("the host was renamed")
			}
			for _, k := range pins {
				if !isNamespacePin(filepath.Join(dir, k)) {
					t.Fatalf("%s is not a pinned namespace", filepath.Join(dir, k))
				}
			}
			user := filepath.Join(dir, "user")
			for _, k := range pins[1:] {
				owned, err := nsowner.Owns(user, filepath.Join(dir, k))
				if err != nil {
					t.Fatal(err)
				}
				if !owned {
					t.Errorf("the pod's %s namespace is not owned by its user namespace", k)
				}
			}
			for file, want := range map[string]string{"uid_map": "0 196608 65536", "gid_map": "0 262144 65536"} {
				out, err := exec.Command("nsenter", "--user="+user, "cat", "/proc/self/"+file).CombinedOutput()
				if err != nil {
					t.Fatalf("nsenter: %v: %s", err, out)
				}
				if got := strings.Join(strings.Fields(string(out)), " "); got != want {
					t.Errorf("%s of the pinned user namespace: %q, want %q", file, got, want)
				}
			}
			if withInit {
				if init == nil {
					t.Fatal("no berth-podinit")
				}
				status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", init.pid))
				if !strings.Contains(string(status), "\nUid:\t196608\t196608\t196608\t196608\n") {
					t.Errorf("berth-podinit does not run as the mapped root:\n%s", status)
				}
				if err := init.kill(); err != nil {
					t.Fatal(err)
				}
				init.release()
			} else if init != nil {
				t.Errorf("a berth-podinit without PID mode POD")
			}
			// The holder is gone: nothing but the pins keeps the
			// namespaces.
			if out, _ := exec.Command("pgrep", "-f", "^"+nsHolderRole).Output(); len(out) != 0 {
				t.Errorf("%s still runs: %s", nsHolderRole, out)
			}
			for _, k := range pins {
				if err := unpin(filepath.Join(dir, k)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestSearchableByAllNamesTheFirstDirectoryOthersCannotSearch(t *testing.T) {
	top := t.TempDir()
	// t.TempDir is a directory in one of the test's own, both 0700.
	for _, d := range []string{filepath.Dir(top), top} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	closed := filepath.Join(top, "closed")
	state := filepath.Join(closed, "state")
	if err := os.MkdirAll(state, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	err := searchableByAll(state)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), closed+" (mode 700)") {
		t.Errorf("a state dir below a 0700 directory: %v, want FailedPrecondition naming %s", err, closed)
	}
	if err := os.Chmod(closed, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := searchableByAll(state); err != nil {
		t.Errorf("every directory searchable: %v", err)
	}
}
