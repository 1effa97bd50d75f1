// Package image pulls OCI images from registries into Berth's content
// store, unpacks each layer once, and mounts containers' root filesystems
// as overlays of those layers.
//
// # On-disk layout
//
// Everything lives under Options.Root (<berthd root>/image):
//
//	blobs/sha256/<hex>     verified content: manifests, indexes, configs and
//	                       compressed layers, named by their digest
//	ingest/<hex>-<rand>    blobs being downloaded; renamed into blobs/ only
//	                       once their digest and size are verified; emptied
//	                       at start-up
//	layers/<id>/fs         one unpacked layer (overlayfs whiteouts), keyed by
//	                       its chain ID in the database. <id> is a short
//	                       sequence number so that the lowerdir string of a
//	                       many-layer overlay stays short. A directory with
//	                       no committed record is an interrupted unpack and
//	                       is removed at start-up.
//	snapshots/<key>/upper  a container's private writable layer
//	snapshots/<key>/work   overlayfs's work directory for it
//	meta.db                the bbolt database below
//
// # Database schema (meta.db, bbolt)
//
//	meta/version                 -> schema version ("1")
//	images/<image id>            -> imageRecord (JSON); image id is the
//	                                config digest
//	refs/<normalised reference>  -> image id; one key per repo tag
//	                                ("docker.io/library/busybox:latest")
//	                                and repo digest ("...busybox@sha256:...")
//	layers/<chain id>            -> layerRecord (JSON): directory id,
//	                                diff id, unpacked size
//	snapshots/<key>              -> snapshotRecord (JSON): the image and
//	                                the chain ids it stacks
//
// A layer is in use while an image or a snapshot names its chain id (the
// reference count is computed from those records in the transaction that
// removes an image or snapshot, so it cannot drift), or while a pull in
// flight leases it. An image record can therefore be removed while
// containers still run on its layers: the layers go with the last snapshot.
package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Config is the [registry] part of berthd's configuration.
type Config struct {
	// ConfigPath is the hosts directory in containerd's certs.d format.
	ConfigPath string `toml:"config_path" comment:"registry hosts directory in containerd's certs.d format: <host>/hosts.toml and _default/hosts.toml"`
	// CredentialsFile is a Docker-style config.json used when a pull carries no credentials.
	CredentialsFile string `toml:"credentials_file,omitempty" comment:"Docker-style config.json with registry credentials, used when a pull request carries none"`
	// MaxConcurrentDownloads bounds the blobs downloaded at once from one registry host.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads" comment:"blobs downloaded at once from one registry host"`
	// StallTimeoutSeconds aborts a download that receives no byte for this long.
	StallTimeoutSeconds int `toml:"stall_timeout_seconds" comment:"seconds a registry may stay silent (no response, no byte of a blob) before the pull fails"`
	// ProgressIntervalSeconds is how often a running pull logs its progress.
	ProgressIntervalSeconds int `toml:"progress_interval_seconds" comment:"seconds between the info-level progress lines of a running pull"`
	// PinnedImages are never garbage-collected by kubelet (ImageStatus reports them pinned).
	PinnedImages []string `toml:"pinned_images,omitempty" comment:"images reported as pinned, which kubelet never garbage-collects (for example the pause image)"`
	// MinFreeBytes and MinFreePercent make the free-space reserve of the
	// store's filesystem: the larger of the two. A pull stops when
	// writing on would leave less free.
	MinFreeBytes int64 `toml:"min_free_bytes" comment:"free-space reserve: a pull fails with ResourceExhausted (its partial layer and download removed) when writing on would leave fewer bytes free on the filesystem of <root>/image; 0 leaves only the filesystem's own limit"`
	// MinFreePercent is the reserve as a percentage of the filesystem's size.
	MinFreePercent int `toml:"min_free_percent" comment:"the same reserve as a percentage of that filesystem's size; the larger of the two applies"`
}

// DefaultConfig is the configuration of a berthd started with no file.
func DefaultConfig() Config {
	return Config{
		ConfigPath:              "/etc/berth/certs.d",
		MaxConcurrentDownloads:  3,
		StallTimeoutSeconds:     60,
		ProgressIntervalSeconds: 10,
		MinFreeBytes:            1 << 30,
	}
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
	// ServerAddress, when set, limits the credentials to that registry host.
	ServerAddress string
}

// Filesystem is a usage figure for ImageFsInfo.
type Filesystem struct {
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
	Timestamp  time.Time
}

// Store is the image and layer store.
type Store struct {
	root   string
	cfg    Config
	log    *zap.Logger
	db     *bolt.DB
	pinned map[string]bool // normalised pinned references

	flights flightGroup

	// mu guards the per-host download slots, the leases of pulls in
	// flight and the usage cache.
	mu     sync.Mutex
	slots  map[string]chan struct{}
	leases map[string]int // chain ids and blob digests in use by pulls
	usage  *usageCache

	space *spaceGuard // the free-space reserve of what pulls write
}

// Open opens (or creates) the store at opts.Root and cleans up what an
// interrupted pull left behind.
func Open(ctx context.Context, opts Options) (_ *Store, retErr error) {
	if opts.Root == "" {
		return nil, errors.New("image store: no root directory")
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	cfg := opts.Config
	def := DefaultConfig()
	if cfg.MaxConcurrentDownloads < 1 {
		cfg.MaxConcurrentDownloads = def.MaxConcurrentDownloads
	}
	if cfg.StallTimeoutSeconds < 1 {
		cfg.StallTimeoutSeconds = def.StallTimeoutSeconds
	}
	if cfg.ProgressIntervalSeconds < 1 {
		cfg.ProgressIntervalSeconds = def.ProgressIntervalSeconds
	}
	for _, dir := range []string{"", dirBlobs, dirIngest, dirLayers, dirSnapshots} {
		if err := os.MkdirAll(filepath.Join(opts.Root, dir), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	db, err := openDB(filepath.Join(opts.Root, "meta.db"))
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	defer func() {
		if retErr != nil {
			db.Close()
		}
	}()
	s := &Store{
		root:   opts.Root,
		cfg:    cfg,
		log:    log,
		db:     db,
		pinned: map[string]bool{},
		slots:  map[string]chan struct{}{},
		leases: map[string]int{},
		space:  newSpaceGuard(opts.Root, uint64(max(cfg.MinFreeBytes, 0)), uint64(max(cfg.MinFreePercent, 0))),
	}
	for _, p := range cfg.PinnedImages {
		r, err := ParseReference(p)
		if err != nil {
			return nil, fmt.Errorf("image store: pinned image %q: %w", p, err)
		}
		s.pinned[r.String()] = true
	}
	if err := s.cleanup(ctx); err != nil {
		return nil, fmt.Errorf("image store: clean up: %w", err)
	}
	return s, nil
}

// Close releases the store's database.
func (s *Store) Close() error { return s.db.Close() }

// Store directories under the root.
const (
	dirBlobs     = "blobs/sha256"
	dirIngest    = "ingest"
	dirLayers    = "layers"
	dirSnapshots = "snapshots"
)

func (s *Store) blobPath(hex string) string { return filepath.Join(s.root, dirBlobs, hex) }
func (s *Store) layerDir(id string) string  { return filepath.Join(s.root, dirLayers, id) }
func (s *Store) layerFS(id string) string   { return filepath.Join(s.root, dirLayers, id, "fs") }
func (s *Store) snapshotDir(key string) string {
	return filepath.Join(s.root, dirSnapshots, key)
}

// lease marks chain ids and digests as used by a pull in flight, so that a
// concurrent Remove does not collect them before the pull records its
// image. The returned function drops the lease.
func (s *Store) lease(keys ...string) func() {
	s.mu.Lock()
	for _, k := range keys {
		s.leases[k]++
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		for _, k := range keys {
			if s.leases[k]--; s.leases[k] <= 0 {
				delete(s.leases, k)
			}
		}
		s.mu.Unlock()
	}
}

func (s *Store) leased(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[key] > 0
}
