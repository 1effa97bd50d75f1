package daemon

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"
)

//go:embed berthd.toml.tmpl
var berthdConfig string

var berthdTemplate = template.Must(template.New("berthd.toml").Parse(berthdConfig))

// Berthd is a private berthd.
type Berthd struct {
	process
	binary     string
	binaryInfo os.FileInfo
	socket     string
	profile    string // unix socket serving net/http/pprof
	version    string
	stop       sync.Once
	stopErr    error
}

// BuildBerthd builds berthd from the module at moduleDir into out.
func BuildBerthd(ctx context.Context, moduleDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/berthd")
	cmd.Dir = moduleDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build berthd: %w\n%s", err, msg)
	}
	return nil
}

// StartBerthd writes a configuration under opts.Dir and starts the berthd
// binary on it, returning once its socket accepts connections.
func StartBerthd(ctx context.Context, binary string, opts Options) (_ *Berthd, retErr error) {
	fi, err := os.Stat(binary)
	if err != nil {
		return nil, fmt.Errorf("berthd binary: %w", err)
	}
	b := &Berthd{
		process:    process{opts: opts},
		binary:     binary,
		binaryInfo: fi,
		socket:     filepath.Join(opts.Dir, "berth.sock"),
		profile:    filepath.Join(opts.Dir, "pprof.sock"),
	}
	out, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("berthd --version: %w", err)
	}
	b.version = strings.TrimSpace(string(out))

	// Only the keys that differ from berthd's defaults (berthd
	// --print-default-config); importing cmd/berthd/config would tie the
	// benchmark's build to every component's.
	var data bytes.Buffer
	if err := berthdTemplate.Execute(&data, map[string]string{
		"Socket":        b.socket,
		"Root":          filepath.Join(opts.Dir, "root"),
		"State":         filepath.Join(opts.Dir, "state"),
		"Profile":       b.profile,
		"RegistryHosts": opts.RegistryHosts,
		"CNIConfDir":    opts.CNIConfDir,
		"CNIBinDir":     opts.CNIBinDir,
	}); err != nil {
		return nil, fmt.Errorf("render berthd config: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("create %s: %w", opts.Dir, err)
	}
	path := filepath.Join(opts.Dir, "config.toml")
	if err := os.WriteFile(path, data.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("write berthd config: %w", err)
	}
	if err := b.start(binary, "--config", path); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			b.Stop()
		}
	}()
	if err := b.waitSocket(ctx, b.socket); err != nil {
		return nil, err
	}
	return b, nil
}

// Name implements Daemon.
func (b *Berthd) Name() string { return "berth" }

// Socket implements Daemon.
func (b *Berthd) Socket() string { return b.socket }

// Version implements Daemon.
func (b *Berthd) Version() string { return b.version }

// Processes implements Daemon: every process of this berthd binary, and
// what those run.
func (b *Berthd) Processes() ([]*Proc, error) { return b.processes(b.roots) }

// roots are the daemon and its monitors, which run this very binary and
// may have been reparented away from it. A monitor names a state directory
// under opts.Dir in its argv; other berthds of the same binary (the tests
// run several at once) name their own and are left alone. berth-podinit
// names none, but it is the daemon's child while the daemon lives and in
// its pod's cgroup after.
func (b *Berthd) roots(procs map[int]*Proc) map[int]bool {
	roots := map[int]bool{b.PID(): true}
	for pid, p := range procs {
		if p.SameExecutable(b.binaryInfo) && namesDir(p.Argv, b.opts.Dir) {
			roots[pid] = true
		}
	}
	return roots
}

// namesDir reports whether an argument of argv is dir or a path below it.
func namesDir(argv []string, dir string) bool {
	dir = filepath.Clean(dir)
	for _, a := range argv {
		if a == dir || strings.HasPrefix(a, dir+"/") {
			return true
		}
	}
	return false
}

// Profiles is an HTTP client whose requests reach berthd's pprof server;
// URLs are "http://berthd/debug/pprof/...".
func (b *Berthd) Profiles() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", b.profile)
		},
	}}
}

// Stop implements Daemon. Containers outlive berthd by design, so their
// monitors are killed after it.
func (b *Berthd) Stop() error {
	b.stop.Do(func() {
		b.terminate(15 * time.Second)
		b.stopErr = b.cleanup(func(now map[int]*Proc) map[int]bool {
			r := b.roots(now)
			delete(r, b.PID())
			return r
		})
		if b.opts.Log == nil && b.log != nil {
			b.log.Close()
		}
	})
	return b.stopErr
}
