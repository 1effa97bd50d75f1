package daemon

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"
)

//go:embed containerd.toml.tmpl
var containerdConfig string

var containerdTemplate = template.Must(template.New("containerd.toml").Parse(containerdConfig))

// Containerd is a private containerd with its CRI plugin.
type Containerd struct {
	process
	socket  string
	version string
	stop    sync.Once
	stopErr error
}

// ContainerdBinaries are the programs a containerd run needs.
var ContainerdBinaries = []string{"containerd", "containerd-shim-runc-v2", "runc"}

// StartContainerd writes a configuration under opts.Dir and starts
// containerd on it, returning once its socket accepts connections.
func StartContainerd(ctx context.Context, opts Options) (_ *Containerd, retErr error) {
	for _, bin := range ContainerdBinaries {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install -y containerd runc containernetworking-plugins, or hack/containerd/install.sh): %w", bin, err)
		}
	}
	runc, _ := exec.LookPath("runc")
	c := &Containerd{process: process{opts: opts}, socket: filepath.Join(opts.Dir, "containerd.sock")}
	out, err := exec.CommandContext(ctx, "containerd", "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("containerd --version: %w", err)
	}
	c.version = strings.TrimSpace(string(out))

	var cfg bytes.Buffer
	if err := containerdTemplate.Execute(&cfg, map[string]string{
		"Root":          filepath.Join(opts.Dir, "root"),
		"State":         filepath.Join(opts.Dir, "state"),
		"Socket":        c.socket,
		"SandboxImage":  opts.SandboxImage,
		"CNIBinDir":     opts.CNIBinDir,
		"CNIConfDir":    opts.CNIConfDir,
		"Runc":          runc,
		"RegistryHosts": opts.RegistryHosts,
	}); err != nil {
		return nil, fmt.Errorf("render containerd config: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("create %s: %w", opts.Dir, err)
	}
	path := filepath.Join(opts.Dir, "config.toml")
	if err := os.WriteFile(path, cfg.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("write containerd config: %w", err)
	}
	if err := c.start("containerd", "--config", path); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			c.Stop()
		}
	}()
	if err := c.waitSocket(ctx, c.socket); err != nil {
		return nil, err
	}
	return c, nil
}

// Name implements Daemon.
func (c *Containerd) Name() string { return "containerd" }

// Socket implements Daemon.
func (c *Containerd) Socket() string { return c.socket }

// Version implements Daemon.
func (c *Containerd) Version() string { return c.version }

// Processes implements Daemon: the daemon, its shims and what they run.
func (c *Containerd) Processes() ([]*Proc, error) { return c.processes(c.roots) }

// roots are the daemon and the shims started for its socket. Shims
// daemonize, so they are not the daemon's children: they are known by
// "-address <socket>" on their command line.
func (c *Containerd) roots(procs map[int]*Proc) map[int]bool {
	roots := map[int]bool{c.PID(): true}
	for pid, p := range procs {
		if !strings.HasPrefix(p.Name(), "containerd-shim") {
			continue
		}
		if i := slices.Index(p.Argv, "-address"); i >= 0 && i+1 < len(p.Argv) && p.Argv[i+1] == c.socket {
			roots[pid] = true
		}
	}
	return roots
}

// Stop implements Daemon. containerd leaves its shims and containers
// running when it exits, so they are killed after it.
func (c *Containerd) Stop() error {
	c.stop.Do(func() {
		if c.cmd == nil {
			c.stopErr = c.cleanupOnly()
			return
		}
		// Shims are found through the daemon's socket path, which stays
		// the same after the daemon exits.
		procs, _ := Snapshot()
		var shims map[int]bool
		if procs != nil {
			shims = c.roots(procs)
		}
		c.terminate(10 * time.Second)
		c.stopErr = c.cleanup(func(now map[int]*Proc) map[int]bool {
			r := c.roots(now)
			for pid := range shims {
				if _, ok := now[pid]; ok {
					r[pid] = true
				}
			}
			delete(r, c.PID())
			return r
		})
		if c.opts.Log == nil && c.log != nil {
			c.log.Close()
		}
	})
	return c.stopErr
}

func (c *Containerd) cleanupOnly() error {
	return c.cleanup(func(now map[int]*Proc) map[int]bool { return map[int]bool{} })
}
