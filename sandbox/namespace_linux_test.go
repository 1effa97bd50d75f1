package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNamespacesArePinnedWithoutAProcessAndUnpinned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes namespaces and mounts: run it as root")
	}
	dir := t.TempDir()
	var hostname, lo, sysctl string
	err := inNewNamespaces(dir, []string{"net", "ipc", "uts"}, func() error {
		if err := unix.Sethostname([]byte("pinned-pod")); err != nil {
			return err
		}
		if err := loopbackUp(); err != nil {
			return err
		}
		if err := writeSysctls(map[string]string{"kernel.shmmni": "321"}); err != nil {
			return err
		}
		b, _ := os.ReadFile("/proc/sys/kernel/hostname")
		hostname = strings.TrimSpace(string(b))
		b, _ = os.ReadFile("/proc/sys/kernel/shmmni")
		sysctl = strings.TrimSpace(string(b))
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("lo")
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		if ifr.Uint16()&unix.IFF_UP != 0 {
			lo = "up"
		}
		return nil
	})
	t.Cleanup(func() {
		for _, k := range []string{"net", "ipc", "uts"} {
			_ = unpin(filepath.Join(dir, k))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if hostname != "pinned-pod" || lo != "up" || sysctl != "321" {
		t.Errorf("inside: hostname %q, loopback %q, kernel.shmmni %q; want pinned-pod, up, 321", hostname, lo, sysctl)
	}
	if h, _ := os.Hostname(); h == "pinned-pod" {
		t.Errorf("the host was renamed")
	}
	for _, k := range []string{"net", "ipc", "uts"} {
		pin := filepath.Join(dir, k)
		if !isNamespacePin(pin) {
			t.Fatalf("%s is not a pinned namespace", pin)
		}
		var pinned, own unix.Stat_t
		_ = unix.Stat(pin, &pinned)
		_ = unix.Stat("/proc/thread-self/ns/"+k, &own)
		if pinned.Ino == own.Ino {
			t.Errorf("the pinned %s namespace is the test's own", k)
		}
		if err := unpin(pin); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(pin); !os.IsNotExist(err) {
			t.Errorf("%s is still there after unpin: %v", pin, err)
		}
		if err := unpin(pin); err != nil {
			t.Errorf("a second unpin of %s: %v", pin, err)
		}
	}
}
