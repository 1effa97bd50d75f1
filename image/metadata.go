package image

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the version of meta.db's layout (see the package
// comment). A database written by a newer berthd is refused rather than
// misread; older versions would be migrated in migrate.
const schemaVersion = "1"

var (
	bucketMeta      = []byte("meta")
	bucketImages    = []byte("images")
	bucketRefs      = []byte("refs")
	bucketLayers    = []byte("layers")
	bucketSnapshots = []byte("snapshots")
	keyVersion      = []byte("version")
)

// imageRecord is an image in meta.db.
type imageRecord struct {
	ID          string              `json:"id"`
	RepoTags    []string            `json:"repoTags,omitempty"`
	RepoDigests []string            `json:"repoDigests,omitempty"`
	Size        uint64              `json:"size"`
	Config      ocispec.ImageConfig `json:"config"`
	Layers      []layerRef          `json:"layers"`
	// Blobs are the digests of everything the store keeps for this image:
	// index, manifests, config and compressed layers.
	Blobs   []string  `json:"blobs"`
	Created time.Time `json:"created"`
}

// layerRef is one layer of an image.
type layerRef struct {
	ChainID string `json:"chainID"`
	DiffID  string `json:"diffID"`
	Digest  string `json:"digest"` // the compressed blob
	Size    int64  `json:"size"`   // the compressed blob's size
}

func (r imageRecord) chainIDs() []string {
	ids := make([]string, len(r.Layers))
	for i, l := range r.Layers {
		ids[i] = l.ChainID
	}
	return ids
}

// layerRecord is an unpacked layer in meta.db, keyed by chain ID.
type layerRecord struct {
	ChainID string `json:"chainID"`
	DiffID  string `json:"diffID"`
	Dir     string `json:"dir"` // directory name under layers/
	Size    int64  `json:"size"`
	// BlobDigest and BlobSize are the verified compressed blob the layer
	// was unpacked from, so its size stays known if the blob goes.
	BlobDigest string    `json:"blobDigest,omitempty"`
	BlobSize   int64     `json:"blobSize,omitempty"`
	Created    time.Time `json:"created"`
}

// snapshotRecord is a container's writable layer in meta.db.
type snapshotRecord struct {
	Key      string    `json:"key"`
	ImageID  string    `json:"imageID"`
	ChainIDs []string  `json:"chainIDs"` // bottom first
	Created  time.Time `json:"created"`
}

func openDB(path string) (*bolt.DB, error) {
	db, err := OpenBolt(path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketImages, bucketRefs, bucketLayers, bucketSnapshots} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := string(meta.Get(keyVersion)); v {
		case "":
			return meta.Put(keyVersion, []byte(schemaVersion))
		case schemaVersion:
			return nil
		default:
			return fmt.Errorf("schema version %q is not one this berthd reads (%s)", v, schemaVersion)
		}
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return db, nil
}

func getJSON(b *bolt.Bucket, key string, v any) (bool, error) {
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("decode record %s: %w", key, err)
	}
	return true, nil
}

// eachJSON decodes every record of b and calls fn with it.
func eachJSON[T any](b *bolt.Bucket, fn func(T) error) error {
	return b.ForEach(func(k, v []byte) error {
		var rec T
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode record %s: %w", k, err)
		}
		return fn(rec)
	})
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func getImage(tx *bolt.Tx, id string) (imageRecord, bool, error) {
	var rec imageRecord
	ok, err := getJSON(tx.Bucket(bucketImages), id, &rec)
	return rec, ok, err
}

func getLayer(tx *bolt.Tx, chainID string) (layerRecord, bool, error) {
	var rec layerRecord
	ok, err := getJSON(tx.Bucket(bucketLayers), chainID, &rec)
	return rec, ok, err
}

func getSnapshot(tx *bolt.Tx, key string) (snapshotRecord, bool, error) {
	var rec snapshotRecord
	ok, err := getJSON(tx.Bucket(bucketSnapshots), key, &rec)
	return rec, ok, err
}

// resolve finds the image ref names: an image ID ("sha256:<hex>" or bare
// hex), a reference (tag or digest, normalised), or a unique prefix of an
// image ID.
func resolve(tx *bolt.Tx, ref string) (imageRecord, error) {
	images := tx.Bucket(bucketImages)
	if isHex(ref) && len(ref) == 64 {
		ref = "sha256:" + ref
	}
	if rec, ok, err := getImage(tx, ref); ok || err != nil {
		return rec, err
	}
	r, refErr := ParseReference(ref)
	if refErr == nil {
		if id := tx.Bucket(bucketRefs).Get([]byte(r.String())); id != nil {
			rec, ok, err := getImage(tx, string(id))
			if err != nil {
				return rec, err
			}
			if !ok {
				return rec, fmt.Errorf("image %s: reference to missing image %s", ref, id)
			}
			return rec, nil
		}
	}
	hexPart := ref
	if len(ref) > len("sha256:") && ref[:len("sha256:")] == "sha256:" {
		hexPart = ref[len("sha256:"):]
	}
	if isHex(hexPart) && len(hexPart) >= 3 {
		prefix := []byte("sha256:" + hexPart)
		var found []string
		c := images.Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			found = append(found, string(k))
		}
		switch len(found) {
		case 1:
			rec, _, err := getImage(tx, found[0])
			return rec, err
		case 0:
		default:
			return imageRecord{}, fmt.Errorf("image %s: ID prefix matches %d images: %w", ref, len(found), errdefs.ErrInvalidArgument)
		}
	} else if refErr != nil {
		// Neither a reference nor an ID: the same InvalidArgument that
		// PullImage gives, not NotFound.
		return imageRecord{}, refErr
	}
	return imageRecord{}, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// usedLayers is every chain ID an image or a snapshot names.
func usedLayers(tx *bolt.Tx) (map[string]bool, error) {
	used := map[string]bool{}
	err := eachJSON(tx.Bucket(bucketImages), func(rec imageRecord) error {
		for _, id := range rec.chainIDs() {
			used[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachJSON(tx.Bucket(bucketSnapshots), func(rec snapshotRecord) error {
		for _, id := range rec.ChainIDs {
			used[id] = true
		}
		return nil
	})
	return used, err
}

// usedBlobs is every blob digest an image keeps.
func usedBlobs(tx *bolt.Tx) (map[string]bool, error) {
	used := map[string]bool{}
	err := eachJSON(tx.Bucket(bucketImages), func(rec imageRecord) error {
		for _, d := range rec.Blobs {
			used[d] = true
		}
		return nil
	})
	return used, err
}

// addRefs points refs at rec, taking each away from any image that held
// it before (a tag moved to a new image). An image left with no reference
// keeps its record: kubelet still lists it by ID, as containerd and CRI-O do.
func addRefs(tx *bolt.Tx, rec *imageRecord, tags, digests []string) error {
	refs := tx.Bucket(bucketRefs)
	for _, ref := range append(slices.Clone(tags), digests...) {
		old := string(refs.Get([]byte(ref)))
		if old != "" && old != rec.ID {
			prev, ok, err := getImage(tx, old)
			if err != nil {
				return err
			}
			if ok {
				prev.RepoTags = slices.DeleteFunc(prev.RepoTags, func(s string) bool { return s == ref })
				prev.RepoDigests = slices.DeleteFunc(prev.RepoDigests, func(s string) bool { return s == ref })
				if err := putJSON(tx.Bucket(bucketImages), prev.ID, prev); err != nil {
					return err
				}
			}
		}
		if err := refs.Put([]byte(ref), []byte(rec.ID)); err != nil {
			return err
		}
	}
	for _, t := range tags {
		if !slices.Contains(rec.RepoTags, t) {
			rec.RepoTags = append(rec.RepoTags, t)
		}
	}
	for _, d := range digests {
		if !slices.Contains(rec.RepoDigests, d) {
			rec.RepoDigests = append(rec.RepoDigests, d)
		}
	}
	slices.Sort(rec.RepoTags)
	slices.Sort(rec.RepoDigests)
	return nil
}
