package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap/zaptest"
)

// testRegistry is go-containerregistry's in-memory registry on loopback,
// counting blob downloads and letting a test break chosen blobs.
type testRegistry struct {
	*httptest.Server
	host string

	mu sync.Mutex
	// user and password, once set, are required as HTTP Basic credentials,
	// or, with bearer, by the token server at /token, which also takes
	// password as an OAuth2 refresh token (an identity token).
	user, password string
	bearer         bool
	gets           map[string]int                                          // blob digest -> GETs
	faults         map[string]func(w http.ResponseWriter, r *http.Request) // blob digest -> handler
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr := &testRegistry{gets: map[string]int{}, faults: map[string]func(http.ResponseWriter, *http.Request){}}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		user, password, bearer := tr.user, tr.password, tr.bearer
		tr.mu.Unlock()
		if bearer && r.URL.Path == "/token" {
			tr.serveToken(w, r)
			return
		}
		if bearer {
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, tr.URL))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		} else if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if i := strings.Index(r.URL.Path, "/blobs/sha256:"); i >= 0 && r.Method == http.MethodGet {
			d := r.URL.Path[i+len("/blobs/"):]
			tr.mu.Lock()
			tr.gets[d]++
			fault := tr.faults[d]
			tr.mu.Unlock()
			if fault != nil {
				fault(w, r)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.Close)
	tr.host = strings.TrimPrefix(tr.URL, "http://")
	return tr
}

// requireBasicAuth makes the registry refuse requests without these
// credentials from now on (push first).
func (tr *testRegistry) requireBasicAuth(user, password string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.user, tr.password = user, password
}

// requireBearer makes the registry demand a token from its /token
// endpoint, which wants user and password (Basic) or password as a refresh
// token.
func (tr *testRegistry) requireBearer(user, password string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.user, tr.password, tr.bearer = user, password, true
}

// testToken is the only bearer token the test registry issues.
const testToken = "berth-test-token"

func (tr *testRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	tr.mu.Lock()
	user, password := tr.user, tr.password
	tr.mu.Unlock()
	u, p, _ := r.BasicAuth()
	switch {
	case r.Method == http.MethodGet && u == user && p == password:
	case r.Method == http.MethodPost && r.FormValue("grant_type") == "refresh_token" && r.FormValue("refresh_token") == password:
	default:
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"token":%q,"access_token":%q}`, testToken, testToken)
}

func (tr *testRegistry) blobGets(d string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.gets[d]
}

func (tr *testRegistry) fault(d string, h func(http.ResponseWriter, *http.Request)) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if h == nil {
		delete(tr.faults, d)
	} else {
		tr.faults[d] = h
	}
}

// push uploads img as repo:tag and returns the reference.
func (tr *testRegistry) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	return tr.write(t, repo, func(r name.Reference) error { return remote.Write(r, img) })
}

// pushIndex uploads idx and its images as repo:tag and returns the
// reference.
func (tr *testRegistry) pushIndex(t *testing.T, repo string, idx v1.ImageIndex) string {
	t.Helper()
	return tr.write(t, repo, func(r name.Reference) error { return remote.WriteIndex(r, idx) })
}

// write uploads to repo:tag with upload.
func (tr *testRegistry) write(t *testing.T, repo string, upload func(name.Reference) error) string {
	t.Helper()
	ref := tr.host + "/" + repo
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := upload(r); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

type compression int

const (
	gzipped compression = iota
	zstded
	uncompressed
)

// file is a tar member of a test layer.
type file struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarOf(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		typ := f.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: f.name, Typeflag: typ, Mode: mode, Size: int64(len(f.body)), Linkname: f.link,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := io.WriteString(tw, f.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// memLayer is a layer held in memory in one compression.
type memLayer struct {
	raw, blob []byte
	mt        types.MediaType
}

func newLayer(t *testing.T, c compression, files ...file) *memLayer {
	t.Helper()
	raw := tarOf(t, files...)
	l := &memLayer{raw: raw}
	var buf bytes.Buffer
	switch c {
	case gzipped:
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
		l.blob, l.mt = buf.Bytes(), types.OCILayer
	case zstded:
		zw, _ := zstd.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
		l.blob, l.mt = buf.Bytes(), types.OCILayerZStd
	default:
		l.blob, l.mt = raw, types.OCIUncompressedLayer
	}
	return l
}

func hashOf(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

func (l *memLayer) Digest() (v1.Hash, error) { return hashOf(l.blob), nil }
func (l *memLayer) DiffID() (v1.Hash, error) { return hashOf(l.raw), nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.raw)), nil
}
func (l *memLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *memLayer) digest() string                      { return hashOf(l.blob).String() }

// imageOf stacks layers into an OCI image for the host platform.
func imageOf(t *testing.T, cfg v1.Config, layers ...*memLayer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	p := hostPlatform()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func mustConfigDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// openTestStore opens a store in a temporary directory.
func openTestStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.MaxConcurrentDownloads == 0 {
		cfg.MaxConcurrentDownloads = 3
	}
	s, err := Open(context.Background(), Options{Root: t.TempDir(), Config: cfg, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPull(t *testing.T, s *Store, ref string) string {
	t.Helper()
	id, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return id
}

func digestOf(s string) digest.Digest { return digest.Digest(s) }
