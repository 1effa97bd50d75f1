package image

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
)

// authenticator picks the credentials for one endpoint: the pull's own
// (CRI AuthConfig) unless they name another server, else the credentials
// file's entry for the endpoint's host, else none. Credentials are handed
// to the registry client only: never logged, never stored.
func (s *Store) authenticator(a *Auth, ep *endpoint, registry string) (authn.Authenticator, error) {
	if a != nil && (a.ServerAddress == "" || serverHost(a.ServerAddress) == ep.host() ||
		serverHost(a.ServerAddress) == registry) {
		cfg, err := a.config()
		if err != nil {
			return nil, err
		}
		if cfg != (authn.AuthConfig{}) {
			return authn.FromConfig(cfg), nil
		}
	}
	if s.cfg.CredentialsFile == "" {
		return authn.Anonymous, nil
	}
	cfg, err := fileCredentials(s.cfg.CredentialsFile, ep.host(), registry)
	if err != nil {
		return nil, err
	}
	if cfg == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(cfg), nil
}

// config turns the CRI fields into a client configuration, splitting the
// base64 "auth" field into user and password as containerd does.
func (a *Auth) config() (authn.AuthConfig, error) {
	cfg := authn.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	}
	if a.Auth != "" && cfg.Username == "" {
		u, p, err := decodeAuth(a.Auth)
		if err != nil {
			return authn.AuthConfig{}, err
		}
		cfg.Username, cfg.Password = u, p
	}
	return cfg, nil
}

func decodeAuth(auth string) (string, string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth))
	if err != nil {
		return "", "", fmt.Errorf("registry auth is not base64: %w", errdefs.ErrInvalidArgument)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", fmt.Errorf("registry auth is not user:password: %w", errdefs.ErrInvalidArgument)
	}
	return user, pass, nil
}

// serverHost is the host[:port] of a credentials key, which may be a URL
// ("https://index.docker.io/v1/") or a bare host.
func serverHost(s string) string {
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			s = u.Host
		}
	}
	s, _, _ = strings.Cut(s, "/")
	if s == "index.docker.io" || s == "registry-1.docker.io" {
		return dockerHub
	}
	return s
}

// dockerConfig is the part of Docker's config.json berthd reads.
type dockerConfig struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
		RegistryToken string `json:"registrytoken"`
	} `json:"auths"`
}

// fileCredentials reads the credentials for host (the endpoint contacted)
// or registry (the reference's registry) from a Docker config.json. It is
// read on each pull, so that edits need no restart.
func fileCredentials(path, host, registry string) (authn.AuthConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return authn.AuthConfig{}, nil
	}
	if err != nil {
		return authn.AuthConfig{}, fmt.Errorf("credentials file: %w", err)
	}
	var f dockerConfig
	if err := json.Unmarshal(data, &f); err != nil {
		// The decoder's message can quote the file; keep it out.
		return authn.AuthConfig{}, fmt.Errorf("credentials file %s is not valid JSON: %w", path, errdefs.ErrInvalidArgument)
	}
	for _, want := range []string{serverHost(host), registry} {
		for key, e := range f.Auths {
			if serverHost(key) != want {
				continue
			}
			a := Auth{Username: e.Username, Password: e.Password, Auth: e.Auth,
				IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
			cfg, err := a.config()
			if err != nil {
				return authn.AuthConfig{}, fmt.Errorf("credentials file %s, %s: %w", path, key, err)
			}
			return cfg, nil
		}
	}
	return authn.AuthConfig{}, nil
}
