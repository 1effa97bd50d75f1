package sandbox

// The sandbox database, <berthd root>/sandbox/meta.db (bbolt):
//
//	meta/
//	  version        schema version, "1"
//	pods/
//	  <pod id>       JSON podRecord: what RunPodSandbox made, with its config
//	containers/
//	  <container id> JSON containerRecord: what CreateContainer made, with its config
//
// A record is written in one bbolt transaction, so a crash leaves the old
// or the new one, never a torn one. Volatile facts (is a process alive, did
// it exit) are not stored here: they live under the state dir, where the
// monitors write them, and are read back at recovery. A corrupt file stops
// berthd at start (image.OpenBolt).

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/berth-runtime/berth/image"
	bolt "go.etcd.io/bbolt"
)

const schemaVersion = "1"

var (
	bucketMeta       = []byte("meta")
	bucketPods       = []byte("pods")
	bucketContainers = []byte("containers")
	keyVersion       = []byte("version")
)

type store struct {
	db *bolt.DB
}

// openStore opens the database, creating its buckets, and refuses a schema
// it does not know. The timeout turns a second berthd on the same root into
// an error instead of a hang.
func openStore(path string) (*store, error) {
	db, err := image.OpenBolt(path, time.Second)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keyVersion); {
		case v == nil:
			if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
				return err
			}
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this berthd knows %q", v, schemaVersion)
		}
		for _, b := range [][]byte{bucketPods, bucketContainers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

// put writes v as JSON under bucket/id.
func (s *store) put(bucket []byte, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", bucket, id, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(id), data)
	})
}

// delete removes bucket/id; a missing record is not an error.
func (s *store) delete(bucket []byte, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(id))
	})
}

// each calls fn with every record of bucket.
func (s *store) each(bucket []byte, fn func(id string, data []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			return fn(string(k), v)
		})
	})
}
