package oci

// Tests run real containers (root, real kernel) from a busybox rootfs the
// test builds from Debian's dynamic busybox, for every runtime handler in
// handlers(): the builtin runtime and runc.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

var (
	testBinary  string // berthd (or the roles stand-in) the builtin runtime re-execs
	testRootfs  string // busybox rootfs template
	testCgroup  string // cgroup parent of every test container
	testTmp     string
	busyboxPath = "/bin/busybox"
)

// The main goroutine keeps the main thread, the one /proc/self names, so
// that onMainThread can put that thread where a runtime's may end up.
func init() { runtime.LockOSThread() }

var mainThread = make(chan func())

func TestMain(m *testing.M) {
	code := make(chan int)
	go func() { code <- testMain(m) }()
	for {
		select {
		case fn := <-mainThread:
			fn()
		case c := <-code:
			os.Exit(c)
		}
	}
}

// onMainThread runs fn on the process's main thread.
func onMainThread(fn func()) {
	done := make(chan struct{})
	mainThread <- func() { defer close(done); fn() }
	<-done
}

func testMain(m *testing.M) int {
	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "oci tests need root")
		return 1
	}
	// Containers whose runtime exits (runc) are reparented to us.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		return 1
	}
	var err error
	testTmp, err = os.MkdirTemp("", "berth-oci-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(testTmp)
	if testBinary, err = buildBinary(testTmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if testRootfs, err = buildRootfs(filepath.Join(testTmp, "rootfs")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testCgroup = fmt.Sprintf("/berth-oci-test-%d", os.Getpid())
	code := m.Run()
	if err := removeTestCgroups(); err != nil {
		fmt.Fprintln(os.Stderr, "leak:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// buildBinary builds berthd; if cmd/berthd does not compile (another area
// mid-edit), the roles stand-in, which runs the same oci roles.
func buildBinary(dir string) (string, error) {
	out := filepath.Join(dir, "berthd")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/berthd")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err == nil {
		return out, nil
	} else {
		fmt.Fprintf(os.Stderr, "cmd/berthd does not build, using oci/testdata/roles:\n%s", b)
	}
	cmd = exec.Command("go", "build", "-o", out, "./oci/testdata/roles")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build roles binary: %v\n%s", err, b)
	}
	return out, nil
}

// buildRootfs makes a busybox root: the dynamic busybox, the libraries
// ldd lists, and a symlink per applet.
func buildRootfs(dir string) (string, error) {
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "lib", "lib64"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	if err := copyFile(busyboxPath, filepath.Join(dir, "bin/busybox")); err != nil {
		return "", err
	}
	out, err := exec.Command("ldd", busyboxPath).Output()
	if err != nil {
		return "", fmt.Errorf("ldd busybox: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				real, err := filepath.EvalSymlinks(f)
				if err != nil {
					return "", err
				}
				if err := copyFile(real, filepath.Join(dir, f)); err != nil {
					return "", err
				}
			}
		}
	}
	list, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		os.Symlink("busybox", filepath.Join(dir, "bin", applet))
	}
	return dir, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// removeTestCgroups removes the test's cgroup parent on every hierarchy;
// it fails if a container cgroup was left behind.
func removeTestCgroups() error {
	var leaks []string
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + testCgroup)
	if d := "/sys/fs/cgroup" + testCgroup; exists(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				leaks = append(leaks, filepath.Join(d, e.Name()))
				unix.Rmdir(filepath.Join(d, e.Name()))
			}
		}
		unix.Rmdir(d)
	}
	if len(leaks) > 0 {
		return fmt.Errorf("container cgroups left: %v", leaks)
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// handler is a runtime under test.
type handler struct {
	name string
	h    Handler
}

func handlers() []handler {
	return []handler{
		{"berth", Handler{Type: "builtin"}},
		{"runc", Handler{Type: "oci", Path: "/usr/sbin/runc"}},
		// Not crun: Debian's crun 1.8.1 refuses this machine's hybrid
		// cgroups ("cgroups in hybrid mode not supported").
	}
}

// newRuntime returns the runtime of h with a fresh state dir.
func newRuntime(t testing.TB, h handler) Runtime {
	t.Helper()
	rts, err := New(Options{
		StateDir:     t.TempDir(),
		Handlers:     map[string]Handler{h.name: h.h},
		CgroupDriver: "cgroupfs",
		BinaryPath:   testBinary,
		Log:          zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return rts[h.name]
}

// forEachRuntime runs f as a subtest per handler.
func forEachRuntime(t *testing.T, f func(t *testing.T, rt Runtime)) {
	for _, h := range handlers() {
		t.Run(h.name, func(t *testing.T) { f(t, newRuntime(t, h)) })
	}
}

// container is a test container's bundle and outputs.
type container struct {
	id     string
	bundle string
	rootfs string
	spec   *specs.Spec
	out    *os.File
	pid    int
}

var idSeq int

// newContainer makes a bundle from DefaultSpec running args, with its own
// copy of the busybox rootfs, and lets mod adjust the spec.
func newContainer(t testing.TB, args []string, mod func(*specs.Spec)) *container {
	t.Helper()
	idSeq++
	id := fmt.Sprintf("c%d-%s", idSeq, strings.ReplaceAll(strings.ToLower(filepath.Base(t.Name())), "_", "-"))
	if len(id) > 40 {
		id = id[:40]
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if out, err := exec.Command("cp", "-a", testRootfs, rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v %s", err, out)
	}
	s := DefaultSpec(id)
	s.Root.Path = rootfs
	s.Process.Args = args
	s.Linux.CgroupsPath = testCgroup + "/" + id
	if mod != nil {
		mod(s)
	}
	if err := WriteSpec(bundle, s); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return &container{id: id, bundle: bundle, rootfs: rootfs, spec: s, out: out}
}

// mustCreate creates c and registers its deletion.
func (c *container) mustCreate(t testing.TB, rt Runtime) {
	t.Helper()
	pid, err := rt.Create(context.Background(), c.id, c.bundle, IO{Stdout: c.out, Stderr: c.out})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	c.pid = pid
	t.Cleanup(func() {
		if err := rt.Delete(context.Background(), c.id, true); err != nil {
			t.Errorf("Delete: %v", err)
		}
		c.reap()
	})
}

// reap collects the init if it is our child (or reparented to us).
func (c *container) reap() {
	if c.pid > 0 {
		var ws unix.WaitStatus
		unix.Wait4(c.pid, &ws, unix.WNOHANG, nil)
	}
}

// wait waits for the init to exit and returns its wait status.
func (c *container) wait(t *testing.T) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("wait for init %d: %v", c.pid, err)
		}
		c.pid = 0
		return ws
	}
}

func (c *container) output(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(c.out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mustRun creates, starts and waits for c; it returns its output and
// wait status.
func (c *container) mustRun(t *testing.T, rt Runtime) (string, unix.WaitStatus) {
	t.Helper()
	c.mustCreate(t, rt)
	if err := rt.Start(context.Background(), c.id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ws := c.wait(t)
	return c.output(t), ws
}

func sh(script string) []string { return []string{"sh", "-c", script} }

// newNamespace makes a namespace of the given kind ("net", "uts"),
// lets setup run in it, and pins it with a bind mount at a file whose path
// it returns.
func newNamespace(t *testing.T, kind string, setup func() error) string {
	t.Helper()
	flags := map[string]int{"net": unix.CLONE_NEWNET, "uts": unix.CLONE_NEWUTS}
	path := filepath.Join(t.TempDir(), kind+"ns")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		// This thread's namespace changes; it is never unlocked, so it dies.
		runtime.LockOSThread()
		if err := unix.Unshare(flags[kind]); err != nil {
			errc <- err
			return
		}
		if setup != nil {
			if err := setup(); err != nil {
				errc <- err
				return
			}
		}
		errc <- unix.Mount("/proc/thread-self/ns/"+kind, path, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatalf("new %s namespace: %v", kind, err)
	}
	t.Cleanup(func() { unix.Unmount(path, unix.MNT_DETACH) })
	return path
}

// joinNamespace makes s join the namespace of typ at path.
func joinNamespace(s *specs.Spec, typ specs.LinuxNamespaceType, path string) {
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == typ {
			s.Linux.Namespaces[i].Path = path
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not met in 10s")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
