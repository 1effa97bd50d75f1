package cni

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// hermeticEnv marks the test binary re-executed in its own namespaces.
const hermeticEnv = "BERTH_CNI_TEST_HERMETIC"

// The host of these tests is a network namespace of their own, with its
// own mount namespace: their bridges, veths, iptables rules and pinned
// namespaces never touch the real host's, other tests running beside them
// (a berthd test harness watching the host's veths) never see them, and
// whatever a crashed test leaves dies with the process. An uplink (a veth
// pair, 192.0.2.10/24, TEST-NET-1, with a default route) stands in
// for the host's network.
func TestMain(m *testing.M) {
	if os.Getenv(hermeticEnv) == "" {
		os.Exit(reexecHermetic())
	}
	if err := setupHermeticHost(); err != nil {
		fmt.Fprintln(os.Stderr, "cni tests: set up the test host network:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// reexecHermetic runs this test binary again in new network and mount
// namespaces and returns its exit code.
func reexecHermetic() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "cni tests need root (network namespaces, bridges, iptables); run them as root")
		return 1
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), hermeticEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cni tests: re-exec in private namespaces:", err)
		return 1
	}
	return 0
}

func setupHermeticHost() error {
	// Mounts made here (namespace pins under /run/netns) stay here.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", "/run/netns", "tmpfs", 0, "mode=0755"); err != nil {
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", "/run/netns", "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mount /run/netns: %w", err)
		}
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"},
		{"addr", "add", "192.0.2.10/24", "dev", "uplink0"},
		{"link", "set", "uplink0", "up"},
		{"link", "set", "uplink1", "up"},
		{"route", "add", "default", "via", "192.0.2.1"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %w: %s", args, err, out)
		}
	}
	return nil
}
