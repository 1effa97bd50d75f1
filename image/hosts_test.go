package image

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func writeHosts(t *testing.T, dir, host, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEndpoints(t *testing.T) {
	type want struct {
		url           string
		pull, resolve bool
		mirror        bool
		header        string
		skipVerify    bool
	}
	for _, tc := range []struct {
		name     string
		registry string
		files    map[string]string
		want     []want
	}{
		{
			name:     "no file: docker.io is served by registry-1.docker.io over https",
			registry: "docker.io",
			want:     []want{{url: "https://registry-1.docker.io", pull: true, resolve: true}},
		},
		{
			name:     "no file: a loopback registry is plain http",
			registry: "127.0.0.1:5000",
			want:     []want{{url: "http://127.0.0.1:5000", pull: true, resolve: true}},
		},
		{
			name:     "mirrors come first in file order, then the server",
			registry: "docker.io",
			files: map[string]string{"docker.io": `
server = "http://127.0.0.1:1"

[host."http://127.0.0.1:3"]
  capabilities = ["pull", "resolve"]
  [host."http://127.0.0.1:3".header]
    x-mirror = "three"

[host."http://127.0.0.1:2"]
  capabilities = ["pull"]
`},
			want: []want{
				{url: "http://127.0.0.1:3", pull: true, resolve: true, mirror: true, header: "three"},
				{url: "http://127.0.0.1:2", pull: true, mirror: true},
				{url: "http://127.0.0.1:1", pull: true, resolve: true},
			},
		},
		{
			name:     "_default applies to registries without their own directory",
			registry: "quay.io",
			files: map[string]string{"_default": `
[host."https://mirror.invalid"]
  skip_verify = true
`},
			want: []want{
				{url: "https://mirror.invalid", pull: true, resolve: true, mirror: true, skipVerify: true},
				{url: "https://quay.io", pull: true, resolve: true},
			},
		},
		{
			name:     "a host without scheme is https",
			registry: "example.com",
			files:    map[string]string{"example.com": `server = "example.com:8443"`},
			want:     []want{{url: "https://example.com:8443", pull: true, resolve: true}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for host, content := range tc.files {
				writeHosts(t, dir, host, content)
			}
			eps, err := endpoints(dir, tc.registry)
			if err != nil {
				t.Fatal(err)
			}
			if len(eps) != len(tc.want) {
				t.Fatalf("%d endpoints %v, want %d", len(eps), eps, len(tc.want))
			}
			for i, w := range tc.want {
				ep := eps[i]
				got := want{url: ep.String(), pull: ep.pull, resolve: ep.resolve, mirror: ep.mirror,
					header: ep.header.Get("x-mirror"), skipVerify: ep.tls != nil && ep.tls.InsecureSkipVerify}
				if got != w {
					t.Errorf("endpoint %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestEndpointsRejectBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"a file that is not TOML", "server = ", "hosts.toml"},
		{"a server that is not http", `server = "ftp://x"`, "not an http or https URL"},
		{"a missing CA file", "[host.\"https://m\"]\n  ca = \"/nonexistent/ca.pem\"", "ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeHosts(t, dir, "r.example", tc.content)
			_, err := endpoints(dir, "r.example")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	writeHosts(t, dir, "r.example", `server = "ftp://x"`)
	if _, err := endpoints(dir, "r.example"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad server error %v, want invalid argument", err)
	}
}

func TestHostsTomlHeadersAndOverridePathReachTheRegistry(t *testing.T) {
	reg := newTestRegistry(t)
	l := newLayer(t, gzipped, file{name: "h", body: "h"})
	reg.push(t, "app:1", imageOf(t, v1.Config{}, l))
	var mu sync.Mutex
	var gotHeader, gotNS string
	reg.fault(l.digest(), func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotHeader, gotNS = r.Header.Get("X-Berth-Test"), r.URL.Query().Get("ns")
		mu.Unlock()
		w.Write(l.blob)
	})
	// A mirror whose API root is /mirror/v2 rather than /v2, as
	// override_path allows.
	mirror := httptest.NewServer(http.StripPrefix("/mirror", reg.Config.Handler))
	t.Cleanup(mirror.Close)
	dir := t.TempDir()
	writeHosts(t, dir, "example.invalid", fmt.Sprintf(`server = "http://127.0.0.1:1"

[host."%s/mirror/v2"]
  override_path = true
  capabilities = ["pull", "resolve"]
  [host."%s/mirror/v2".header]
    x-berth-test = "from-hosts-toml"
`, mirror.URL, mirror.URL))
	s := openTestStore(t, Config{ConfigPath: dir})
	mustPull(t, s, "example.invalid/app:1")
	mu.Lock()
	defer mu.Unlock()
	if gotHeader != "from-hosts-toml" || gotNS != "example.invalid" {
		t.Fatalf("mirror saw header %q and ns %q, want the hosts.toml header and the upstream name", gotHeader, gotNS)
	}
}
