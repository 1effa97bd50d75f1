package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups/systemd"
	"golang.org/x/sys/unix"
)

// TestLeaksReportsWhatADaemonLeftBehind proves the leak check works: a
// mount under the daemon's state dir, a process naming its root dir, a
// cgroup under its tag and one under its systemd slice (as systemd would
// nest a pod's slice from CgroupParent) must each be reported, and nothing
// once removed.
func TestLeaksReportsWhatADaemonLeftBehind(t *testing.T) {
	d := Start(t)
	if leaks := d.Leaks(); len(leaks) != 0 {
		t.Fatalf("a fresh daemon already leaks: %v", leaks)
	}

	mnt := filepath.Join(d.State, "leaked-mount")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	// A process whose command line names the daemon's directory: sleep
	// with an argv[0] under its root (sleep ignores its argv[0]).
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	proc := &exec.Cmd{Path: sleep, Args: []string{filepath.Join(d.Root, "leaked-process"), "1000"}}
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join("/sys/fs/cgroup/pids", d.Tag, "leaked")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	slice, err := systemd.ExpandSlice(d.slicePrefix() + "-leaked.slice")
	if err != nil {
		t.Fatal(err)
	}
	sliceCg := filepath.Join("/sys/fs/cgroup/pids", slice)
	if err := os.MkdirAll(sliceCg, 0o755); err != nil {
		t.Fatal(err)
	}

	leaks := strings.Join(d.Leaks(), "\n")
	for _, want := range []string{"mount " + mnt, "process ", "cgroup " + cg, "cgroup " + sliceCg} {
		if !strings.Contains(leaks, want) {
			t.Errorf("Leaks() does not report %q; it reports:\n%s", want, leaks)
		}
	}

	d.removeLeaks()
	proc.Wait()
	for i := 0; i < 50 && len(d.Leaks()) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if leaks := d.Leaks(); len(leaks) != 0 {
		t.Fatalf("removeLeaks left: %v", leaks)
	}
}

// TestStrayNamespacesNamesWhatIsNotTheHosts: Stop fails a test whose
// berthd left its main thread in a pod's namespace; the check must see a
// process in a namespace of its own, and not the caller.
func TestStrayNamespacesNamesWhatIsNotTheHosts(t *testing.T) {
	if stray := strayNamespaces(os.Getpid()); len(stray) != 0 {
		t.Errorf("the test process is reported in namespaces not its own: %v", stray)
	}
	cmd := exec.Command("unshare", "--uts", "--ipc", "sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var stray []string
	for i := 0; i < 100; i++ { // until unshare has exec'd sleep
		if stray = strayNamespaces(cmd.Process.Pid); len(stray) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := strings.Join(stray, " ")
	if len(stray) != 2 || !strings.Contains(got, "ipc:[") || !strings.Contains(got, "uts:[") {
		t.Errorf("strayNamespaces of a process in new uts and ipc namespaces = %v", stray)
	}
}

// TestBinaryIsBuiltIntoOnePlace: without $BERTHD the harness builds berthd
// itself, into one file that later runs replace, leaving nothing else.
func TestBinaryIsBuiltIntoOnePlace(t *testing.T) {
	p, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	if p != binaryCache() {
		t.Errorf("built %s, want %s", p, binaryCache())
	}
	if out, err := exec.Command(p, "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "berthd ") {
		t.Errorf("%s --version: %v %q", p, err, out)
	}
	ents, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "berthd" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want only berthd", filepath.Dir(p), names)
	}
}
