package registry

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures Start and StartDistribution.
type Option func(*config)

type config struct {
	basicUser, basicPass string // WithBasicAuth
	tokenUser, tokenPass string // WithBearerAuth
	bearer               bool
	tls                  bool
	redirect             bool
}

// WithBasicAuth makes the registry require HTTP Basic credentials on every
// /v2/ request, answering 401 with WWW-Authenticate: Basic realm=... otherwise.
func WithBasicAuth(user, password string) Option {
	return func(c *config) { c.basicUser, c.basicPass = user, password }
}

// WithBearerAuth makes the registry require bearer tokens from a token
// server that accepts only user/password (see TokenService for the flow).
// With an empty user and password the token server hands tokens to anyone
// who asks, with or without credentials, as Docker Hub does for public
// images.
// Start serves it at /token on the registry's own listener; StartDistribution
// runs it on its own port, named as localhost in the realm.
func WithBearerAuth(user, password string) Option {
	return func(c *config) { c.bearer, c.tokenUser, c.tokenPass = true, user, password }
}

// WithBlobRedirect makes Start answer blob GETs with 307 Temporary Redirect
// to a second, unauthenticated loopback listener (the blob host) that serves
// the bytes, as registries backed by object storage or a CDN do. Counting,
// auth and faults still happen on the registry; see BlobHostRequests. Not
// supported by StartDistribution.
func WithBlobRedirect() Option { return func(c *config) { c.redirect = true } }

// WithTLS serves the registry (and its token server) over HTTPS with a
// certificate for 127.0.0.1 from a fresh CA; CAFile names the CA's PEM.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// endpoint is what both registry kinds share: where they listen, how to
// reach them and the credentials they accept.
type endpoint struct {
	host      string // 127.0.0.1:port
	scheme    string // http or https
	cfg       config
	tls       *serverTLS
	tokens    *tokenServer
	tokenHost string // 127.0.0.1:port of the token server, if any
}

// Host is "127.0.0.1:port", the registry part of image references.
func (e *endpoint) Host() string { return e.host }

// URL is "http://127.0.0.1:port" (https with WithTLS).
func (e *endpoint) URL() string { return e.scheme + "://" + e.host }

// Ref is the full reference of name ("library/busybox:latest" or
// "library/busybox@sha256:...") in this registry.
func (e *endpoint) Ref(name string) string { return e.host + "/" + name }

// TokenURL is the token server's realm, or "" without WithBearerAuth.
func (e *endpoint) TokenURL() string {
	if e.tokens == nil {
		return ""
	}
	return e.scheme + "://" + e.tokenHost + "/token"
}

// Credentials are the username and password the registry accepts (Basic)
// or its token server accepts (Bearer); empty without auth.
func (e *endpoint) Credentials() (user, password string) {
	if e.cfg.bearer {
		return e.cfg.tokenUser, e.cfg.tokenPass
	}
	return e.cfg.basicUser, e.cfg.basicPass
}

// Auth is the go-containerregistry authenticator for Credentials.
func (e *endpoint) Auth() authn.Authenticator {
	user, pass := e.Credentials()
	if user == "" && pass == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: user, Password: pass}
}

// CAFile is the PEM file of the CA that signed the serving certificate, or
// "" without WithTLS.
func (e *endpoint) CAFile() string {
	if e.tls == nil {
		return ""
	}
	return e.tls.caFile
}

// Transport is an HTTP transport that trusts CAFile (a plain clone of
// http.DefaultTransport without TLS).
func (e *endpoint) Transport() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if e.tls != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: e.tls.pool}
	}
	return tr
}

// RemoteOptions are go-containerregistry remote options that reach this
// registry with good credentials.
func (e *endpoint) RemoteOptions() []remote.Option {
	return []remote.Option{remote.WithAuth(e.Auth()), remote.WithTransport(e.Transport())}
}

// TokenRequests counts requests to the token server (good or bad
// credentials) and tokens it issued.
func (e *endpoint) TokenRequests() (requests, issued int) {
	if e.tokens == nil {
		return 0, 0
	}
	return e.tokens.counts()
}

// push writes img (a v1.Image or v1.ImageIndex) to host/ref, failing t on error.
func push(t testing.TB, host, ref string, img any, opts ...remote.Option) {
	t.Helper()
	if err := write(host, ref, img, opts...); err != nil {
		t.Fatal(err)
	}
}

// write writes img (a v1.Image or v1.ImageIndex) to host/ref.
func write(host, ref string, img any, opts ...remote.Option) error {
	full := host + "/" + ref
	r, err := name.ParseReference(full, name.Insecure)
	if err != nil {
		return fmt.Errorf("parse reference %q: %w", full, err)
	}
	switch v := img.(type) {
	case v1.Image:
		err = remote.Write(r, v, opts...)
	case v1.ImageIndex:
		err = remote.WriteIndex(r, v, opts...)
	default:
		err = fmt.Errorf("cannot push a %T", img)
	}
	if err != nil {
		return fmt.Errorf("push %s: %w", full, err)
	}
	return nil
}
