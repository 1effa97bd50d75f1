package image

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// An endpoint is one place a registry's content can be fetched from: a
// mirror or the registry's own server, as a hosts.toml names them
// (containerd's docs/hosts.md format).
type endpoint struct {
	url          *url.URL // scheme://host[:port][/path]
	mirror       bool     // not the registry's own server
	pull         bool     // may serve blobs
	resolve      bool     // may resolve tags to manifests
	overridePath bool     // url's path is the API root, without /v2
	header       http.Header
	tls          *tls.Config // nil for http
	dialTimeout  time.Duration
}

// host is the endpoint's host[:port], the registry name its API uses.
func (e *endpoint) host() string { return e.url.Host }

func (e *endpoint) String() string { return e.url.String() }

// hostEntry is the part of hosts.toml that both the top level (the
// server) and each [host."..."] table have.
type hostEntry struct {
	Capabilities []string       `toml:"capabilities"`
	SkipVerify   *bool          `toml:"skip_verify"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

type hostsFile struct {
	Server string `toml:"server"`
	hostEntry
	Host map[string]hostEntry `toml:"host"`
}

// endpoints lists where to fetch registry's content, in the order to try
// them: the mirrors of <dir>/<registry>/hosts.toml (or _default/hosts.toml)
// and then its server. With no file, the registry's server is the only
// endpoint: https, or http for a loopback address.
func endpoints(dir, registry string) ([]*endpoint, error) {
	if dir != "" {
		for _, name := range hostDirNames(registry) {
			hostDir := filepath.Join(dir, name)
			if _, err := os.Stat(filepath.Join(hostDir, "hosts.toml")); err == nil {
				return loadHostsFile(hostDir, registry)
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			if st, err := os.Stat(hostDir); err == nil && st.IsDir() {
				// A docker-style certs directory: *.crt, *.cert and *.key.
				ep, err := defaultEndpoint(registry)
				if err != nil {
					return nil, err
				}
				if err := loadCertsDir(ep, hostDir); err != nil {
					return nil, err
				}
				return []*endpoint{ep}, nil
			}
		}
	}
	ep, err := defaultEndpoint(registry)
	if err != nil {
		return nil, err
	}
	return []*endpoint{ep}, nil
}

func hostDirNames(registry string) []string {
	names := []string{registry}
	if h, p, err := net.SplitHostPort(registry); err == nil {
		names = append(names, h+"_"+p+"_") // containerd's spelling for file systems without ':'
	}
	return append(names, "_default")
}

func defaultServer(registry string) string {
	if registry == dockerHub {
		return "https://registry-1.docker.io"
	}
	if isLoopback(registry) {
		return "http://" + registry
	}
	return "https://" + registry
}

func isLoopback(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func defaultEndpoint(registry string) (*endpoint, error) {
	ep := &endpoint{pull: true, resolve: true, header: http.Header{}}
	u, err := url.Parse(defaultServer(registry))
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", registry, errdefs.ErrInvalidArgument)
	}
	ep.url = u
	if u.Scheme == "https" {
		ep.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return ep, nil
}

func loadHostsFile(hostDir, registry string) ([]*endpoint, error) {
	path := filepath.Join(hostDir, "hosts.toml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f hostsFile
	if err := toml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	order, err := hostOrder(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var eps []*endpoint
	for _, h := range order {
		ep, err := makeEndpoint(hostDir, h, f.Host[h], true)
		if err != nil {
			return nil, fmt.Errorf("%s: host %q: %w", path, h, err)
		}
		eps = append(eps, ep)
	}
	server := f.Server
	if server == "" {
		server = defaultServer(registry)
	}
	ep, err := makeEndpoint(hostDir, server, f.hostEntry, false)
	if err != nil {
		return nil, fmt.Errorf("%s: server %q: %w", path, server, err)
	}
	return append(eps, ep), nil
}

// hostOrder lists the [host."..."] tables in the order the file has them:
// mirrors are tried in that order, which a decoded map would lose.
func hostOrder(data []byte) ([]string, error) {
	var p unstable.Parser
	p.Reset(data)
	var order []string
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table {
			continue
		}
		var parts []string
		it := e.Key()
		for it.Next() {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) == 2 && parts[0] == "host" && !slices.Contains(order, parts[1]) {
			order = append(order, parts[1])
		}
	}
	return order, p.Error()
}

func makeEndpoint(hostDir, raw string, h hostEntry, mirror bool) (*endpoint, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("not an http or https URL: %w", errdefs.ErrInvalidArgument)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	ep := &endpoint{url: u, mirror: mirror, overridePath: h.OverridePath, header: http.Header{}}
	caps := h.Capabilities
	if caps == nil {
		caps = []string{"pull", "resolve", "push"}
	}
	ep.pull = slices.Contains(caps, "pull")
	ep.resolve = slices.Contains(caps, "resolve")
	for k, v := range h.Header {
		switch v := v.(type) {
		case string:
			ep.header.Add(k, v)
		case []any:
			for _, s := range v {
				ep.header.Add(k, fmt.Sprint(s))
			}
		default:
			return nil, fmt.Errorf("header %s: not a string or list: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if h.DialTimeout != "" {
		if ep.dialTimeout, err = time.ParseDuration(h.DialTimeout); err != nil {
			return nil, fmt.Errorf("dial_timeout: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	if u.Scheme == "https" || h.SkipVerify != nil || h.CA != nil || h.Client != nil {
		ep.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if h.SkipVerify != nil && *h.SkipVerify {
			ep.tls.InsecureSkipVerify = true
		}
		cas, err := stringList(h.CA)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		for _, ca := range cas {
			if err := addCA(ep.tls, relTo(hostDir, ca)); err != nil {
				return nil, err
			}
		}
		pairs, err := clientPairs(h.Client)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		for _, pair := range pairs {
			cert, err := tls.LoadX509KeyPair(relTo(hostDir, pair[0]), relTo(hostDir, pair[1]))
			if err != nil {
				return nil, fmt.Errorf("client certificate %s: %w", pair[0], err)
			}
			ep.tls.Certificates = append(ep.tls.Certificates, cert)
		}
	}
	return ep, nil
}

func relTo(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

func addCA(c *tls.Config, path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if c.RootCAs == nil {
		if c.RootCAs, err = x509.SystemCertPool(); err != nil || c.RootCAs == nil {
			c.RootCAs = x509.NewCertPool()
		}
	}
	if !c.RootCAs.AppendCertsFromPEM(pem) {
		return fmt.Errorf("ca %s: no PEM certificate: %w", path, errdefs.ErrInvalidArgument)
	}
	return nil
}

// stringList reads a TOML value that is a string or a list of strings.
func stringList(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, s := range v {
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("%v is not a string: %w", s, errdefs.ErrInvalidArgument)
			}
			out = append(out, str)
		}
		return out, nil
	}
	return nil, fmt.Errorf("not a string or a list of strings: %w", errdefs.ErrInvalidArgument)
}

// clientPairs reads client = "cert" (key in the same file), ["cert", ...]
// or [["cert", "key"], ...].
func clientPairs(v any) ([][2]string, error) {
	if s, ok := v.(string); ok {
		return [][2]string{{s, s}}, nil
	}
	list, ok := v.([]any)
	if v == nil {
		return nil, nil
	}
	if !ok {
		return nil, fmt.Errorf("not a path or a list: %w", errdefs.ErrInvalidArgument)
	}
	var out [][2]string
	for _, item := range list {
		switch item := item.(type) {
		case string:
			out = append(out, [2]string{item, item})
		case []any:
			pair, err := stringList(item)
			if err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("a pair must be [certificate, key]: %w", errdefs.ErrInvalidArgument)
			}
			out = append(out, [2]string{pair[0], pair[1]})
		default:
			return nil, fmt.Errorf("%v is not a path or a pair: %w", item, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}

// loadCertsDir reads a docker-style certs directory: CA certificates in
// *.crt, client certificates in *.cert with their keys in *.key.
func loadCertsDir(ep *endpoint, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		switch filepath.Ext(e.Name()) {
		case ".crt":
			if ep.tls == nil {
				ep.tls = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			if err := addCA(ep.tls, path); err != nil {
				return err
			}
		case ".cert":
			key := strings.TrimSuffix(path, ".cert") + ".key"
			cert, err := tls.LoadX509KeyPair(path, key)
			if err != nil {
				return fmt.Errorf("client certificate %s: %w", path, err)
			}
			if ep.tls == nil {
				ep.tls = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			ep.tls.Certificates = append(ep.tls.Certificates, cert)
		}
	}
	return nil
}
