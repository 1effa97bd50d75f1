// Package daemon starts the CRI runtimes the benchmark compares, each with
// its own private root, state, socket and configuration under one
// directory; finds the processes that make up each runtime for memory and
// CPU accounting; and removes everything a runtime left behind (processes,
// mounts, network namespaces, cgroups, files), also after a failure.
//
// What counts as a runtime's process:
//
//	containerd: the daemon, every containerd-shim-runc-v2 serving this
//	            daemon's socket, and what those shims run (pause, runc)
//	berthd:     every process running this berthd binary (the daemon and
//	            its roles: berth-monitor, berth-podinit, ...) and what
//	            those run
//
// minus container workloads (Options.Workload), which are the pods' own
// cost, not the runtime's.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/test/hostclean"
)

// Daemon is a CRI runtime the benchmark started.
type Daemon interface {
	// Name is the runtime's name in reports: "berth" or "containerd".
	Name() string
	// Socket is the CRI endpoint's unix socket path.
	Socket() string
	// PID is the daemon's process ID.
	PID() int
	// Processes are the runtime's processes now, the daemon first.
	Processes() ([]*Proc, error)
	// Version is the daemon's version string.
	Version() string
	// Stop ends the daemon and all it started and removes its mounts,
	// cgroups and directory. It is safe to call more than once.
	Stop() error
}

// Options are what both runtimes are given.
type Options struct {
	// Dir is private to this daemon: its root, state, socket, configuration
	// and log go below it, and Stop removes it.
	Dir string
	// CNIConfDir holds the one conflist both runtimes use; CNIBinDir its plugins.
	CNIConfDir, CNIBinDir string
	// RegistryHosts is a hosts directory in containerd's certs.d format
	// pointing at the benchmark's loopback registry.
	RegistryHosts string
	// SandboxImage is the pause image (containerd's sandbox_image).
	SandboxImage string
	// CgroupRoot is the cgroupfs parent of every pod's cgroup_parent
	// ("/berth-bench-123"); Stop removes it in every hierarchy.
	CgroupRoot string
	// Workload reports whether argv is a container's own process, not
	// runtime overhead.
	Workload func(argv []string) bool
	// Log receives the daemon's output; nil means Dir/daemon.log.
	Log *os.File
}

// process is a started daemon's common part.
type process struct {
	opts   Options
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

func (p *process) start(name string, args ...string) error {
	if err := os.MkdirAll(p.opts.Dir, 0o711); err != nil {
		return fmt.Errorf("create %s: %w", p.opts.Dir, err)
	}
	p.log = p.opts.Log
	if p.log == nil {
		f, err := os.Create(filepath.Join(p.opts.Dir, "daemon.log"))
		if err != nil {
			return fmt.Errorf("create daemon log: %w", err)
		}
		p.log = f
	}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// The daemon dies with the benchmark if the benchmark is killed; its
	// children outlive it, and the next run's cleanup cannot know them, so
	// a killed benchmark is the one case that may leave processes behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p.exited = make(chan struct{})
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	return nil
}

func (p *process) PID() int { return p.cmd.Process.Pid }

// waitSocket waits until path accepts connections or the daemon exits.
func (p *process) waitSocket(ctx context.Context, path string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("daemon exited before serving (see %s): %v", p.log.Name(), p.err)
		case <-ctx.Done():
			return fmt.Errorf("wait for socket %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// terminate sends SIGTERM and waits up to grace before SIGKILL.
func (p *process) terminate(grace time.Duration) {
	if p.cmd == nil || p.exited == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// processes selects the runtime's processes from a snapshot: roots and all
// below them, less workloads, the daemon first.
func (p *process) processes(roots func(map[int]*Proc) map[int]bool) ([]*Proc, error) {
	procs, err := Snapshot()
	if err != nil {
		return nil, err
	}
	var out []*Proc
	for pid := range descendants(procs, roots(procs)) {
		pr, ok := procs[pid]
		if !ok || (p.opts.Workload != nil && p.opts.Workload(pr.Argv)) {
			continue
		}
		out = append(out, pr)
	}
	daemon := p.PID()
	sort.Slice(out, func(i, j int) bool {
		if (out[i].PID == daemon) != (out[j].PID == daemon) {
			return out[i].PID == daemon
		}
		return out[i].PID < out[j].PID
	})
	return out, nil
}

// cleanup kills every process under roots (workloads too), then removes
// the mounts and the directory under Dir and the pods' cgroups.
func (p *process) cleanup(roots func(map[int]*Proc) map[int]bool) error {
	var errs []error
	if procs, err := Snapshot(); err != nil {
		errs = append(errs, err)
	} else {
		var pids []int
		for pid := range descendants(procs, roots(procs)) {
			if pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
		killAll(pids, 5*time.Second)
	}
	if p.opts.CgroupRoot != "" {
		if err := hostclean.RemoveCgroupTree(p.opts.CgroupRoot); err != nil {
			errs = append(errs, err)
		}
	}
	if err := hostclean.Unmount(p.opts.Dir); err != nil {
		errs = append(errs, err)
	} else if err := os.RemoveAll(p.opts.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", p.opts.Dir, err))
	}
	return errors.Join(errs...)
}
