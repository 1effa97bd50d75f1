package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of manifests berthd reads.
const (
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+json"
	mediaDockerSigned   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaDockerConfig   = "application/vnd.docker.container.image.v1+json"
)

// maxManifest bounds manifests and image configs held in memory.
const maxManifest = 8 << 20

// client talks to one endpoint about one repository, with the pull's
// credentials, through go-containerregistry's Basic and Bearer token flows.
type client struct {
	ep    *endpoint
	repo  string // repository path on the endpoint: "library/busybox"
	http  *http.Client
	base  *http.Transport
	stall time.Duration
}

// newClient pings the endpoint and performs the token handshake.
func (s *Store) newClient(ctx context.Context, ep *endpoint, ref Reference, auth *Auth) (*client, error) {
	stall := time.Duration(s.cfg.StallTimeoutSeconds) * time.Second
	dial := ep.dialTimeout
	if dial == 0 {
		dial = 30 * time.Second
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       ep.tls,
		TLSHandshakeTimeout:   stall,
		ResponseHeaderTimeout: stall,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     ep.tls != nil,
	}
	var opts []name.Option
	if ep.url.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(ep.host(), opts...)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %v: %w", ep, err, errdefs.ErrInvalidArgument)
	}
	a, err := s.authenticator(auth, ep, ref.Registry)
	if err != nil {
		return nil, err
	}
	rt := &endpointTransport{ep: ep, inner: base}
	if ep.mirror {
		rt.ns = ref.Registry
	}
	scope := reg.Repo(ref.Repository).Scope(transport.PullScope)
	t, err := transport.NewWithContext(ctx, reg, a, rt, []string{scope})
	if err != nil {
		base.CloseIdleConnections()
		return nil, fmt.Errorf("connect: %w", classifyTransport(err))
	}
	return &client{ep: ep, repo: ref.Repository, http: &http.Client{Transport: t}, base: base, stall: stall}, nil
}

func (c *client) close() { c.base.CloseIdleConnections() }

// endpointTransport sends requests for the endpoint's host to the scheme
// and path hosts.toml gave it, with its headers; requests for other hosts
// (a token server, a blob redirect) pass through unchanged.
type endpointTransport struct {
	ep    *endpoint
	ns    string // the upstream registry, told to mirrors as ?ns=
	inner http.RoundTripper
}

func (t *endpointTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.ep.host() {
		return t.inner.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.URL.Scheme = t.ep.url.Scheme
	if p := t.ep.url.Path; p != "" {
		rest := req.URL.Path
		if t.ep.overridePath || strings.HasSuffix(p, "/v2") {
			rest = strings.TrimPrefix(rest, "/v2")
		}
		req.URL.Path = p + rest
		req.URL.RawPath = ""
	}
	for k, v := range t.ep.header {
		req.Header[k] = v
	}
	if t.ns != "" && strings.Contains(req.URL.Path, "/v2/") && req.URL.Path != "/v2/" {
		q := req.URL.Query()
		q.Set("ns", t.ns)
		req.URL.RawQuery = q.Encode()
	}
	return t.inner.RoundTrip(req)
}

func (c *client) url(kind, ident string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", c.ep.url.Scheme, c.ep.host(), c.repo, kind, ident)
}

// manifest fetches a manifest or index by tag or digest. Its digest is
// computed from the bytes and, for a digest reference, must match.
func (c *client) manifest(ctx context.Context, ident string) (ocispec.Descriptor, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("manifests", ident), nil)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	req.Header.Set("Accept", strings.Join([]string{ocispec.MediaTypeImageIndex, mediaDockerList,
		ocispec.MediaTypeImageManifest, mediaDockerManifest}, ", "))
	resp, err := c.http.Do(req)
	if err != nil {
		return ocispec.Descriptor{}, nil, classifyTransport(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, nil, statusError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("read: %w", classifyTransport(err))
	}
	if len(body) > maxManifest {
		return ocispec.Descriptor{}, nil, fmt.Errorf("larger than %d bytes: %w", maxManifest, errdefs.ErrInvalidArgument)
	}
	d := digest.FromBytes(body)
	if want, err := digest.Parse(ident); err == nil && want != d {
		return ocispec.Descriptor{}, nil, fmt.Errorf("content has digest %s: %w", d, errdefs.ErrDataLoss)
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	mt = strings.TrimSpace(mt)
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
		Config    json.RawMessage   `json:"config"`
		FSLayers  json.RawMessage   `json:"fsLayers"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("not JSON: %w", errdefs.ErrInvalidArgument)
	}
	switch {
	case probe.MediaType != "":
		mt = probe.MediaType
	case probe.FSLayers != nil:
		mt = mediaDockerSchema1
	case probe.Manifests != nil && !isIndex(mt):
		mt = ocispec.MediaTypeImageIndex
	case probe.Config != nil && !isManifest(mt):
		mt = ocispec.MediaTypeImageManifest
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body))}, body, nil
}

func isIndex(mt string) bool { return mt == ocispec.MediaTypeImageIndex || mt == mediaDockerList }
func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaDockerManifest
}

// blob opens a blob's stream. The body fails with a stall error when the
// registry sends nothing for the stall timeout.
func (c *client) blob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("blobs", d.String()), nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel(nil)
		return nil, classifyTransport(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel(nil)
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return newStallReader(resp.Body, c.stall, cancel), nil
}

// errStalled is the cause of a download cancelled for silence.
var errStalled = errors.New("registry sent no data")

// stallReader cancels its request when no byte arrives for the timeout.
type stallReader struct {
	body   io.ReadCloser
	timer  *time.Timer
	limit  time.Duration
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	stalled bool
}

func newStallReader(body io.ReadCloser, limit time.Duration, cancel context.CancelCauseFunc) *stallReader {
	r := &stallReader{body: body, limit: limit, cancel: cancel}
	r.timer = time.AfterFunc(limit, func() {
		r.mu.Lock()
		r.stalled = true
		r.mu.Unlock()
		cancel(fmt.Errorf("%w for %s", errStalled, limit))
	})
	return r
}

func (r *stallReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if n > 0 {
		r.timer.Reset(r.limit)
	}
	if err != nil && err != io.EOF {
		r.mu.Lock()
		stalled := r.stalled
		r.mu.Unlock()
		if stalled {
			return n, fmt.Errorf("%w for %s: %w", errStalled, r.limit, errdefs.ErrUnavailable)
		}
		return n, classifyTransport(err)
	}
	return n, err
}

func (r *stallReader) Close() error {
	r.timer.Stop()
	err := r.body.Close()
	r.cancel(nil)
	return err
}

// statusError describes a registry's error answer and classifies it.
func statusError(resp *http.Response) error {
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	detail := ""
	if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
		detail = ": " + body.Errors[0].Code
		if body.Errors[0].Message != "" {
			detail += " (" + body.Errors[0].Message + ")"
		}
	}
	return fmt.Errorf("registry answered %s%s: %w", resp.Status, detail, classifyStatus(resp.StatusCode))
}

func classifyStatus(code int) error {
	switch {
	case code == http.StatusNotFound:
		return errdefs.ErrNotFound
	case code == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case code == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case code == http.StatusTooManyRequests:
		return errdefs.ErrResourceExhausted
	case code >= 500:
		return errdefs.ErrUnavailable
	}
	return errdefs.ErrUnknown
}

// classifyTransport gives network and registry-client errors an errdefs
// class, keeping context cancellation as it is.
func classifyTransport(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errdefs.IsUnavailable(err) || errdefs.IsNotFound(err) || errdefs.IsUnauthorized(err) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return fmt.Errorf("%w: %w", err, classifyStatus(te.StatusCode))
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
}
