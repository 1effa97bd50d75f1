package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/test/images"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustPullImage pulls ref and reads every layer blob, failing on error.
func mustPullImage(t *testing.T, ref string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := pullImage(ref, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

func pullImage(ref string, opts ...remote.Option) (v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// pushBusybox pushes busybox to r as library/busybox:latest and returns
// its full reference, the image and its only layer.
func pushBusybox(t *testing.T, r *Registry) (string, v1.Image, v1.Layer) {
	t.Helper()
	img := images.Busybox()
	full := r.Push(t, "library/busybox:latest", img)
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("busybox layers: %d, %v", len(layers), err)
	}
	return full, img, layers[0]
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPulledImagesMatchWhatWasPushed(t *testing.T) {
	r := Start(t)
	pushed := map[string]v1.Image{
		"library/busybox:latest":      images.Busybox(),
		"test/configured:docker-zstd": images.Configured(images.WithFormat(images.Docker), images.WithCompression(images.Zstd)),
		"test/layered:uncompressed":   images.Layered(images.WithCompression(images.Uncompressed)),
	}
	for ref, img := range pushed {
		full := r.Push(t, ref, img)
		if full != r.Host()+"/"+ref {
			t.Errorf("Push returned %q, want %q", full, r.Host()+"/"+ref)
		}
		got := mustPullImage(t, full)
		if digestOf(t, got) != digestOf(t, img) {
			t.Errorf("%s: pulled %s, pushed %s", ref, digestOf(t, got), digestOf(t, img))
		}
	}
	idx := images.Index()
	full := r.PushIndex(t, "test/multi:latest", idx)
	gotIdx, err := remote.Index(mustRef(t, full))
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, gotIdx) != digestOf(t, idx) {
		t.Errorf("index: pulled %s, pushed %s", digestOf(t, gotIdx), digestOf(t, idx))
	}
	arm := images.IndexPlatforms()[1]
	img := mustPullImage(t, full, remote.WithPlatform(arm))
	if cfg, _ := img.ConfigFile(); !cfg.Platform().Equals(arm) {
		t.Errorf("platform %v pulled config for %v", arm, cfg.Platform())
	}
}

func TestFetchCountsCountEveryGETButNoHEAD(t *testing.T) {
	r := Start(t)
	full, img, base := pushBusybox(t, r)
	layer := digestOf(t, base)
	cfgName, _ := img.ConfigName()
	if n := r.BlobFetches(layer); n != 0 {
		t.Fatalf("%d fetches counted before any pull (pushes must not count)", n)
	}
	mustPullImage(t, full)
	mustPullImage(t, full)
	if _, err := remote.Head(mustRef(t, full)); err != nil {
		t.Fatal(err)
	}
	if n := r.BlobFetches(layer); n != 2 {
		t.Errorf("layer fetched %d times, want 2", n)
	}
	if n := r.BlobFetches(cfgName); n != 2 {
		t.Errorf("config fetched %d times, want 2", n)
	}
	if n := r.TotalBlobFetches(); n != 4 {
		t.Errorf("%d blob fetches in all, want 4", n)
	}
	if n := r.ManifestFetches("library/busybox", "latest"); n != 2 {
		t.Errorf("manifest fetched %d times by tag, want 2", n)
	}
	r.ResetCounts()
	if n := r.BlobFetches(layer); n != 0 {
		t.Errorf("%d fetches after ResetCounts", n)
	}
}

// blobURL is the URL of blob d in repository library/busybox.
func blobURL(r *Registry, d v1.Hash) string {
	return r.URL() + "/v2/library/busybox/blobs/" + d.String()
}

func TestInjectedFaultsFailAsDocumented(t *testing.T) {
	r := Start(t)
	full, _, base := pushBusybox(t, r)
	layer := digestOf(t, base)
	want, _ := io.ReadAll(must(base.Compressed()))

	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{"corrupt serves the full length with a wrong digest", FaultCorrupt, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %v, err %v", resp, err)
			}
			if len(body) != len(want) || bytes.Equal(body, want) {
				t.Errorf("got %d bytes (equal=%v), want %d different bytes", len(body), bytes.Equal(body, want), len(want))
			}
			if sum := fmt.Sprintf("sha256:%x", sha256.Sum256(body)); sum == layer.String() {
				t.Errorf("corrupt body still hashes to %s", sum)
			}
		}},
		{"truncate cuts the body half way", FaultTruncate, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error %v, want unexpected EOF", err)
			}
			if len(body) != len(want)/2 {
				t.Errorf("got %d bytes, want %d", len(body), len(want)/2)
			}
		}},
		{"server error answers 500", FaultServerError, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 500 {
				t.Errorf("status %v, err %v; want 500", resp, err)
			}
		}},
		{"not found answers 404", FaultNotFound, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 404 || !strings.Contains(string(body), "BLOB_UNKNOWN") {
				t.Errorf("status %v, body %s, err %v; want 404 BLOB_UNKNOWN", resp, body, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.InjectFault(layer, tc.fault, 1)
			resp, err := http.Get(blobURL(r, layer))
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			tc.check(t, resp, body, err)
			if n := r.FaultsServed(layer); n != 1 {
				t.Errorf("%d faults served, want 1", n)
			}
			// The fault was injected for one request: the next one is good.
			if _, body := mustGet(t, blobURL(r, layer)); !bytes.Equal(body, want) {
				t.Errorf("second fetch: %d bytes; want the blob", len(body))
			}
			// A client that verifies digests rejects the faulted blob.
			r.InjectFault(layer, tc.fault, 0)
			if _, err := pullImage(full, remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err == nil {
				t.Errorf("pull succeeded despite fault %v", tc.fault)
			}
			r.ClearFaults()
		})
	}
}

func must(rc io.ReadCloser, err error) io.ReadCloser {
	if err != nil {
		panic(err)
	}
	return rc
}

func TestHangAndStallHoldUntilTheClientCancels(t *testing.T) {
	r := Start(t)
	_, _, base := pushBusybox(t, r)
	layer := digestOf(t, base)
	size, _ := base.Size()

	t.Run("hang sends nothing", func(t *testing.T) {
		r.InjectFault(layer, FaultHang, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			for r.FaultsServed(layer) == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(r, layer), nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("request ended with %v, want context.Canceled", err)
		}
	})
	t.Run("stall sends half the body", func(t *testing.T) {
		r.InjectFault(layer, FaultStall, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(r, layer), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != size {
			t.Fatalf("status %d length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, size)
		}
		half := make([]byte, size/2)
		if _, err := io.ReadFull(resp.Body, half); err != nil {
			t.Fatalf("read first half: %v", err)
		}
		cancel()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
			t.Errorf("reading past the stall ended with %v, want context.Canceled", err)
		}
	})
}

func TestManifestFaultsApplyByTagAndDigest(t *testing.T) {
	r := Start(t)
	img := images.Busybox()
	full := r.Push(t, "library/busybox:latest", img)
	r.InjectFault(digestOf(t, img), FaultServerError, 0)
	for _, ref := range []string{"latest", digestOf(t, img).String()} {
		resp, _ := mustGet(t, r.URL()+"/v2/library/busybox/manifests/"+ref)
		if resp.StatusCode != 500 {
			t.Errorf("manifest %s: status %d, want 500", ref, resp.StatusCode)
		}
	}
	r.ClearFaults()
	mustPullImage(t, full)
}

// mustGet is mustDo of a plain GET of url.
func mustGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return mustDo(t, http.DefaultClient, req)
}

// mustDo sends req with c and returns the response and its body, read and
// closed; it fails t when no whole response came.
func mustDo(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the body of %s %s: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// statusOf extracts the HTTP status from a go-containerregistry error.
func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

func TestBasicAuthRejectsBadCredentialsAndAcceptsGoodOnes(t *testing.T) {
	r := Start(t, WithBasicAuth("alice", "s3cret"))
	full := r.Push(t, "library/busybox:latest", images.Busybox())

	resp, _ := mustGet(t, r.URL()+"/v2/")
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous /v2/: %d %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for _, auth := range []authn.Authenticator{authn.Anonymous, &authn.Basic{Username: "alice", Password: "wrong"}, &authn.Basic{Username: "bob", Password: "s3cret"}} {
		if _, err := pullImage(full, remote.WithAuth(auth)); statusOf(err) != 401 {
			t.Errorf("pull with %v: %v, want 401", auth, err)
		}
	}
	if r.TotalBlobFetches() != 0 {
		t.Errorf("unauthorized requests counted as fetches")
	}
	mustPullImage(t, full, r.RemoteOptions()...)
}

func TestBearerAuthRunsTheTokenFlow(t *testing.T) {
	r := Start(t, WithBearerAuth("alice", "s3cret"))
	full := r.Push(t, "library/busybox:latest", images.Busybox())
	r.Push(t, "other/repo:latest", images.Busybox())

	resp, _ := mustGet(t, r.URL()+"/v2/library/busybox/manifests/latest")
	wantChallenge := fmt.Sprintf(`Bearer realm="%s",service="%s",scope="repository:library/busybox:pull"`, r.TokenURL(), TokenService)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != wantChallenge {
		t.Errorf("anonymous manifest GET: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), wantChallenge)
	}

	for _, auth := range []authn.Authenticator{&authn.Basic{Username: "alice", Password: "wrong"}, authn.Anonymous} {
		if _, err := pullImage(full, remote.WithAuth(auth)); statusOf(err) != 401 {
			t.Errorf("pull with %v: %v, want 401", auth, err)
		}
	}
	mustPullImage(t, full, r.RemoteOptions()...)
	if req, issued := r.TokenRequests(); req < 3 || issued < 1 {
		t.Errorf("token server saw %d requests and issued %d tokens", req, issued)
	}

	// A token for one repository does not open another.
	tok := fetchToken(t, r, "alice", "s3cret", "repository:library/busybox:pull")
	for repo, status := range map[string]int{"library/busybox": 200, "other/repo": 401} {
		req, _ := http.NewRequest(http.MethodGet, r.URL()+"/v2/"+repo+"/manifests/latest", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, _ := mustDo(t, http.DefaultClient, req); resp.StatusCode != status {
			t.Errorf("token for library/busybox on %s: status %d, want %d", repo, resp.StatusCode, status)
		}
	}
	// Forged tokens are refused.
	req, _ := http.NewRequest(http.MethodGet, r.URL()+"/v2/library/busybox/manifests/latest", nil)
	req.Header.Set("Authorization", "Bearer "+tok[:len(tok)-4]+"AAAA")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("tampered token: %v %v, want 401", resp, err)
	}

	// The OAuth2 password grant (containerd's first choice) works too.
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"s3cret"},
		"service": {TokenService}, "scope": {"repository:library/busybox:pull"}}
	resp, err := http.PostForm(r.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("oauth password grant: status %d", resp.StatusCode)
	}
	form.Set("password", "wrong")
	if resp, err = http.PostForm(r.TokenURL(), form); err != nil || resp.StatusCode != 401 {
		t.Errorf("oauth grant with a bad password: %v %v, want 401", resp, err)
	}
}

// fetchToken asks r's token server for scope with Basic credentials.
func fetchToken(t *testing.T, r interface{ TokenURL() string }, user, pass, scope string) string {
	t.Helper()
	u := r.TokenURL() + "?service=" + url.QueryEscape(TokenService) + "&scope=" + url.QueryEscape(scope)
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body.Token == "" {
		t.Fatalf("token request: status %d, err %v", resp.StatusCode, err)
	}
	return body.Token
}

func TestTLSRegistryServesWithItsCA(t *testing.T) {
	r := Start(t, WithTLS(), WithBasicAuth("alice", "s3cret"))
	if !strings.HasPrefix(r.URL(), "https://") || r.CAFile() == "" {
		t.Fatalf("URL %s, CA %q", r.URL(), r.CAFile())
	}
	full := r.Push(t, "library/busybox:latest", images.Busybox())
	mustPullImage(t, full, r.RemoteOptions()...)
	if _, err := http.Get(r.URL() + "/v2/"); err == nil {
		t.Errorf("a client without the CA trusted the registry")
	}
}

func TestAnonymousBearerAuthStillRequiresATokenButGivesOneToAnyone(t *testing.T) {
	r := Start(t, WithBearerAuth("", ""))
	full := r.Push(t, "library/busybox:latest", images.Busybox())
	resp, _ := mustGet(t, r.URL()+"/v2/library/busybox/manifests/latest")
	if resp.StatusCode != 401 {
		t.Errorf("tokenless GET: status %d, want 401", resp.StatusCode)
	}
	mustPullImage(t, full, remote.WithAuth(authn.Anonymous))
	if _, issued := r.TokenRequests(); issued == 0 {
		t.Errorf("pull succeeded without a token being issued")
	}
}

func TestBlobRedirectSendsBlobGETsToTheBlobHost(t *testing.T) {
	r := Start(t, WithBlobRedirect(), WithBasicAuth("alice", "s3cret"))
	full, _, base := pushBusybox(t, r)
	layer := digestOf(t, base)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, blobURL(r, layer), nil)
	req.SetBasicAuth("alice", "s3cret")
	resp, _ := mustDo(t, noFollow, req)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusTemporaryRedirect || loc == nil || loc.Host == r.Host() {
		t.Fatalf("blob GET: %d to %q, want 307 to another host", resp.StatusCode, resp.Header.Get("Location"))
	}
	r.ResetCounts()
	mustPullImage(t, full, r.RemoteOptions()...)
	if n, _ := r.BlobHostRequests(); n != 2 {
		t.Errorf("blob host served %d requests, want 2 (layer and config)", n)
	}
	if n := r.BlobFetches(layer); n != 1 {
		t.Errorf("layer fetches counted %d, want 1", n)
	}
	// Faults still apply on the registry, before the redirect.
	r.InjectFault(layer, FaultServerError, 0)
	if _, err := pullImage(full, append(r.RemoteOptions(), remote.WithRetryBackoff(remote.Backoff{Steps: 1}))...); statusOf(err) != 500 {
		t.Errorf("pull with a faulted layer: %v, want 500", err)
	}
}

func TestCloseEndsHangingRequestsAndLaterPullsFail(t *testing.T) {
	r := Start(t)
	full, _, base := pushBusybox(t, r)
	layer := digestOf(t, base)
	r.InjectFault(layer, FaultHang, 0)
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(blobURL(r, layer))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	for r.FaultsServed(layer) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r.Close() // must not wait for the hanging request forever
	if err := <-done; err == nil {
		t.Errorf("the hanging request got a response when the registry closed")
	}
	if _, err := pullImage(full, remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err == nil {
		t.Errorf("pull from a closed registry succeeded")
	}
}
