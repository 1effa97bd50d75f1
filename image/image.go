// Package image pulls OCI images from registries into Berth's content
// store, unpacks each layer once, and mounts containers' root filesystems
// as overlays of those layers.
package image

import (
	"context"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// Config is the [image] part of berthd's configuration.
type Config struct {
	// ConfigPath is the hosts directory in containerd's certs.d format.
	ConfigPath string `toml:"config_path" comment:"registry hosts directory in containerd's certs.d format: <host>/hosts.toml and _default/hosts.toml"`
	// CredentialsFile is a Docker-style config.json used when a pull carries no credentials.
	CredentialsFile string `toml:"credentials_file,omitempty" comment:"Docker-style config.json with registry credentials, used when a pull request carries none"`
	// MaxConcurrentDownloads bounds the blobs downloaded at once from one registry host.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads" comment:"blobs downloaded at once from one registry host"`
}

// DefaultConfig is the configuration of a berthd started with no file.
func DefaultConfig() Config {
	return Config{ConfigPath: "/etc/berth/certs.d", MaxConcurrentDownloads: 3}
}

// Options open a Store.
type Options struct {
	Root   string // the store's directory: <berthd root>/image
	Config Config
	Log    *zap.Logger
}

// Image is a pulled image.
type Image struct {
	ID          string // config digest, "sha256:..."
	RepoTags    []string
	RepoDigests []string
	Size        uint64 // bytes of its compressed layers and config, as kubelet expects
	Config      ocispec.ImageConfig
	Pinned      bool
	ChainIDs    []string // chain IDs of its layers, bottom first
}

// Auth is a pull's registry credentials. It is never logged or stored.
type Auth struct {
	Username, Password string
	Auth               string // base64 user:password
	IdentityToken      string
	RegistryToken      string
}

// Filesystem is a usage figure for ImageFsInfo.
type Filesystem struct {
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
	Timestamp  time.Time
}

// Store is the image and layer store.
type Store struct{}

// Open opens (or creates) the store at opts.Root and cleans up what an
// interrupted pull left behind.
func Open(ctx context.Context, opts Options) (*Store, error) { return &Store{}, nil }

// Close releases the store's database.
func (s *Store) Close() error { return nil }

// Pull fetches ref and returns the image's ID.
func (s *Store) Pull(ctx context.Context, ref string, auth *Auth) (string, error) {
	return "", errdefs.ErrNotImplemented
}

// Get resolves an image ID, ID prefix, tag or digest reference.
func (s *Store) Get(ctx context.Context, ref string) (Image, error) {
	return Image{}, errdefs.ErrNotFound
}

// List returns every image.
func (s *Store) List(ctx context.Context) ([]Image, error) { return nil, nil }

// Remove removes a reference to an image, and the image once no reference is
// left. Removing an unknown image is not an error.
func (s *Store) Remove(ctx context.Context, ref string) error { return nil }

// FsInfo reports the image filesystem and the containers' writable layers.
func (s *Store) FsInfo(ctx context.Context) (images, containers []Filesystem, err error) {
	return nil, nil, nil
}

// PrepareSnapshot creates a container's private writable layer over imageID's
// layers. key is the container ID.
func (s *Store) PrepareSnapshot(ctx context.Context, key, imageID string) error {
	return errdefs.ErrNotImplemented
}

// MountSnapshot mounts snapshot key as an overlay at target.
func (s *Store) MountSnapshot(ctx context.Context, key, target string) error {
	return errdefs.ErrNotImplemented
}

// RemoveSnapshot removes a snapshot's writable layer. The caller unmounts it
// first. Removing an unknown snapshot is not an error.
func (s *Store) RemoveSnapshot(ctx context.Context, key string) error { return nil }
