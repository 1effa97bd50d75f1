package sandbox

// Steps 4 and 5 of a monitor (see monitor.go): handed over to the C
// monitor, or done here in Go where that cannot run.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/sandbox/monitorc"
	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// run does steps 4 and 5 for the container's process pid and writes
// exit.json in dir.
func (mon *monitor) run(dir string, pid int) error {
	if monitorc.Available && !mon.goOnly {
		err := monitorc.Exec(mon.handoff(dir, pid)) // returns only on failure
		fmt.Fprintf(os.Stderr, "berth-monitor: staying in Go: %v\n", err)
	}
	// Only a failed exec (or a test) gets here: the Go monitor keeps its
	// startup memory, the price of carrying on rather than losing the
	// container's output and exit status.
	mon.start()
	st := mon.wait(pid)
	return writeJSONAtomic(filepath.Join(dir, exitFile), st)
}

// handoff is what the C monitor takes over.
func (mon *monitor) handoff(dir string, pid int) monitorc.Handoff {
	h := monitorc.Handoff{
		Dir:     dir,
		Pid:     pid,
		Stdin:   mon.stdin,
		Control: mon.control,
		OOMFile: mon.oomFile,
		Drain:   drainTimeout,
	}
	for _, o := range mon.outputs {
		switch {
		case mon.cfg.Tty:
			h.Console = o.f
		case o.stream == "stdout":
			h.Stdout = o.f
		default:
			h.Stderr = o.f
		}
	}
	if mon.log != nil {
		h.Log, h.LogDir, h.LogPath = mon.log.f, mon.log.dir, mon.log.rel
	}
	return h
}

// start copies the output into the log and serves the control socket.
func (mon *monitor) start() {
	for _, o := range mon.outputs {
		mon.copiers.Add(1)
		go func() {
			defer mon.copiers.Done()
			if mon.log == nil {
				discard(o.f)
				return
			}
			copyLog(mon.log, o.stream, o.f)
		}()
	}
	l, err := net.FileListener(mon.control)
	mon.control.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor: control socket: %v\n", err)
		return
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
}

func discard(r *os.File) {
	buf := make([]byte, 4096)
	for {
		if _, err := r.Read(buf); err != nil {
			return
		}
	}
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
	if mon.stdin != nil {
		mon.stdin.Close()
	}
	done := make(chan struct{})
	go func() { mon.copiers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		for _, o := range mon.outputs {
			o.f.Close()
		}
		<-done
	}
	if mon.log != nil {
		mon.log.close()
	}
	st.OOMKilled = counter(mon.oomFile, "oom_kill") > 0
	// Reap what is left (processes of a shared PID namespace that ended).
	for {
		var ws unix.WaitStatus
		if wpid, _ := unix.Wait4(-1, &ws, unix.WNOHANG, nil); wpid <= 0 {
			break
		}
	}
	return st
}

// oomCounterFile is the file of the container's memory cgroup that counts
// its OOM kills on an "oom_kill N" line, or "" if the path is not valid.
func oomCounterFile(cgroupsPath string, systemdDriver bool) string {
	p, err := oci.CgroupDir(cgroupsPath, systemdDriver)
	if err != nil {
		return ""
	}
	if cgroups.IsCgroup2UnifiedMode() {
		return filepath.Join("/sys/fs/cgroup", p, "memory.events")
	}
	return filepath.Join("/sys/fs/cgroup/memory", p, "memory.oom_control")
}

// counter reads "key N" from a cgroup file of such lines; 0 when the file
// or the key is missing.
func counter(file, key string) int64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := statValue(data, key)
	return int64(n)
}

// writeJSONAtomic writes v to path through a synced temporary file and a
// rename, then syncs the directory so that the rename itself survives a
// crash.
func writeJSONAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := oci.WriteFileAtomic(path, data, 0o600); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// readJSON decodes the JSON file at path into v.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// readExitStatus reads exit.json; ok is false when the monitor has not
// written it.
func readExitStatus(dir string) (st exitStatus, ok bool, err error) {
	err = readJSON(filepath.Join(dir, exitFile), &st)
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read exit status: %w", err)
	}
	return st, true, nil
}
