package oci

// The builtin runtime's on-disk state, under <state>/runtime/<handler>/<id>/:
//
//	state.json  containerState, written atomically (temp file, fsync, rename)
//	exec.fifo   exists from Create until Start; the init blocks reading it
//	seccomp.bpf the compiled seccomp filter (sock_filter array), loaded by
//	            the init and by every exec; absent without a filter
//
// Container states as the runtime sees them:
//
//	Create ──► created ──Start──► running ──(init exits)──► stopped ──Delete──► (gone)
//	              │                                             ▲
//	              └────────────────(init exits / Kill)──────────┘
//
// created: the init's PID is alive (same start time) and exec.fifo exists.
// running: alive and exec.fifo gone. stopped: the PID is gone, a zombie, or
// now belongs to another process (its start time differs).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
)

const stateVersion = 1

type containerState struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Bundle  string `json:"bundle"`
	Rootfs  string `json:"rootfs"`
	Pid     int    `json:"pid"`
	// StartTime is field 22 of /proc/<pid>/stat: it tells the init from a
	// later process that got the same PID.
	StartTime uint64      `json:"start_time"`
	Created   time.Time   `json:"created"`
	Cgroup    cgroupState `json:"cgroup"`
	// Seccomp is set when the container has a filter (seccomp.bpf).
	Seccomp *seccompState `json:"seccomp,omitempty"`
}

const seccompFile = "seccomp.bpf"

type seccompState struct {
	Flags uint `json:"flags,omitempty"`
}

func (r *builtin) dir(id string) string { return filepath.Join(r.root, id) }

func (r *builtin) load(id string) (*containerState, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.dir(id), "state.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	var s containerState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode state of %s: %w", id, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("state of %s: version %d, want %d", id, s.Version, stateVersion)
	}
	return &s, nil
}

func (r *builtin) save(s *containerState) error {
	s.Version = stateVersion
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", s.ID, err)
	}
	return WriteFileAtomic(filepath.Join(r.dir(s.ID), "state.json"), b, 0o600)
}

// status derives the container's status from /proc and the fifo.
func (r *builtin) status(s *containerState) Status {
	if !s.alive() {
		return StatusStopped
	}
	if _, err := os.Stat(filepath.Join(r.dir(s.ID), "exec.fifo")); err == nil {
		return StatusCreated
	}
	return StatusRunning
}

// alive reports whether the init still runs (and is not a zombie).
func (s *containerState) alive() bool {
	st, start, err := procStat(s.Pid)
	return err == nil && start == s.StartTime && st != 'Z' && st != 'X'
}

// procStat reads a process's state letter and start time (in clock ticks
// since boot) from /proc/<pid>/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold spaces or ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+2:])
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return f[0][0], start, nil
}

// validID refuses IDs that are not a single path element.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id || len(id) > 1024 {
		return fmt.Errorf("container id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}
