package hostclean

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUnmountDetachesNestedMountsDeepestFirst mounts a tmpfs under a
// directory and another inside it, plus one on a sibling whose name only
// starts with the directory's: Mounts must list the nested two, child
// first, and not the sibling; Unmount must leave none of the two and the
// sibling mounted.
func TestUnmountDetachesNestedMountsDeepestFirst(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	dir := filepath.Join(base, "dir")
	outer := filepath.Join(dir, "a")
	inner := filepath.Join(outer, "b")
	sibling := filepath.Join(base, "dirx")
	mustMountTmpfs(t, outer)
	mustMountTmpfs(t, inner) // made inside the outer tmpfs
	mustMountTmpfs(t, sibling)

	got, err := Mounts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{inner, outer}; !slices.Equal(got, want) {
		t.Fatalf("Mounts(%s) = %v, want %v", dir, got, want)
	}
	if err := Unmount(dir); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if got, err := Mounts(dir); err != nil || len(got) != 0 {
		t.Errorf("after Unmount, Mounts(%s) = %v, %v; want none", dir, got, err)
	}
	if got, err := Mounts(sibling); err != nil || !slices.Equal(got, []string{sibling}) {
		t.Errorf("Unmount(%s) touched the sibling %s: Mounts = %v, %v", dir, sibling, got, err)
	}
}

// TestRemoveCgroupsKillsWhatIsInside makes a pids cgroup with a child
// holding a sleep: CgroupDirs must list the child then the parent, and
// RemoveCgroups must kill the sleep (which a bare rmdir would not) and
// remove both.
func TestRemoveCgroupsKillsWhatIsInside(t *testing.T) {
	requireRoot(t)
	parent := "/" + uniqueName()
	top := mustMkCgroup(t, "pids", parent)
	child := mustMkCgroup(t, "pids", parent+"/child")
	sleep := mustSleepIn(t, child)

	got, err := CgroupDirs(parent)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{child, top}; !slices.Equal(got, want) {
		t.Fatalf("CgroupDirs(%s) = %v, want %v", parent, got, want)
	}
	if err := RemoveCgroups(got); err != nil {
		t.Fatalf("RemoveCgroups: %v", err)
	}
	mustBeKilled(t, sleep)
	if left, err := CgroupDirs(parent); err != nil || len(left) != 0 {
		t.Errorf("after RemoveCgroups, CgroupDirs(%s) = %v, %v; want none", parent, left, err)
	}
}

// TestRemoveCgroupsThawsFrozenCgroups freezes a sleep through the v1
// freezer while it also sits in a pids cgroup: SIGKILL alone would leave
// it frozen and both cgroups busy, so RemoveCgroups must thaw it first.
func TestRemoveCgroupsThawsFrozenCgroups(t *testing.T) {
	requireRoot(t)
	parent := "/" + uniqueName()
	freezer := mustMkCgroup(t, "freezer", parent)
	pids := mustMkCgroup(t, "pids", parent)
	sleep := mustSleepIn(t, freezer, pids)
	state := filepath.Join(freezer, "freezer.state")
	if err := os.WriteFile(state, []byte("FROZEN"), 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		b, _ := os.ReadFile(state)
		if strings.TrimSpace(string(b)) == "FROZEN" {
			break
		}
		if i == 100 {
			t.Fatalf("the freezer cgroup did not freeze: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}

	dirs, err := CgroupDirs(parent)
	if err != nil {
		t.Fatal(err)
	}
	if err := RemoveCgroups(dirs); err != nil {
		t.Fatalf("RemoveCgroups(%v): %v", dirs, err)
	}
	mustBeKilled(t, sleep)
	if left, err := CgroupDirs(parent); err != nil || len(left) != 0 {
		t.Errorf("after RemoveCgroups, CgroupDirs(%s) = %v, %v; want none", parent, left, err)
	}
}

// TestHierarchiesListsEachMountedHierarchyOnce: every hierarchy the
// tests use is found, and none twice.
func TestHierarchiesListsEachMountedHierarchyOnce(t *testing.T) {
	hier, err := Hierarchies()
	if err != nil {
		t.Fatal(err)
	}
	if len(hier) == 0 {
		t.Fatal("no cgroup hierarchy found under /sys/fs/cgroup")
	}
	seen := map[string]bool{}
	for _, h := range hier {
		if seen[h] {
			t.Errorf("Hierarchies lists %s twice: %v", h, hier)
		}
		seen[h] = true
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			t.Errorf("Hierarchies lists %s, which is not a cgroup hierarchy: %v", h, err)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (real mounts and cgroups); run it as root")
	}
}

func uniqueName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "hostclean-test-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// mustMountTmpfs makes dir and mounts a small tmpfs on it, detached again
// when the test ends if the test has not.
func mustMountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// mustMkCgroup makes the cgroup path in the named v1 hierarchy and removes
// it when the test ends if the test has not.
func mustMkCgroup(t *testing.T, hierarchy, path string) string {
	t.Helper()
	root := filepath.Join(cgroupMount, hierarchy)
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Fatalf("this test needs the cgroup v1 %s hierarchy at %s: %v", hierarchy, root, err)
	}
	dir := filepath.Join(root, path)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		thaw(dir)
		killProcs(dir)
		for i := 0; i < 100; i++ {
			if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

// sleeper is a long sleep moved into test cgroups.
type sleeper struct {
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// mustSleepIn starts a long sleep, moves it into the cgroup directories
// dirs, and reaps it in the background. When the test ends it thaws the
// dirs and kills the sleep if the test has not, before the dirs' own
// clean-up, which would otherwise find a frozen sleep in them.
func mustSleepIn(t *testing.T, dirs ...string) *sleeper {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sleeper{exited: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		for _, dir := range dirs {
			thaw(dir)
		}
		cmd.Process.Kill()
		<-s.exited
	})
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("move sleep into %s: %v", dir, err)
		}
	}
	return s
}

// mustBeKilled fails the test unless the sleep has died of SIGKILL.
func mustBeKilled(t *testing.T, s *sleeper) {
	t.Helper()
	select {
	case <-s.exited:
		var exit *exec.ExitError
		if !errors.As(s.err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("the sleep in the cgroup ended with %v, not SIGKILL", s.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the sleep in the removed cgroup is still running")
	}
}

// TestTheRootCgroupIsRefused: a parent that names the root cgroup would
// have the cleanup kill every process on the host.
func TestTheRootCgroupIsRefused(t *testing.T) {
	for _, parent := range []string{"", "/", "//", "/a/.."} {
		if err := RemoveCgroupTree(parent); err == nil {
			t.Errorf("RemoveCgroupTree(%q) went ahead on the root cgroup", parent)
		}
	}
}
