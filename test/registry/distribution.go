package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DistributionBinary is Debian's docker-registry (distribution/distribution 2.8).
const DistributionBinary = "/usr/bin/docker-registry"

// Distribution is a docker-registry process serving on 127.0.0.1 with
// filesystem storage in a temp dir. It has no fetch counters or faults; use
// Start for those.
type Distribution struct {
	endpoint
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	waitErr error
	logFile string
	tokenWS *httptest.Server
}

// StartDistribution runs docker-registry for the test, installing the
// Debian package with apt-get if the binary is missing, and stops it (and
// removes its files) at cleanup. With WithBasicAuth it checks a bcrypt
// htpasswd file (made with htpasswd -B from apache2-utils); with
// WithBearerAuth it verifies ES256 tokens from this package's token server
// (realm http://localhost:PORT/token; docker-registry's rootcertbundle is the
// token CA); with WithTLS it serves HTTPS with the certificate in CAFile's
// directory.
func StartDistribution(t testing.TB, opts ...Option) *Distribution {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.redirect {
		t.Fatal("StartDistribution does not support WithBlobRedirect")
	}
	if err := ensureBinary(DistributionBinary, "docker-registry"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d := &Distribution{
		endpoint: endpoint{cfg: cfg, scheme: "http"},
		exited:   make(chan struct{}),
		logFile:  filepath.Join(dir, "registry.log"),
	}
	if cfg.tls {
		st, err := newServerTLS(dir)
		if err != nil {
			t.Fatalf("registry TLS: %v", err)
		}
		d.tls, d.scheme = st, "https"
	}
	yaml, err := d.writeConfig(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(d.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	d.cmd = exec.Command(DistributionBinary, "serve", yaml)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", DistributionBinary, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(d.Close)
	if err := d.waitReady(30 * time.Second); err != nil {
		t.Fatalf("docker-registry did not come up: %v\n%s", err, d.Log())
	}
	return d
}

// ensureBinary installs pkg with apt-get if path does not exist.
func ensureBinary(path, pkg string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	out, err := exec.Command("apt-get", "install", "-y", pkg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get install -y %s: %w: %s", pkg, err, out)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s missing after installing %s: %w", path, pkg, err)
	}
	return nil
}

// freePort picks an unused loopback port for a server that cannot listen on
// port 0 and report it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeConfig writes docker-registry's config.yml (and its htpasswd file
// or token root bundle) into dir and starts the token server if needed.
func (d *Distribution) writeConfig(t testing.TB, dir string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	d.host = fmt.Sprintf("127.0.0.1:%d", port)
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	storage := filepath.Join(dir, "storage")
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
  headers:
    X-Content-Type-Options: [nosniff]
`, storage, d.host, hex.EncodeToString(secret))
	if d.tls != nil {
		fmt.Fprintf(&b, "  tls:\n    certificate: %s\n    key: %s\n", d.tls.certFile, d.tls.keyFile)
	}
	switch {
	case d.cfg.bearer:
		ts, err := newTokenServer(d.cfg.tokenUser, d.cfg.tokenPass)
		if err != nil {
			return "", err
		}
		d.tokens = ts
		mux := http.NewServeMux()
		mux.Handle("/token", ts)
		d.tokenWS = httptest.NewUnstartedServer(mux)
		if d.tls != nil {
			d.tokenWS.TLS = tlsServerConfig(d.tls)
			d.tokenWS.StartTLS()
		} else {
			d.tokenWS.Start()
		}
		t.Cleanup(d.tokenWS.Close)
		// "localhost", not 127.0.0.1: go-containerregistry refuses realms
		// that are loopback IP literals on another port than the registry.
		d.tokenHost = fmt.Sprintf("localhost:%d", d.tokenWS.Listener.Addr().(*net.TCPAddr).Port)
		bundle := filepath.Join(dir, "token-ca.pem")
		if err := os.WriteFile(bundle, ts.rootPEM, 0o600); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			d.TokenURL(), TokenService, TokenIssuer, bundle)
	case d.cfg.basicUser != "" || d.cfg.basicPass != "":
		if err := ensureBinary("/usr/bin/htpasswd", "apache2-utils"); err != nil {
			return "", err
		}
		out, err := exec.Command("htpasswd", "-Bbn", d.cfg.basicUser, d.cfg.basicPass).Output()
		if err != nil {
			return "", fmt.Errorf("htpasswd -B: %w", err)
		}
		file := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(file, []byte(strings.TrimSpace(string(out))+"\n"), 0o600); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: berth-test-registry\n    path: %s\n", file)
	}
	yaml := filepath.Join(dir, "config.yml")
	return yaml, os.WriteFile(yaml, []byte(b.String()), 0o600)
}

// waitReady polls /v2/ until the registry answers (200 or 401).
func (d *Distribution) waitReady(limit time.Duration) error {
	client := &http.Client{Transport: d.Transport(), Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	for {
		resp, err := client.Get(d.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-d.exited:
			return fmt.Errorf("process exited: %v", d.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// Log is what docker-registry has written to stdout and stderr.
func (d *Distribution) Log() string {
	b, _ := os.ReadFile(d.logFile)
	return string(b)
}

// Close stops the process: SIGTERM, then SIGKILL after 10s. Cleanup calls
// it; tests may call it earlier to make the registry go away mid-test.
func (d *Distribution) Close() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-d.exited:
	case <-ctx.Done():
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// Push writes img to ref ("name:tag") through the registry's own auth and
// returns its full reference.
func (d *Distribution) Push(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	push(t, d.host, ref, img, d.RemoteOptions()...)
	return d.Ref(ref)
}

// PushIndex writes an image index and all its images to ref.
func (d *Distribution) PushIndex(t testing.TB, ref string, idx v1.ImageIndex) string {
	t.Helper()
	push(t, d.host, ref, idx, d.RemoteOptions()...)
	return d.Ref(ref)
}
