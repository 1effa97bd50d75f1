package sandbox

// The container monitor: one small process per container, berthd itself
// re-executed as "berth-monitor".
//
// Why one per container: the monitor owns a container's stdio, so a crash
// or a restart of berthd loses no output and no exit status. One monitor per
// pod would save a process per extra container but tie every container's
// output and exit to one process; a monitor costs about 1 MiB of RSS once it
// is the C program (see below and the benchmark), and it is simple: its
// life is its container's life.
//
// A monitor:
//  1. becomes a child subreaper, so the container's first process is its
//     child or is reparented to it;
//  2. makes pipes for stdout and stderr (and stdin when asked), or a
//     console socket for a terminal, and calls the runtime's Create;
//  3. reports the container's PID (or the error) to berthd on fd 3 and
//     closes it; berthd then knows the container exists;
//  4. copies the output into the CRI log and answers "reopen" requests
//     from berthd on m.sock in its state directory;
//  5. reaps its children until the container's process is gone, drains the
//     output, reads the cgroup's OOM-kill counter and writes exit.json
//     atomically; then it exits.
//
// Steps 1 to 3 need Go (the runtimes are Go); steps 4 and 5 do not, and
// last as long as the container. So after step 3 the monitor execs itself
// into the C program of package monitorc, which does them with a fraction
// of the memory (about 1 MiB of RSS instead of 16), on the same files and
// protocol. If the exec fails the Go code does them (monitor_run.go); the
// tests also run it as the reference the C program must match. (berthd
// itself needs cgo: see oci/nsenter/nsenter_nocgo.go.)
//
// Its files, in <state>/containers/<id>/:
//
//	monitor.json  what to run (written by berthd)
//	monitor.log   the monitor's own stderr
//	m.sock        control socket: "reopen\n" → "ok\n" or "error: ...\n";
//	              "attach\n" with output sockets → "ok\n" with the stdin fd
//	              (C monitor only; container_attach.go); "close-stdin\n"
//	exit.json     exit status (written by the monitor, once)
//	status.json   the monitor's and the container's pids (written by berthd)

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/sandbox/monitorc"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

const (
	monitorRole       = "berth-monitor"
	monitorConfigFile = "monitor.json"
	monitorLogFile    = "monitor.log"
	monitorSocket     = "m.sock"
	consoleSocket     = "console.sock"
	exitFile          = "exit.json"
	statusFile        = "status.json"
	// createTimeout bounds a runtime's Create when the caller set no deadline.
	createTimeout = 2 * time.Minute
	// drainTimeout bounds how long output is read after the container's
	// process exited: a process outside its PID namespace may still hold
	// the pipes.
	drainTimeout = 2 * time.Second
)

// monitorConfig is monitor.json.
type monitorConfig struct {
	ID           string      `json:"id"`
	Bundle       string      `json:"bundle"`
	Handler      string      `json:"handler"`
	Runtime      oci.Handler `json:"runtime"`
	RuntimeState string      `json:"runtime_state"`
	CgroupDriver string      `json:"cgroup_driver"`
	CgroupsPath  string      `json:"cgroups_path"`
	LogPath      string      `json:"log_path,omitempty"`
	// LogDir is the pod's log directory, which LogPath must stay beneath.
	LogDir    string `json:"log_dir,omitempty"`
	Stdin     bool   `json:"stdin,omitempty"`
	StdinOnce bool   `json:"stdin_once,omitempty"`
	Tty       bool   `json:"tty,omitempty"`
}

// syncMessage is what the monitor tells berthd on fd 3.
type syncMessage struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	// Class is the errdefs class of Error, so berthd answers with the
	// right gRPC code.
	Class string `json:"class,omitempty"`
}

// errClasses are the errdefs classes a monitor passes on.
var errClasses = []error{errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrNotImplemented,
	errdefs.ErrFailedPrecondition, errdefs.ErrAlreadyExists, errdefs.ErrPermissionDenied, errdefs.ErrUnavailable}

func errClass(err error) string {
	for _, c := range errClasses {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return ""
}

// syncError rebuilds a monitor's error with its class.
func (m syncMessage) syncError() error {
	for _, c := range errClasses {
		if m.Class == c.Error() {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(m.Error, ": "+c.Error()), c)
		}
	}
	return errors.New(m.Error)
}

// exitStatus is exit.json.
type exitStatus struct {
	ExitCode   int32     `json:"exit_code"`
	Signal     int       `json:"signal,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
	OOMKilled  bool      `json:"oom_killed,omitempty"`
}

// MonitorMain is the "berth-monitor" role. It never returns.
//
// It starts as a spare ("berth-monitor --spare <state>"): berthd keeps one
// started ahead, so that CreateContainer does not wait for a process to
// start and initialise (about 30 ms of the binary's package
// initialisation). The spare waits on fd 4 for the state directory of the
// container it is to run; end of file there means berthd no longer needs
// it, and it exits.
func MonitorMain() {
	// A long-lived helper needs no allocation profile, whose bucket table
	// would otherwise stay resident.
	runtime.MemProfileRate = 0
	debug.SetGCPercent(20)
	// Caught, not ignored: an ignored signal would stay ignored in the
	// container's processes across exec. Sends to the full channel drop.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// Whatever berthd's own parent let it inherit stays out of the
	// runtime and the container (fds 3 and 4 are berthd's pipes).
	_ = unix.CloseRange(5, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if len(os.Args) != 3 || os.Args[1] != "--spare" {
		fmt.Fprintln(os.Stderr, "usage: berth-monitor --spare <berthd state dir>")
		os.Exit(2)
	}
	dir, err := awaitContainer(os.NewFile(4, "assign"))
	if err != nil {
		os.Exit(0) // berthd let the spare go
	}
	if err := runMonitor(dir, os.NewFile(3, "sync")); err != nil {
		fmt.Fprintln(os.Stderr, "berth-monitor:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// MonitorCMain is the "berth-monitor-c" role when the C constructor did
// not take the process over (it was started by hand, without its
// hand-over): it must not go on as berthd.
func MonitorCMain() {
	fmt.Fprintln(os.Stderr, monitorc.Role+": started without a hand-over from berth-monitor")
	os.Exit(2)
}

// awaitContainer reads the container's state directory from berthd and
// sends the monitor's own output to monitor.log there.
func awaitContainer(assign *os.File) (string, error) {
	line, err := bufio.NewReader(assign).ReadString('\n')
	assign.Close()
	if err != nil {
		return "", err
	}
	dir := strings.TrimSuffix(line, "\n")
	if f, err := os.OpenFile(filepath.Join(dir, monitorLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		_ = unix.Dup3(int(f.Fd()), 1, 0)
		_ = unix.Dup3(int(f.Fd()), 2, 0)
		f.Close()
	}
	return dir, nil
}

func runMonitor(dir string, syncPipe *os.File) error {
	pid, mon, err := createContainer(dir)
	if err != nil {
		_ = json.NewEncoder(syncPipe).Encode(syncMessage{Error: err.Error(), Class: errClass(err)})
		syncPipe.Close()
		return err
	}
	_ = json.NewEncoder(syncPipe).Encode(syncMessage{Pid: pid})
	syncPipe.Close()
	return mon.run(dir, pid)
}

// monitor is a running monitor's state: what createContainer set up for
// steps 4 and 5.
type monitor struct {
	cfg     monitorConfig
	log     *criLog  // nil without a log path
	outputs []output // read ends of stdout and stderr, or the console
	stdin   *os.File // stdin's write end, held open for the container's life
	control *os.File // m.sock, listening
	oomFile string   // the cgroup file counting OOM kills
	goOnly  bool     // do steps 4 and 5 in Go (tests compare the two)
	copiers sync.WaitGroup
}

// output is a stream of the container's output.
type output struct {
	stream string
	f      *os.File
}

// close releases what createContainer set up, on failure.
func (mon *monitor) close() {
	for _, o := range mon.outputs {
		o.f.Close()
	}
	for _, f := range []*os.File{mon.stdin, mon.control} {
		if f != nil {
			f.Close()
		}
	}
	if mon.log != nil {
		mon.log.close()
	}
}

// createContainer runs steps 1 to 3 of the monitor; the output stays in
// its pipes until step 4 starts.
func createContainer(dir string) (pid int, _ *monitor, retErr error) {
	if err := os.Chdir(dir); err != nil {
		return 0, nil, err
	}
	data, err := os.ReadFile(monitorConfigFile)
	if err != nil {
		return 0, nil, fmt.Errorf("read monitor config: %w", err)
	}
	mon := &monitor{}
	if err := json.Unmarshal(data, &mon.cfg); err != nil {
		return 0, nil, fmt.Errorf("parse monitor config: %w", err)
	}
	cfg := mon.cfg
	mon.oomFile = oomCounterFile(cfg.CgroupsPath, cfg.CgroupDriver == "systemd")
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, nil, fmt.Errorf("become a subreaper: %w", err)
	}
	rts, err := oci.New(oci.Options{
		StateDir:     cfg.RuntimeState,
		Handlers:     map[string]oci.Handler{cfg.Handler: cfg.Runtime},
		CgroupDriver: cfg.CgroupDriver,
		Log:          zap.NewNop(),
	})
	if err != nil {
		return 0, nil, err
	}
	if cfg.LogPath != "" {
		if mon.log, err = openCRILog(splitLogPath(cfg.LogDir, cfg.LogPath)); err != nil {
			return 0, nil, err
		}
	}
	var cio oci.IO
	var toClose []*os.File // the container's ends, closed once it has them
	defer func() {
		for _, f := range toClose {
			f.Close()
		}
		if retErr != nil {
			mon.close()
		}
	}()
	if cfg.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return 0, nil, err
		}
		cio.Stdin = r
		toClose = append(toClose, r)
		mon.stdin = w
	}
	var console net.Listener
	if cfg.Tty {
		// In the state dir, the working directory, so that the socket goes
		// with the container's state if the monitor dies here. The runtime
		// reaches it through /proc/<pid>/cwd, which keeps within the
		// 108-byte limit of socket paths however long the state dir's.
		_ = os.Remove(consoleSocket)
		if console, err = net.Listen("unix", consoleSocket); err != nil {
			return 0, nil, fmt.Errorf("console socket: %w", err)
		}
		defer console.Close() // and removes it
		cio.ConsoleSocket = fmt.Sprintf("/proc/%d/cwd/%s", os.Getpid(), consoleSocket)
	} else {
		for _, s := range []struct {
			name string
			into **os.File
		}{{"stdout", &cio.Stdout}, {"stderr", &cio.Stderr}} {
			r, w, err := os.Pipe()
			if err != nil {
				return 0, nil, err
			}
			*s.into = w
			toClose = append(toClose, w)
			mon.outputs = append(mon.outputs, output{s.name, r})
		}
	}
	ctx := context.Background()
	type received struct {
		f   *os.File
		err error
	}
	var consoleCh chan received
	if console != nil {
		consoleCh = make(chan received, 1)
		go func() {
			f, err := acceptConsole(console)
			consoleCh <- received{f, err}
		}()
	}
	pid, err = rts[cfg.Handler].Create(ctx, cfg.ID, cfg.Bundle, cio)
	if err != nil {
		return 0, nil, fmt.Errorf("create container: %w", err)
	}
	if console != nil {
		var got received
		select {
		case got = <-consoleCh:
		case <-time.After(10 * time.Second):
			got.err = errors.New("the runtime sent no console")
		}
		if got.err != nil {
			_ = rts[cfg.Handler].Delete(ctx, cfg.ID, true)
			return 0, nil, fmt.Errorf("container console: %w", got.err)
		}
		mon.outputs = append(mon.outputs, output{"stdout", got.f})
	}
	if mon.control, err = listenControl(); err != nil {
		_ = rts[cfg.Handler].Delete(ctx, cfg.ID, true)
		return 0, nil, err
	}
	return pid, mon, nil
}

// acceptConsole receives the pty master from the runtime.
func acceptConsole(l net.Listener) (*os.File, error) {
	conn, err := l.Accept()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, errors.New("console connection is not a unix socket")
	}
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := uc.ReadMsgUnix(make([]byte, 256), oob)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, fmt.Errorf("receive console: no file descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, fmt.Errorf("receive console: no file descriptor")
	}
	unix.CloseOnExec(fds[0])
	// Non-blocking, so that the Go copier's read is interrupted by Close
	// when draining times out.
	_ = unix.SetNonblock(fds[0], true)
	return os.NewFile(uintptr(fds[0]), "console"), nil
}

// listenControl listens on m.sock in the working directory (the state
// dir; a relative name keeps within the 108-byte limit of socket paths).
// It is a plain fd, served by whichever monitor carries on (serve).
func listenControl() (*os.File, error) {
	_ = os.Remove(monitorSocket)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: monitorSocket}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return os.NewFile(uintptr(fd), monitorSocket), nil
}
