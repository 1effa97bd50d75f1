package integration

// The streaming server's transport and tokens, which no runtime handler
// changes: these tests run with the berth handler only.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key under dir
// and returns their paths and the certificate's PEM.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berthd streaming test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "stream.crt"), filepath.Join(dir, "stream.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, certPEM
}

// freePort is a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestStreamingServerServesTLSOnAFixedPort(t *testing.T) {
	certFile, keyFile, certPEM := selfSignedCert(t, t.TempDir())
	port := freePort(t)
	forHandlers(t, []string{"berth"}, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("tls", "sleep 3600"))
		trusted := &rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: certPEM}}
		for _, proto := range protocols {
			u := e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"echo", "over tls"}, Stdout: true})
			if want := fmt.Sprintf("https://127.0.0.1:%d/", port); !strings.HasPrefix(u, want) {
				t.Fatalf("exec URL %s, want it under %s", u, want)
			}
			var out strings.Builder
			if err := executorWith(t, trusted, proto, u).StreamWithContext(ctxFor(t), remotecommand.StreamOptions{Stdout: &out}); err != nil || out.String() != "over tls\n" {
				t.Errorf("exec over TLS (%s): %q, %v", proto, out.String(), err)
			}
		}

		// A client that does not trust the certificate, and one that
		// speaks plain HTTP, get no stream, and the command does not run.
		run := []string{"sh", "-c", "echo ran >> /tmp/untrusted"}
		u := e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: run, Stdout: true})
		err := executor(t, "spdy", u).StreamWithContext(ctxFor(t), remotecommand.StreamOptions{Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("exec from a client that does not trust the certificate: %v, want a certificate error", err)
		}
		u = e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: run, Stdout: true})
		if resp, err := http.Post("http://"+strings.TrimPrefix(u, "https://"), "text/plain", nil); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("plain HTTP to the TLS streaming server: %s", resp.Status)
			}
		}
		if out := e.mustExec(t, id, "sh", "-c", "cat /tmp/untrusted 2>/dev/null; true"); out != "" {
			t.Errorf("the command ran for a refused client: %q", out)
		}
	}, harness.WithConfig(func(c *config.Config) {
		c.Stream.Address = "127.0.0.1"
		c.Stream.Port = strconv.Itoa(port)
		c.Stream.TLSCertFile, c.Stream.TLSKeyFile = certFile, keyFile
	}))
}

// TestStreamingURLsExpireAfterAMinute is SLOW ON PURPOSE: it waits out the
// token lifetime of k8s.io/cri-streaming, a constant minute (cacheTTL in
// request_cache.go) that no configuration shortens. The wait is not a
// timing assertion: the test only checks that, past it, the URLs are
// refused and nothing runs.
func TestStreamingURLsExpireAfterAMinute(t *testing.T) {
	forHandlers(t, []string{"berth"}, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("expiry", "sleep 3600"))
		exec := e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo ran >> /tmp/expired"}, Stdout: true})
		attach, err := e.d.Runtime.Attach(ctxFor(t), &runtimeapi.AttachRequest{ContainerId: id, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		pf, err := e.d.Runtime.PortForward(ctxFor(t), &runtimeapi.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{80}})
		if err != nil {
			t.Fatal(err)
		}
		t.Log("waiting 61 s for the streaming tokens to expire")
		time.Sleep(61 * time.Second)
		// The exec first, as a client would use it: a POST of a live token
		// would use it up.
		if err := executor(t, "spdy", exec).StreamWithContext(ctxFor(t), remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
			t.Error("exec through an expired URL succeeded")
		}
		for _, u := range []string{exec, attach.Url, pf.Url} {
			checkNotFound(t, u)
		}
		if out := e.mustExec(t, id, "sh", "-c", "cat /tmp/expired 2>/dev/null; true"); out != "" {
			t.Errorf("the command of an expired URL ran: %q", out)
		}
		// A URL asked for now still works.
		if out, _, code := e.streamExec(t, "spdy", id, false, nil, nil, "echo", "fresh"); out != "fresh\n" || code != 0 {
			t.Errorf("a fresh URL after the expiry: %q, exit %d", out, code)
		}
	})
}
