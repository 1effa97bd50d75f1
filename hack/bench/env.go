package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// env is what every run shares: the loopback registry with the images, the
// registry hosts directory both runtimes read, and the CNI conflist both
// runtimes use.
type env struct {
	dir      string // the benchmark's scratch directory
	tb       *programTB
	reg      *registry.Registry
	hostsDir string // certs.d format: <host>/hosts.toml
	cniConf  string // directory holding the one conflist
	cniBin   string
	bridge   string
	ipamDir  string

	busybox, pause, large, sibling string // references in reg
	pauseKind                      string // how the pause image was built
	largeImg, siblingImg           v1.Image
}

// newEnv starts the registry, pushes the images and writes the hosts and
// CNI configuration under dir.
func newEnv(dir string, o options) (_ *env, retErr error) {
	e := &env{dir: dir, tb: &programTB{dir: dir}, cniBin: o.cniBin, bridge: o.bridge}
	defer func() {
		if retErr != nil {
			e.close()
		}
	}()
	pause, kind, err := pauseImage(dir)
	e.pauseKind = kind
	if err != nil {
		return nil, fmt.Errorf("pause image: %w", err)
	}
	err = e.tb.do(func() {
		e.reg = registry.Start(e.tb)
		e.largeImg = images.Large(o.largeLayers, o.largeMB<<20, images.BenchSeed)
		e.siblingImg = images.LargeSibling(o.largeLayers, o.largeMB<<20, images.BenchSeed, o.sharedLayers)
		e.busybox = e.reg.Push(e.tb, "bench/busybox:latest", images.Busybox())
		e.pause = e.reg.Push(e.tb, "bench/pause:latest", pause)
		e.large = e.reg.Push(e.tb, "bench/large:latest", e.largeImg)
		e.sibling = e.reg.Push(e.tb, "bench/large-sibling:latest", e.siblingImg)
	})
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}

	e.hostsDir = filepath.Join(dir, "certs.d")
	hostDir := filepath.Join(e.hostsDir, e.reg.Host())
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return nil, fmt.Errorf("create hosts dir: %w", err)
	}
	hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", e.reg.URL(), e.reg.URL())
	if err := os.WriteFile(filepath.Join(hostDir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		return nil, fmt.Errorf("write hosts.toml: %w", err)
	}

	e.cniConf = filepath.Join(dir, "net.d")
	e.ipamDir = filepath.Join(dir, "ipam")
	if err := os.MkdirAll(e.cniConf, 0o755); err != nil {
		return nil, fmt.Errorf("create CNI conf dir: %w", err)
	}
	conf, err := json.MarshalIndent(conflist(o.bridge, o.subnet, e.ipamDir), "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(e.cniConf, "10-berth-bench.conflist"), conf, 0o644); err != nil {
		return nil, fmt.Errorf("write conflist: %w", err)
	}
	return e, nil
}

// conflist is the network both runtimes attach pods to: a private bridge
// with host-local addresses from subnet, portmap, and loopback, as a kubelet
// node's CNI configuration would have it. No masquerading: pods talk only
// on this machine, and no iptables rules outlive the benchmark.
func conflist(bridge, subnet, ipamDir string) map[string]any {
	return map[string]any{
		"cniVersion": "1.0.0",
		"name":       "berth-bench",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  []any{[]any{map[string]any{"subnet": subnet}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"dataDir": ipamDir,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "loopback"},
		},
	}
}

// resetNetwork removes the bridge and the address leases a run left, so
// every run starts from the same network state.
func (e *env) resetNetwork() error {
	if err := os.RemoveAll(e.ipamDir); err != nil {
		return fmt.Errorf("remove IPAM leases: %w", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", e.bridge)); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "link", "del", e.bridge).CombinedOutput(); err != nil {
		return fmt.Errorf("delete bridge %s: %v: %s", e.bridge, err, out)
	}
	return nil
}

func (e *env) close() {
	e.resetNetwork()
	e.tb.close()
}

// programTB lets the benchmark, which is a program and not a test, use
// the test packages' registry. Only the methods those packages call are
// implemented; the embedded nil interface makes the type a testing.TB.
type programTB struct {
	testing.TB
	dir      string
	cleanups []func()
}

// tbFailure is how Fatal unwinds to do.
type tbFailure struct{ err error }

// do runs f, turning a Fatal inside it into an error.
func (t *programTB) do(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fail, ok := r.(tbFailure)
			if !ok {
				panic(r)
			}
			err = fail.err
		}
	}()
	f()
	return nil
}

func (t *programTB) Helper()                      {}
func (t *programTB) Name() string                 { return "bench" }
func (t *programTB) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *programTB) Logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
func (t *programTB) Errorf(format string, a ...any) {
	panic(tbFailure{fmt.Errorf(format, a...)})
}
func (t *programTB) Fatalf(format string, a ...any) {
	panic(tbFailure{fmt.Errorf(format, a...)})
}
func (t *programTB) Fatal(a ...any) { panic(tbFailure{fmt.Errorf("%s", fmt.Sprint(a...))}) }
func (t *programTB) TempDir() string {
	d, err := os.MkdirTemp(t.dir, "tb-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	return d
}

func (t *programTB) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
