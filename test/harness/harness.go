// Package harness runs a real berthd for tests: on private temporary root,
// state and socket paths, with CRI clients over its socket, and a check at
// teardown that it left nothing behind.
//
// Every daemon gets a unique tag. Its directories are named after it, and
// pods must use d.CgroupParent, which puts their cgroups under /<tag> in
// every hierarchy (under the tag's slice with the systemd driver), so the
// leak check can find everything the daemon made:
// mounts under its directories, processes whose command line names them or
// whose cgroup is under the tag, cgroups under the tag, and veth interfaces
// left on its default network's bridge. Each daemon's default network has a
// bridge and a /24 of its own, so daemons side by side never share one.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/test/hostclean"
	"github.com/berth-runtime/berth/test/hostnet"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// readyTimeout bounds how long a starting berthd may take to answer Version.
const readyTimeout = 30 * time.Second

// Daemon is a running berthd under test.
type Daemon struct {
	Tag        string // unique; names the temp dir and the test cgroup
	Dir        string // the temp dir holding everything below
	Root       string
	State      string
	Socket     string
	ConfigPath string
	LogPath    string
	Config     config.Config
	// Disk, when WithDisk was given, is the small tmpfs that holds Root;
	// a test may put other files on it (a pod's log directory, a filler).
	Disk string

	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient

	// Env is added to berthd's environment at each start, for example
	// failpoint.Env to crash it at a step (set it before Restart).
	Env []string

	cmd     *exec.Cmd
	exited  chan struct{}
	conn    *grpc.ClientConn
	cleaned bool
}

// Option changes how a daemon starts.
type Option func(*options)

type options struct {
	config   []func(*config.Config)
	diskSize int64
}

// WithDisk puts berthd's root on a tmpfs of size bytes that the harness
// mounts (at d.Disk) and unmounts after the leak check, for tests of a
// full disk.
func WithDisk(size int64) Option {
	return func(o *options) { o.diskSize = size }
}

// WithConfig edits the daemon's configuration before it is written.
func WithConfig(fn func(*config.Config)) Option {
	return func(o *options) { o.config = append(o.config, fn) }
}

// Start starts a berthd, waits until it answers, and arranges for it to be
// stopped and checked for leaks when the test ends.
func Start(t testing.TB, opts ...Option) *Daemon {
	t.Helper()
	RequireRoot(t)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tag := "berth-test-" + randomHex(4)
	dir, err := os.MkdirTemp("", tag+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Searchable by all, as the directories above a real berthd's state
	// (/run) are: the containers of hostUsers: false pods run as a mapped
	// uid that reaches its rootfs through it, and berthd refuses such pods
	// otherwise.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Tag:        tag,
		Dir:        dir,
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Socket:     filepath.Join(dir, "sock", "berth.sock"), // berthd makes its directory
		ConfigPath: filepath.Join(dir, "config.toml"),
		LogPath:    filepath.Join(dir, "berthd.log"),
	}
	if o.diskSize > 0 {
		d.Disk = filepath.Join(dir, "disk")
		d.Root = filepath.Join(d.Disk, "root")
		if err := mountTmpfs(d.Disk, o.diskSize); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Root, cfg.State, cfg.Socket = d.Root, d.State, d.Socket
	cfg.LogLevel = "debug"
	cfg.CNI.ConfDir = filepath.Join(dir, "net.d")
	cfg.Registry.ConfigPath = filepath.Join(dir, "certs.d")
	// A bridge and range of its own, so daemons running side by side
	// (parallel tests, test binaries, a berthd on the host) share no
	// network; a test may still choose others.
	cfg.CNI.DefaultBridge = "bt" + tag[len("berth-test-"):]
	cfg.CNI.DefaultSubnet = testSubnet()
	for _, fn := range o.config {
		fn(&cfg)
	}
	d.Config = cfg
	data, err := config.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.teardown(t) })
	if err := os.WriteFile(d.ConfigPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	return d
}

// RequireRoot fails the test unless it runs as root: Berth's tests use real
// namespaces, mounts and cgroups, and CI runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (real namespaces, mounts and cgroups); run it as root")
	}
}

// CgroupParent returns a cgroup_parent for a pod under this daemon's test
// cgroup, in the form the configured cgroup driver expects.
func (d *Daemon) CgroupParent(pod string) string {
	if d.Config.Runtime.CgroupDriver == "systemd" {
		return d.slicePrefix() + "-" + strings.ReplaceAll(pod, "-", "_") + ".slice"
	}
	return "/" + d.Tag + "/" + pod
}

func (d *Daemon) start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	fmt.Fprintf(log, "=== harness: starting berthd %s\n", time.Now().Format(time.RFC3339Nano))
	// berthd starts with signals ignored, as under make (32, 33) or nohup
	// (HUP): containers must still start with default dispositions, and
	// the container tests check that they do.
	cmd := exec.Command("/bin/sh", "-c", `trap "" HUP USR2; exec "$0" "$@"`, Binary(t), "--config", d.ConfigPath)
	cmd.Stdout, cmd.Stderr = log, log
	if len(d.Env) > 0 {
		cmd.Env = append(os.Environ(), d.Env...)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start berthd: %v", err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	go func() { cmd.Wait(); close(d.exited) }()

	conn, err := grpc.NewClient("unix://"+d.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	d.conn = conn
	d.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	d.Images = runtimeapi.NewImageServiceClient(conn)

	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return
		}
		select {
		case <-d.exited:
			t.Fatalf("berthd exited during start-up (%v); log:\n%s", cmd.ProcessState, d.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berthd did not answer Version within %s: %v; log:\n%s", readyTimeout, err, d.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid is the running daemon's process ID.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Logs returns everything the daemon has logged, across restarts.
func (d *Daemon) Logs() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// Stop sends SIGTERM and waits for a clean exit.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.stopped() {
		return
	}
	d.checkNamespaces(t)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("berthd did not exit within 30s of SIGTERM; log:\n%s", d.Logs())
	}
	if d.conn != nil {
		d.conn.Close()
	}
	if st := d.cmd.ProcessState; st != nil && !st.Success() {
		t.Errorf("berthd exited with %v after SIGTERM; log:\n%s", st, d.Logs())
	}
}

// checkNamespaces fails the test if the running daemon's main thread has
// left the host's namespaces.
func (d *Daemon) checkNamespaces(t testing.TB) {
	t.Helper()
	if stray := strayNamespaces(d.Pid()); len(stray) > 0 {
		t.Errorf("berthd's main thread is not in the host's namespaces: %s", strings.Join(stray, ", "))
	}
}

// strayNamespaces lists the namespaces of process pid's main thread (what
// /proc/<pid>/ns shows, and what berthd compares with when it asks
// whether a container shares the host's) that are not the caller's, the
// host's. berthd's main thread must never be left in a pod's.
func strayNamespaces(pid int) []string {
	var out []string
	for _, kind := range []string{"cgroup", "ipc", "mnt", "net", "pid", "uts"} {
		host, err := os.Readlink("/proc/thread-self/ns/" + kind)
		if err != nil {
			continue
		}
		if its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind)); err == nil && its != host {
			out = append(out, its)
		}
	}
	return out
}

// Kill kills the daemon with SIGKILL, as a crash would.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	if d.stopped() {
		return
	}
	d.checkNamespaces(t)
	d.cmd.Process.Kill()
	<-d.exited
	if d.conn != nil {
		d.conn.Close()
	}
}

// WaitExit waits up to timeout for the daemon to exit by itself (a
// failpoint, a crash) and returns how it ended, or nil if it still runs.
func (d *Daemon) WaitExit(timeout time.Duration) *os.ProcessState {
	select {
	case <-d.exited:
		if d.conn != nil {
			d.conn.Close()
		}
		return d.cmd.ProcessState
	case <-time.After(timeout):
		return nil
	}
}

// Restart starts the daemon again on the same directories and socket.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	if !d.stopped() {
		t.Fatal("Restart: berthd is still running; Stop or Kill it first")
	}
	d.start(t)
}

// Running reports whether the daemon's process runs.
func (d *Daemon) Running() bool { return !d.stopped() }

func (d *Daemon) stopped() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// teardown stops the daemon, reports what it leaked as a test failure, then
// removes the leaks so later tests start clean.
func (d *Daemon) teardown(t testing.TB) {
	if d.cmd != nil {
		d.Stop(t)
	}
	if races := d.Races(); len(races) > 0 {
		t.Errorf("berthd %s (built with -race) reported %d data races:\n%s", d.Tag, len(races), strings.Join(races, "\n"))
	}
	if leaks := d.Leaks(); len(leaks) > 0 {
		t.Errorf("berthd %s left behind:\n  %s\nlog: %s", d.Tag, strings.Join(leaks, "\n  "), d.LogPath)
		if err := d.removeLeaks(); err != nil {
			t.Errorf("remove what berthd %s left: %v", d.Tag, err)
		}
	}
	if d.Disk != "" {
		if err := syscall.Unmount(d.Disk, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("unmount the test disk %s: %v", d.Disk, err)
		}
	}
	if err := d.removeTagCgroups(); err != nil {
		t.Logf("remove the test cgroups of berthd %s: %v", d.Tag, err)
	}
	// The default network's bridge outlives its pods, as with every CNI
	// bridge; it is the harness's to remove, not a leak.
	exec.Command("ip", "link", "del", d.Config.CNI.DefaultBridge, "type", "bridge").Run()
	if !t.Failed() {
		os.RemoveAll(d.Dir)
	} else {
		t.Logf("kept %s for inspection", d.Dir)
	}
}

// Leaks lists what the daemon made and did not remove: mounts under its
// directories, processes of its, cgroups under its tag, and new veths.
func (d *Daemon) Leaks() []string {
	var out []string
	for _, m := range d.mounts() {
		out = append(out, "mount "+m)
	}
	for _, p := range d.processes() {
		out = append(out, fmt.Sprintf("process %d %s", p, describe(p)))
	}
	for _, c := range d.cgroups() {
		out = append(out, "cgroup "+c)
	}
	for _, name := range d.veths() {
		out = append(out, "veth "+name)
	}
	return append(out, d.storeLeaks()...)
}

// storeLeaks lists what the daemon's directories hold that no container or
// pull may own once every pod is gone: containers' writable layers
// (image/snapshots), downloads (image/ingest) and host-local address
// leases of its default network (state/cni/networks/<net>/<ip>).
func (d *Daemon) storeLeaks() []string {
	var out []string
	for _, dir := range []struct{ what, path string }{
		{"snapshot", filepath.Join(d.Root, "image", "snapshots")},
		{"ingest file", filepath.Join(d.Root, "image", "ingest")},
	} {
		entries, _ := os.ReadDir(dir.path)
		for _, e := range entries {
			out = append(out, dir.what+" "+filepath.Join(dir.path, e.Name()))
		}
	}
	nets, _ := filepath.Glob(filepath.Join(d.State, "cni", "networks", "*", "*"))
	for _, f := range nets {
		if net.ParseIP(filepath.Base(f)) != nil {
			out = append(out, "IP lease "+f)
		}
	}
	return out
}

// raceMarker starts every report of Go's race detector.
const raceMarker = "WARNING: DATA RACE"

// Races returns the data race reports in the daemon's log, across
// restarts: a berthd built with -race (make test-race) prints them there,
// and GORACE=halt_on_error=1 makes it exit at the first.
func (d *Daemon) Races() []string {
	logs := d.Logs()
	var out []string
	for {
		i := strings.Index(logs, raceMarker)
		if i < 0 {
			return out
		}
		logs = logs[i:]
		end := strings.Index(logs[len(raceMarker):], "==================")
		if end < 0 {
			end = len(logs) - len(raceMarker)
		}
		out = append(out, logs[:len(raceMarker)+end])
		logs = logs[len(raceMarker)+end:]
	}
}

// removeLeaks kills leaked processes, unmounts leaked mounts and removes
// leaked cgroups (killing what is still in them: a process that escaped
// the process check, such as one that changed its command line, would
// otherwise keep its cgroup), deepest first.
func (d *Daemon) removeLeaks() error {
	for _, p := range d.processes() {
		syscall.Kill(p, syscall.SIGKILL)
	}
	time.Sleep(100 * time.Millisecond)
	errs := []error{hostclean.Unmount(d.Dir), hostclean.RemoveCgroups(d.cgroups())}
	for _, name := range d.veths() {
		exec.Command("ip", "link", "del", name).Run()
	}
	return errors.Join(errs...)
}

// mounts lists mount points under the daemon's directory, other than the
// test disk the harness mounted.
func (d *Daemon) mounts() []string {
	mounts, err := hostclean.Mounts(d.Dir)
	if err != nil {
		return []string{err.Error()}
	}
	if d.Disk == "" {
		return mounts
	}
	disk := d.Disk
	if real, err := filepath.EvalSymlinks(disk); err == nil {
		disk = real
	}
	return slices.DeleteFunc(mounts, func(m string) bool { return m == disk })
}

// mountTmpfs mounts a tmpfs of size bytes at dir, making dir.
func mountTmpfs(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700,size="+strconv.FormatInt(size, 10)); err != nil {
		return fmt.Errorf("mount a tmpfs at %s: %w", dir, err)
	}
	return nil
}

// processes lists processes whose command line names the daemon's
// directory, or which sit in a cgroup under its tag, other than the
// daemon itself and this test.
func (d *Daemon) processes() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || (d.cmd != nil && pid == d.cmd.Process.Pid && !d.stopped()) {
			continue
		}
		if d.ownedByInit(pid) || d.runningDaemonsSpare(pid) {
			continue
		}
		if strings.Contains(cmdline(pid), d.Dir) {
			out = append(out, pid)
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if bytes.Contains(cg, []byte("/"+d.Tag+"/")) || bytes.Contains(cg, []byte(d.slicePrefix())) {
			out = append(out, pid)
		}
	}
	return out
}

// statFields are the fields of /proc/<pid>/stat after the command name:
// state, parent, ...
func statFields(pid int) []string {
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(stat, ')'); i > 0 {
		return strings.Fields(string(stat[i+1:]))
	}
	return nil
}

// ownedByInit reports a zombie whose parent is PID 1: a process of a killed
// berthd, reparented to init, that ended and waits for init to reap it.
// It holds nothing but its PID, and only init may reap it.
func (d *Daemon) ownedByInit(pid int) bool {
	f := statFields(pid)
	return len(f) >= 2 && f[0] == "Z" && f[1] == "1"
}

// runningDaemonsSpare reports the spare container monitor a running berthd
// keeps ready (monitor_spare_linux.go): its own, not a leak, while it runs.
func (d *Daemon) runningDaemonsSpare(pid int) bool {
	if d.cmd == nil || d.stopped() {
		return false
	}
	f := statFields(pid)
	return len(f) >= 2 && f[1] == strconv.Itoa(d.cmd.Process.Pid) && strings.Contains(cmdline(pid), "--spare")
}

// slicePrefix is the tag as the start of a systemd slice name: systemd
// reads "-" in a slice name as nesting, so the tag's dashes become "_".
func (d *Daemon) slicePrefix() string { return strings.ReplaceAll(d.Tag, "-", "_") }

// cgroupParents are the cgroup paths (below a hierarchy's root) that hold
// every cgroup of the daemon's pods: /<tag> for the cgroupfs driver, and
// for the systemd driver the tag's slice, where systemd's naming rules put
// every slice CgroupParent returns ("berth_test_x-pod.slice" is
// "berth_test_x.slice/berth_test_x-pod.slice"). Both are checked whatever
// the driver: a directory that is not there costs nothing.
func (d *Daemon) cgroupParents() []string {
	parents := []string{"/" + d.Tag}
	if dir, err := oci.CgroupDir(d.slicePrefix()+".slice", true); err == nil {
		parents = append(parents, dir)
	}
	return parents
}

// cgroups lists cgroup directories below the daemon's cgroup parents in
// every hierarchy, deepest first; the parents themselves go with the
// daemon.
func (d *Daemon) cgroups() []string {
	var out []string
	for _, parent := range d.cgroupParents() {
		tops, err := hostclean.CgroupPaths(parent)
		if err != nil {
			return []string{err.Error()}
		}
		dirs, err := hostclean.CgroupDirs(parent)
		if err != nil {
			return []string{err.Error()}
		}
		for _, c := range dirs {
			if !slices.Contains(tops, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// removeTagCgroups removes the daemon's cgroup parents, which go with it,
// in every hierarchy.
func (d *Daemon) removeTagCgroups() error {
	var errs []error
	for _, parent := range d.cgroupParents() {
		errs = append(errs, hostclean.RemoveCgroupTree(parent))
	}
	return errors.Join(errs...)
}

// describe is a process's command line, or for one that has none (a
// zombie), its name, state and parent from /proc/<pid>/stat.
func describe(pid int) string {
	if c := cmdline(pid); c != "" {
		return c
	}
	if f := statFields(pid); len(f) >= 2 {
		return fmt.Sprintf("(no command line) state %s parent %s", f[0], f[1])
	}
	return "(gone)"
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// veths lists the interfaces left on the daemon's default bridge: the host
// ends of its pods' veths. Other daemons' veths are not its own.
func (d *Daemon) veths() []string {
	ports, err := hostnet.Ports(d.Config.CNI.DefaultBridge)
	if err != nil {
		return []string{err.Error()}
	}
	return ports
}

var subnetSeq atomic.Uint32

// testSubnet picks a /24 for a daemon's default network in 10.197.0.0/16:
// random per process, then sequential, so concurrent test binaries rarely
// meet and one binary's daemons never do.
func testSubnet() string {
	if subnetSeq.Load() == 0 {
		b := make([]byte, 1)
		rand.Read(b)
		subnetSeq.CompareAndSwap(0, uint32(b[0])|0x100)
	}
	return fmt.Sprintf("10.197.%d.0/24", subnetSeq.Add(1)%256)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the berthd binary under test: $BERTHD if set (make test
// builds it once), else one built from this module the first time it is
// asked, at binaryCache.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BERTHD"); p != "" {
		return p
	}
	binOnce.Do(func() { binPath, binErr = buildBinary() })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// binaryCache is where Binary builds berthd: one file, rebuilt by each
// test binary that needs it, rather than a new 27 MB directory per run.
func binaryCache() string { return filepath.Join(os.TempDir(), "berth-test-bin", "berthd") }

// buildBinary builds berthd beside binaryCache and renames it there, so
// that test packages building at once never run a half-written file.
func buildBinary() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := binaryCache()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "berthd-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // gone once renamed
	cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/berthd")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/berthd: %v\n%s", err, msg)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// moduleRoot finds the directory of Berth's go.mod from the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the berth module")
	}
	return filepath.Dir(mod), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
