package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// assertSecretKept fails if a secret (a password, a token, the Basic
// authorization of user:password) reached berthd's log (at debug) or any
// file of its image store, the bbolt database included.
func assertSecretKept(t *testing.T, d *harness.Daemon, secrets ...string) {
	t.Helper()
	places := map[string]string{"log": d.Logs()}
	err := filepath.WalkDir(filepath.Join(d.Root, "image"), func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() || strings.Contains(p, "/layers/") {
			return err // layers hold the image's own files
		}
		data, err := os.ReadFile(p)
		places[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := places[filepath.Join(d.Root, "image", "meta.db")]; !ok {
		t.Fatal("no image database to search")
	}
	for where, data := range places {
		for _, secret := range secrets {
			if strings.Contains(data, secret) {
				t.Errorf("a registry secret (%.4s...) is in berthd's %s", secret, where)
			}
		}
	}
}

// basicAuth is the Authorization header's credential for user:password.
func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func TestImagePullFromDistributionWithBasicAndBearerAuth(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth registry.Option
	}{
		{"basic", registry.WithBasicAuth("alice", "basic-s3cret")},
		{"bearer token service", registry.WithBearerAuth("bob", "bearer-s3cret")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.StartDistribution(t, tc.auth)
			img := images.Busybox()
			ref := reg.Push(t, "private/busybox:1", img)
			user, pass := reg.Credentials()
			d := harness.Start(t)

			_, err := pullImage(t, d, ref, nil)
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("pull without credentials: %v, want Unauthenticated", err)
			}
			_, err = pullImage(t, d, ref, &runtimeapi.AuthConfig{Username: user, Password: "not-" + pass})
			if err == nil {
				t.Fatal("pull with a wrong password succeeded")
			}
			id, err := pullImage(t, d, ref, &runtimeapi.AuthConfig{Username: user, Password: pass, ServerAddress: reg.Host()})
			if err != nil {
				t.Fatalf("pull with credentials: %v", err)
			}
			if id != configDigest(t, img) {
				t.Fatalf("pulled %s", id)
			}
			if reg.TokenURL() != "" {
				if _, issued := reg.TokenRequests(); issued == 0 {
					t.Fatal("the token server issued no token")
				}
			}
			assertSecretKept(t, d, pass, basicAuth(user, pass))
		})
	}
}

func TestImagePullUsesTheCredentialsFileWhenTheRequestHasNone(t *testing.T) {
	reg := registry.StartDistribution(t, registry.WithBasicAuth("carol", "file-s3cret"))
	ref := reg.Push(t, "private/app:1", images.Busybox())
	user, pass := reg.Credentials()
	path := filepath.Join(t.TempDir(), "config.json")
	data, _ := json.Marshal(map[string]any{"auths": map[string]any{
		reg.Host(): map[string]string{"auth": basicAuth(user, pass)}}})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.WithConfig(func(c *config.Config) { c.Registry.CredentialsFile = path }))
	mustPullImage(t, d, ref)
	assertSecretKept(t, d, pass, basicAuth(user, pass))
}

func TestImagePullOverTLSWithTheCAFromHostsToml(t *testing.T) {
	reg := registry.Start(t, registry.WithTLS())
	ref := reg.Push(t, "secure:1", images.Busybox())
	t.Run("an unknown CA is refused", func(t *testing.T) {
		d := startWithHosts(t, map[string]string{reg.Host(): fmt.Sprintf("server = %q\n", reg.URL())})
		if _, err := pullImage(t, d, ref, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("pull from a registry with an unknown CA: %v, want a certificate error", err)
		}
	})
	t.Run("the hosts.toml CA is trusted", func(t *testing.T) {
		d := startWithHosts(t, map[string]string{reg.Host(): fmt.Sprintf("server = %q\nca = %q\n", reg.URL(), reg.CAFile())})
		mustPullImage(t, d, ref)
	})
	t.Run("skip_verify trusts any certificate", func(t *testing.T) {
		d := startWithHosts(t, map[string]string{reg.Host(): fmt.Sprintf("server = %q\nskip_verify = true\n", reg.URL())})
		mustPullImage(t, d, ref)
	})
}

func TestImagePullWithARegistryTokenFromTheRequest(t *testing.T) {
	reg := registry.Start(t, registry.WithBearerAuth("dave", "token-s3cret"))
	ref := reg.Push(t, "private/app:1", images.Busybox())
	user, pass := reg.Credentials()
	// Kubelet may hand over a token it got itself; berthd uses it as is.
	req, err := http.NewRequest(http.MethodGet, reg.TokenURL()+"?service="+registry.TokenService+
		"&scope=repository:private/app:pull", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("token: %v (status %s)", err, resp.Status)
	}
	_, issuedBefore := reg.TokenRequests()
	d := harness.Start(t)
	if _, err := pullImage(t, d, ref, &runtimeapi.AuthConfig{RegistryToken: tok.Token}); err != nil {
		t.Fatalf("pull with a registry token: %v", err)
	}
	if _, issued := reg.TokenRequests(); issued != issuedBefore {
		t.Fatalf("berthd asked the token server although it had a token")
	}
	assertSecretKept(t, d, tok.Token)
}
