package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMissingDefaultFileIsAllDefaults(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "absent.toml"), true)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Marshal(Default())
	got, _ := Marshal(cfg)
	if string(got) != string(want) {
		t.Errorf("missing default file loaded as\n%s\nwant the defaults\n%s", got, want)
	}
}

func TestLoadMissingNamedFileIsAnError(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "absent.toml"), false); err == nil {
		t.Fatal("a --config file that does not exist loaded")
	}
}

func TestDecodeOverridesOnlyTheKeysGiven(t *testing.T) {
	cfg := Default()
	err := Decode([]byte("log_level = \"debug\"\n[cni]\nconf_dir = \"/x/net.d\"\n[registry]\nmax_concurrent_downloads = 7\n"), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if cfg.LogLevel != "debug" || cfg.CNI.ConfDir != "/x/net.d" || cfg.Registry.MaxConcurrentDownloads != 7 {
		t.Errorf("given keys not applied: %+v", cfg)
	}
	if cfg.Socket != def.Socket || cfg.CNI.DefaultSubnet != def.CNI.DefaultSubnet || len(cfg.Runtime.Runtimes) != len(def.Runtime.Runtimes) {
		t.Errorf("keys not given lost their defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestHandlersTableReplacesTheDefaultHandlers(t *testing.T) {
	cfg := Default()
	err := Decode([]byte("[runtime]\ndefault_runtime = \"mine\"\n[runtime.handlers.mine]\ntype = \"oci\"\npath = \"/usr/sbin/runc\"\n"), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Runtime.Runtimes) != 1 || cfg.Runtime.Runtimes["mine"].Path != "/usr/sbin/runc" {
		t.Errorf("handlers = %+v, want exactly mine", cfg.Runtime.Runtimes)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestBadFilesNameTheKey(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"sockett = \"/x\"\n", "unknown key sockett"},
		{"[runtime.handlers.x]\ntype = \"oci\"\npathh = \"/x\"\n", "unknown key runtime.handlers.x.pathh"},
		{"[registry]\nmax_concurrent_downloads = \"three\"\n", "key registry.max_concurrent_downloads"},
		{"log_level = \"loud\"\n", "key log_level"},
		{"log_format = \"xml\"\n", "key log_format"},
		{"socket = \"berth.sock\"\n", "key socket"},
		{"[registry]\nmax_concurrent_downloads = 0\n", "key registry.max_concurrent_downloads"},
		{"[registry]\nmin_free_bytes = -1\n", "key registry.min_free_bytes"},
		{"[registry]\nmin_free_percent = 95\n", "key registry.min_free_percent"},
		{"[runtime]\nrestrict_oom_score_adj = \"maybe\"\n", "key runtime.restrict_oom_score_adj"},
		{"[runtime]\nstop_timeout_seconds = -1\n", "key runtime.stop_timeout_seconds"},
		{"[runtime]\nstats_collection_period_seconds = -1\n", "key runtime.stats_collection_period_seconds"},
		{"[runtime.handlers.x]\ntype = \"vm\"\n[runtime]\ndefault_runtime = \"x\"\n", "key runtime.handlers.x.type"},
		{"[runtime.handlers.x]\ntype = \"oci\"\npath = \"runc\"\n[runtime]\ndefault_runtime = \"x\"\n", "key runtime.handlers.x.path"},
		{"[runtime]\ndefault_runtime = \"kata\"\n", "key runtime.default_runtime"},
		{"[metrics]\naddress = \"0.0.0.0:9090\"\n", "key metrics.address"},
		{"[metrics]\naddress = \"9090\"\n", "key metrics.address"},
		{"[stream]\naddress = \"localhost\"\n", "key stream.address"},
		{"[stream]\nport = \"http\"\n", "key stream.port"},
		{"[stream]\ntls_cert_file = \"/c.pem\"\n", "key stream.tls_cert_file"},
		{"this is not toml", "line 1"},
	} {
		path := filepath.Join(t.TempDir(), "config.toml")
		os.WriteFile(path, []byte(tt.file), 0o600)
		cfg, err := Load(path, false)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.file, err, tt.want)
		}
	}
}

func TestMarshalRoundTripsAndCommentsEveryKey(t *testing.T) {
	cfg := Default()
	cfg.LogLevel = "warn"
	cfg.CNI.DefaultNetwork = true
	out, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back := Config{}
	if err := Decode(out, &back); err != nil {
		t.Fatalf("marshalled config does not decode: %v\n%s", err, out)
	}
	again, _ := Marshal(back)
	if string(again) != string(out) {
		t.Errorf("round trip changed the config:\n%s\nvs\n%s", again, out)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if strings.Contains(l, " = ") && !strings.HasPrefix(l, "#") && (i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#")) {
			t.Errorf("key line %q has no comment", l)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the README's configuration reference from Default()")

// TestREADMEShowsTheDefaultConfig keeps the README's configuration reference
// equal to what --print-default-config prints. After changing a key, run
// go test ./cmd/berthd/config -run README -update.
func TestREADMEShowsTheDefaultConfig(t *testing.T) {
	const path = "../../../README.md"
	const begin, end = "<!-- config:begin -->\n", "<!-- config:end -->\n"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q and %q markers", begin, end)
	}
	def, err := Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	want := "```toml\n" + string(def) + "```\n"
	if got := s[i+len(begin) : j]; got != want {
		if *update {
			os.WriteFile(path, []byte(s[:i+len(begin)]+want+s[j:]), 0o644)
			return
		}
		t.Errorf("README.md's configuration reference is not the default config; run go test ./cmd/berthd/config -run README -update")
	}
}

func TestMetricsAddressIsLoopbackOrASocket(t *testing.T) {
	for _, tt := range []struct {
		name, addr string
		ok         bool
	}{
		{"an empty address turns the endpoint off", "", true},
		{"an IPv4 loopback address is accepted", "127.0.0.1:9090", true},
		{"an IPv6 loopback address is accepted", "[::1]:9090", true},
		{"localhost is accepted", "localhost:9090", true},
		{"a unix socket path is accepted", "/run/berth/metrics.sock", true},
		{"every interface is refused", "0.0.0.0:9090", false},
		{"a node address is refused", "10.0.0.5:9090", false},
		{"a bare port is refused", ":9090", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := loopbackOrSocket(tt.addr); (err == nil) != tt.ok {
				t.Errorf("loopbackOrSocket(%q) = %v, want ok %v", tt.addr, err, tt.ok)
			}
		})
	}
}
