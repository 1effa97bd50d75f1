// Package config is berthd's configuration: a TOML file whose tables are the
// components' own configuration structs, with flags that override it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/cri"
	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/sandbox"
	"github.com/pelletier/go-toml/v2"
)

// DefaultPath is where berthd looks for its file when --config is not given.
const DefaultPath = "/etc/berth/config.toml"

// Config is berthd's whole configuration.
type Config struct {
	Socket    string `toml:"socket" comment:"CRI socket (RuntimeService and ImageService); created with mode 0660, its directory 0711"`
	Root      string `toml:"root" comment:"persistent data: database, content store, layers, writable layers, bundles"`
	State     string `toml:"state" comment:"volatile state: pinned namespaces, rootfs mounts, monitor state; a tmpfs such as /run"`
	LogLevel  string `toml:"log_level" comment:"debug, info, warn or error; debug logs every RPC with its duration and code"`
	LogFormat string `toml:"log_format" comment:"console or json"`
	// ProfileAddress serves net/http/pprof when set (benchmarks use it).
	ProfileAddress string `toml:"profile_address" comment:"address (host:port on loopback, or a unix socket path) serving Go's pprof profiles; empty: off"`

	Registry image.Config     `toml:"registry" comment:"image pulls"`
	CNI      cni.Config       `toml:"cni" comment:"pod networking"`
	Runtime  sandbox.Config   `toml:"runtime" comment:"pods, containers and the runtimes that run them"`
	Metrics  Metrics          `toml:"metrics" comment:"berthd's own Prometheus metrics"`
	Stream   cri.StreamConfig `toml:"stream" comment:"the streaming server of Exec, Attach and PortForward (kubectl exec, attach, port-forward)"`
}

// Metrics is the [metrics] table.
type Metrics struct {
	// Address serves /metrics when set.
	Address string `toml:"address" comment:"address (host:port on loopback, or a unix socket path) serving Prometheus metrics at /metrics; empty: off"`
}

// Default is the configuration of a berthd started with no file and no flags.
func Default() Config {
	return Config{
		Socket:    "/run/berth/berth.sock",
		Root:      "/var/lib/berth",
		State:     "/run/berth",
		LogLevel:  "info",
		LogFormat: "console",
		Registry:  image.DefaultConfig(),
		CNI:       cni.DefaultConfig(),
		Runtime:   sandbox.DefaultConfig(),
		Stream:    cri.DefaultStreamConfig(),
	}
}

// Load reads the file at path over the defaults. A missing file is not an
// error when missingOK is set (the default path); a named one must exist.
func Load(path string, missingOK bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && missingOK {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := Decode(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Decode reads TOML over cfg, refusing keys berthd does not know.
func Decode(data []byte, cfg *Config) error {
	// Tables decode over their defaults, except maps, which a file replaces
	// whole: an operator listing runtime handlers means exactly those.
	handlers := cfg.Runtime.Runtimes
	cfg.Runtime.Runtimes = nil
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			keys := make([]string, 0, len(strict.Errors))
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			if k := de.Key(); len(k) > 0 {
				return fmt.Errorf("key %s (line %d, column %d): %s", strings.Join(k, "."), row, col, de.Error())
			}
			return fmt.Errorf("line %d, column %d: %s", row, col, de.Error())
		}
		return err
	}
	if cfg.Runtime.Runtimes == nil {
		cfg.Runtime.Runtimes = handlers
	}
	return nil
}

// Validate checks values that TOML types cannot, naming the key at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("key %s: "+format, append([]any{key}, args...)...))
	}
	for key, p := range map[string]string{"socket": c.Socket, "root": c.Root, "state": c.State} {
		if !filepath.IsAbs(p) {
			bad(key, "%q is not an absolute path", p)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "console", "json":
	default:
		bad("log_format", "%q is not one of console, json", c.LogFormat)
	}
	if err := loopbackOrSocket(c.Metrics.Address); err != nil {
		bad("metrics.address", "%v", err)
	}
	if c.Registry.MaxConcurrentDownloads < 1 {
		bad("registry.max_concurrent_downloads", "%d is below 1", c.Registry.MaxConcurrentDownloads)
	}
	if c.Registry.MinFreeBytes < 0 {
		bad("registry.min_free_bytes", "%d is negative", c.Registry.MinFreeBytes)
	}
	if c.Registry.MinFreePercent < 0 || c.Registry.MinFreePercent > 90 {
		bad("registry.min_free_percent", "%d is not between 0 and 90", c.Registry.MinFreePercent)
	}
	if c.CNI.ConfDir == "" || !filepath.IsAbs(c.CNI.ConfDir) {
		bad("cni.conf_dir", "%q is not an absolute path", c.CNI.ConfDir)
	}
	switch c.Runtime.CgroupDriver {
	case "cgroupfs", "systemd":
	default:
		bad("runtime.cgroup_driver", "%q is not one of cgroupfs, systemd", c.Runtime.CgroupDriver)
	}
	switch c.Runtime.RestrictOOMScoreAdj {
	case "true", "false", "auto":
	default:
		bad("runtime.restrict_oom_score_adj", "%q is not one of true, false, auto", c.Runtime.RestrictOOMScoreAdj)
	}
	if c.Runtime.StatsPeriod < 0 {
		bad("runtime.stats_collection_period_seconds", "%d is negative", c.Runtime.StatsPeriod)
	}
	if c.Runtime.StopTimeoutGrace < 0 {
		bad("runtime.stop_timeout_seconds", "%d is negative", c.Runtime.StopTimeoutGrace)
	}
	names := make([]string, 0, len(c.Runtime.Runtimes))
	for name := range c.Runtime.Runtimes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		h := c.Runtime.Runtimes[name]
		key := "runtime.handlers." + name
		switch h.Type {
		case "builtin":
		case "oci":
			if !filepath.IsAbs(h.Path) {
				bad(key+".path", "%q is not an absolute path", h.Path)
			}
		default:
			bad(key+".type", "%q is not one of builtin, oci", h.Type)
		}
	}
	if _, ok := c.Runtime.Runtimes[c.Runtime.DefaultRuntime]; !ok {
		bad("runtime.default_runtime", "%q names no handler in [runtime.handlers]", c.Runtime.DefaultRuntime)
	}
	if err := c.Stream.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loopbackOrSocket accepts "", an absolute unix socket path, or host:port
// with a loopback host: berthd's metrics are not for the network.
func loopbackOrSocket(addr string) error {
	if addr == "" || filepath.IsAbs(addr) {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is neither host:port nor an absolute socket path: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not on loopback (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

// Marshal renders cfg as TOML with a comment on every key.
func Marshal(cfg Config) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# berthd configuration. Every key is optional; absent keys keep these defaults.\n")
	enc := toml.NewEncoder(&buf).SetIndentTables(true)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
