package registry

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Registry is an in-process OCI distribution registry on 127.0.0.1
// (go-containerregistry's pkg/registry, blobs in memory) behind middleware
// that authenticates, counts fetches and injects faults. Images are pushed
// through a second, unauthenticated listener that bypasses the middleware,
// so pushes never show up in counts or hit faults.
type Registry struct {
	endpoint
	srv     *httptest.Server // what clients under test use
	admin   *httptest.Server // raw registry, for Push
	blobSrv *httptest.Server // blob host, with WithBlobRedirect
	closing chan struct{}    // closed at cleanup; releases hanging requests
	tlsDir  string           // CA and certificate files, with WithTLS

	mu        sync.Mutex
	blobs     map[v1.Hash]int // authorized GETs per blob digest
	manifests map[string]int  // authorized GETs per "name:reference" as requested
	faults    map[v1.Hash]*fault
	// Requests to the blob host (WithBlobRedirect), and how many of them
	// carried an Authorization header meant for the registry.
	redirected, redirectedAuth int
}

// Start starts a registry on a free loopback port for the test and closes
// it at cleanup.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r, err := Listen("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// Listen starts a registry on addr (host:port; tests use Start). The
// caller must Close it.
func Listen(addr string, opts ...Option) (_ *Registry, retErr error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	quiet := log.New(io.Discard, "", 0)
	inner := ggcr.New(ggcr.Logger(quiet))
	r := &Registry{
		endpoint:  endpoint{cfg: cfg, scheme: "http"},
		closing:   make(chan struct{}),
		blobs:     map[v1.Hash]int{},
		manifests: map[string]int{},
		faults:    map[v1.Hash]*fault{},
	}
	if cfg.tls {
		dir, err := os.MkdirTemp("", "berth-registry-tls-")
		if err != nil {
			return nil, err
		}
		r.tlsDir = dir
		defer func() {
			if retErr != nil {
				os.RemoveAll(dir)
			}
		}()
		st, err := newServerTLS(dir)
		if err != nil {
			return nil, fmt.Errorf("registry TLS: %w", err)
		}
		r.tls, r.scheme = st, "https"
	}
	mux := http.NewServeMux()
	mux.Handle("/", r.middleware(inner))
	if cfg.bearer {
		ts, err := newTokenServer(cfg.tokenUser, cfg.tokenPass)
		if err != nil {
			return nil, fmt.Errorf("token server: %w", err)
		}
		r.tokens = ts
		// The token server shares the registry's listener: go-containerregistry
		// refuses realms on other loopback ports (SSRF protection).
		mux.Handle("/token", ts)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	r.srv = httptest.NewUnstartedServer(mux)
	r.srv.Listener.Close()
	r.srv.Listener = l
	r.srv.Config.ErrorLog = quiet
	if r.tls != nil {
		r.srv.TLS = tlsServerConfig(r.tls)
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	r.host = hostOf(r.srv)
	r.tokenHost = r.host
	r.admin = httptest.NewServer(inner)
	if cfg.redirect {
		r.blobSrv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.redirected++
			if req.Header.Get("Authorization") != "" {
				r.redirectedAuth++
			}
			r.mu.Unlock()
			inner.ServeHTTP(w, req)
		}))
		r.blobSrv.Config.ErrorLog = quiet
		if r.tls != nil {
			r.blobSrv.TLS = tlsServerConfig(r.tls)
			r.blobSrv.StartTLS()
		} else {
			r.blobSrv.Start()
		}
	}
	return r, nil
}

func hostOf(s *httptest.Server) string {
	return s.Listener.Addr().(*net.TCPAddr).AddrPort().String()
}

// Close stops the registry, first releasing requests held by FaultHang and
// FaultStall, and removes its TLS files. Start registers it with t.Cleanup;
// calling it twice is fine.
func (r *Registry) Close() {
	r.mu.Lock()
	select {
	case <-r.closing:
		r.mu.Unlock()
		return
	default:
		close(r.closing)
	}
	r.mu.Unlock()
	r.srv.Close()
	r.admin.Close()
	if r.blobSrv != nil {
		r.blobSrv.Close()
	}
	if r.tlsDir != "" {
		os.RemoveAll(r.tlsDir)
	}
}

// Push writes img to ref ("name:tag" or "name@digest") and returns its full
// reference in this registry (Ref(ref)). It fails t on error.
func (r *Registry) Push(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	full, err := r.WriteImage(ref, img)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// PushIndex writes an image index and all its images to ref, failing t on
// error, and returns the full reference.
func (r *Registry) PushIndex(t testing.TB, ref string, idx v1.ImageIndex) string {
	t.Helper()
	full, err := r.WriteIndex(ref, idx)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// WriteImage is Push returning the error instead of failing a test.
func (r *Registry) WriteImage(ref string, img v1.Image) (string, error) {
	return r.Ref(ref), write(hostOf(r.admin), ref, img)
}

// WriteIndex is PushIndex returning the error instead of failing a test.
func (r *Registry) WriteIndex(ref string, idx v1.ImageIndex) (string, error) {
	return r.Ref(ref), write(hostOf(r.admin), ref, idx)
}

// BlobFetches is the number of GET requests for the blob (layer or config)
// with digest d that passed authentication, faulted ones included. HEAD
// requests and pushes are not counted.
func (r *Registry) BlobFetches(d v1.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobs[d]
}

// TotalBlobFetches is the number of authorized blob GETs of any digest.
func (r *Registry) TotalBlobFetches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.blobs {
		n += c
	}
	return n
}

// ManifestFetches is the number of authorized GET requests for the manifest
// of repository name by reference exactly as requested (a tag or a digest
// string): ManifestFetches("library/busybox", "latest").
func (r *Registry) ManifestFetches(name, reference string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifests[name+":"+reference]
}

// BlobHostRequests counts the blob GETs that followed a redirect to the
// blob host (WithBlobRedirect), and how many of those carried an
// Authorization header, i.e. leaked the registry's credentials to it.
func (r *Registry) BlobHostRequests() (requests, withAuthorization int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.redirected, r.redirectedAuth
}

// ResetCounts zeroes the blob and manifest fetch counters.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobs = map[v1.Hash]int{}
	r.manifests = map[string]int{}
}

// route is what a /v2/ request addresses.
type route struct {
	repo string // repository name; "" for /v2/ itself and the catalog
	kind string // "blobs", "manifests", "uploads", "tags" or ""
	ref  string // digest or tag
}

// parseRoute splits /v2/<name>/{blobs,manifests}/<ref>,
// /v2/<name>/blobs/uploads/... and /v2/<name>/tags/list.
func parseRoute(path string) route {
	p := strings.TrimPrefix(path, "/v2/")
	if p == path {
		return route{}
	}
	if i := strings.LastIndex(p, "/blobs/uploads"); i > 0 {
		return route{repo: p[:i], kind: "uploads"}
	}
	for _, kind := range []string{"blobs", "manifests", "tags"} {
		if i := strings.LastIndex(p, "/"+kind+"/"); i > 0 {
			return route{repo: p[:i], kind: kind, ref: p[i+len(kind)+2:]}
		}
	}
	return route{}
}

// middleware authenticates, counts, and applies faults, in that order.
func (r *Registry) middleware(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rt := parseRoute(req.URL.Path)
		if !r.authorize(w, req, rt) {
			return
		}
		if req.Method == http.MethodGet {
			r.count(rt)
		}
		if r.serveFault(w, req, rt, inner) {
			return
		}
		if r.blobSrv != nil && req.Method == http.MethodGet && rt.kind == "blobs" {
			http.Redirect(w, req, r.blobSrv.URL+req.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		inner.ServeHTTP(w, req)
	})
}

func (r *Registry) count(rt route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch rt.kind {
	case "blobs":
		if h, err := v1.NewHash(rt.ref); err == nil {
			r.blobs[h]++
		}
	case "manifests":
		r.manifests[rt.repo+":"+rt.ref]++
	}
}

// writeError writes a distribution-spec error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`+"\n", code, msg)
}
