package sandbox

// The container monitor: one small process per container, berthd itself
// re-executed as "berth-monitor".
//
// Why one per container: the monitor owns a container's stdio, so a crash
// or a restart of berthd loses no output and no exit status. One monitor per
// pod would save a process per extra container but tie every container's
// output and exit to one process; a monitor costs a few MiB of RSS (see the
// benchmark), below the per-pod goal for the common one- and two-container
// pods, and it is simple: its life is its container's life.
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
// Its files, in <state>/containers/<id>/:
//
//	monitor.json  what to run (written by berthd)
//	monitor.log   the monitor's own stderr
//	m.sock        control socket: "reopen\n" → "ok\n" or "error: ...\n"
//	exit.json     exit status (written by the monitor, once)

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/systemd"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

const (
	monitorConfigFile = "monitor.json"
	monitorLogFile    = "monitor.log"
	monitorSocket     = "m.sock"
	exitFile          = "exit.json"
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
	Stdin        bool        `json:"stdin,omitempty"`
	StdinOnce    bool        `json:"stdin_once,omitempty"`
	Tty          bool        `json:"tty,omitempty"`
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
	report := func(m syncMessage) {
		if syncPipe == nil {
			return
		}
		_ = json.NewEncoder(syncPipe).Encode(m)
		syncPipe.Close()
		syncPipe = nil
	}
	pid, mon, err := createContainer(dir)
	if err != nil {
		report(syncMessage{Error: err.Error(), Class: errClass(err)})
		return err
	}
	report(syncMessage{Pid: pid})
	trimMemory()
	st := mon.wait(pid)
	if err := writeJSONAtomic(filepath.Join(dir, exitFile), st); err != nil {
		return err
	}
	return nil
}

// monitor is a running monitor's state.
type monitor struct {
	cfg     monitorConfig
	log     *criLog
	copiers sync.WaitGroup
	closers []*os.File // read ends, closed when draining times out
	keep    []*os.File // stdin write end, held open for the container's life
}

// createContainer runs steps 1 to 3 of the monitor.
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
		if mon.log, err = openCRILog(cfg.LogPath); err != nil {
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
			for _, f := range append(mon.closers, mon.keep...) {
				f.Close()
			}
			if mon.log != nil {
				mon.log.close()
			}
		}
	}()
	if cfg.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return 0, nil, err
		}
		cio.Stdin = r
		toClose = append(toClose, r)
		mon.keep = append(mon.keep, w)
	}
	var console net.Listener
	if cfg.Tty {
		// A short path: unix socket paths are limited to 108 bytes.
		cdir, err := os.MkdirTemp("", "berth-console-")
		if err != nil {
			return 0, nil, err
		}
		defer os.RemoveAll(cdir)
		cio.ConsoleSocket = filepath.Join(cdir, "c.sock")
		if console, err = net.Listen("unix", cio.ConsoleSocket); err != nil {
			return 0, nil, fmt.Errorf("console socket: %w", err)
		}
		defer console.Close()
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
			mon.closers = append(mon.closers, r)
			mon.copy(s.name, r)
		}
	}
	ctx := context.Background()
	var consoleErr chan error
	if console != nil {
		consoleErr = make(chan error, 1)
		go func() { consoleErr <- mon.acceptConsole(console) }()
	}
	pid, err = rts[cfg.Handler].Create(ctx, cfg.ID, cfg.Bundle, cio)
	if err != nil {
		return 0, nil, fmt.Errorf("create container: %w", err)
	}
	if console != nil {
		select {
		case err = <-consoleErr:
		case <-time.After(10 * time.Second):
			err = errors.New("the runtime sent no console")
		}
		if err != nil {
			_ = rts[cfg.Handler].Delete(ctx, cfg.ID, true)
			return 0, nil, fmt.Errorf("container console: %w", err)
		}
	}
	if err := mon.serve(); err != nil {
		_ = rts[cfg.Handler].Delete(ctx, cfg.ID, true)
		return 0, nil, err
	}
	return pid, mon, nil
}

// copy starts copying r into the log as stream.
func (mon *monitor) copy(stream string, r *os.File) {
	mon.copiers.Add(1)
	go func() {
		defer mon.copiers.Done()
		if mon.log == nil {
			discard(r)
			return
		}
		copyLog(mon.log, stream, r)
	}()
}

func discard(r *os.File) {
	buf := make([]byte, 4096)
	for {
		if _, err := r.Read(buf); err != nil {
			return
		}
	}
}

// acceptConsole receives the pty master from the runtime and copies it
// into the log as stdout.
func (mon *monitor) acceptConsole(l net.Listener) error {
	conn, err := l.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return errors.New("console connection is not a unix socket")
	}
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := uc.ReadMsgUnix(make([]byte, 256), oob)
	if err != nil {
		return fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return fmt.Errorf("receive console: no file descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return fmt.Errorf("receive console: no file descriptor")
	}
	_ = unix.SetNonblock(fds[0], true)
	master := os.NewFile(uintptr(fds[0]), "console")
	mon.closers = append(mon.closers, master)
	if mon.cfg.Stdin {
		// Input will come through attach; hold the master's write side.
		mon.keep = append(mon.keep, master)
	}
	mon.copy("stdout", master)
	return nil
}

// serve answers berthd's requests on m.sock until the monitor exits.
func (mon *monitor) serve() error {
	_ = os.Remove(monitorSocket)
	l, err := net.Listen("unix", monitorSocket) // relative: the monitor's cwd is its state dir
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mon.handle(conn)
		}
	}()
	return nil
}

func (mon *monitor) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	var reply string
	switch strings.TrimSpace(line) {
	case "reopen":
		if mon.log == nil {
			reply = "error: the container has no log path"
		} else if err := mon.log.reopen(); err != nil {
			reply = "error: " + err.Error()
		} else {
			reply = "ok"
		}
	default:
		reply = "error: unknown request"
	}
	_, _ = conn.Write([]byte(reply + "\n"))
}

// wait reaps children until pid exits, drains the output and returns the
// exit status.
func (mon *monitor) wait(pid int) exitStatus {
	var st exitStatus
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// The process is not ours to wait for (ECHILD): its status is lost.
			st.ExitCode = 255
			break
		}
		if wpid != pid {
			continue
		}
		switch {
		case ws.Exited():
			st.ExitCode = int32(ws.ExitStatus())
		case ws.Signaled():
			st.Signal = int(ws.Signal())
			st.ExitCode = 128 + int32(ws.Signal())
		}
		break
	}
	st.FinishedAt = time.Now()
	for _, f := range mon.keep {
		f.Close()
	}
	done := make(chan struct{})
	go func() { mon.copiers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		for _, f := range mon.closers {
			f.Close()
		}
		<-done
	}
	if mon.log != nil {
		mon.log.close()
	}
	st.OOMKilled = oomKilled(mon.cfg.CgroupsPath, mon.cfg.CgroupDriver == "systemd")
	// Reap what is left (processes of a shared PID namespace that ended).
	for {
		var ws unix.WaitStatus
		if wpid, _ := unix.Wait4(-1, &ws, unix.WNOHANG, nil); wpid <= 0 {
			break
		}
	}
	return st
}

// oomKilled reads the OOM-kill counter of the container's memory cgroup.
func oomKilled(cgroupsPath string, systemdDriver bool) bool {
	p := cgroupsPath
	if systemdDriver {
		parts := strings.SplitN(cgroupsPath, ":", 3)
		if len(parts) != 3 {
			return false
		}
		slice, err := systemd.ExpandSlice(parts[0])
		if err != nil {
			return false
		}
		p = filepath.Join(slice, parts[1]+"-"+parts[2]+".scope")
	}
	var file, key string
	if cgroups.IsCgroup2UnifiedMode() {
		file, key = filepath.Join("/sys/fs/cgroup", p, "memory.events"), "oom_kill"
	} else {
		file, key = filepath.Join("/sys/fs/cgroup/memory", p, "memory.oom_control"), "oom_kill"
	}
	return counter(file, key) > 0
}

// counter reads "key N" from a cgroup file of such lines.
func counter(file, key string) int64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// writeJSONAtomic writes v to path through a synced temporary file and a
// rename, then syncs the directory.
func writeJSONAtomic(path string, v any) (retErr error) {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// readExitStatus reads exit.json; ok is false when the monitor has not
// written it.
func readExitStatus(dir string) (st exitStatus, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, exitFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read exit status: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, false, fmt.Errorf("parse %s: %w", filepath.Join(dir, exitFile), err)
	}
	return st, true, nil
}
