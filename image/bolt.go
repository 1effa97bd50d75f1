package image

// Berth's databases (image/meta.db here, sandbox/meta.db) are bbolt files:
// a write transaction commits by writing its pages and then one of two
// meta pages, so a berthd killed in the middle leaves the last committed
// state (TestBoltSurvivesAKillInTheMiddleOfWrites). A file that is
// corrupt anyway (a disk or a hand that damaged it) is not opened: berthd
// refuses to start rather than start empty and forget the pods, containers
// and images it was running, and says how to recover.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorruptDatabase marks a database berthd will not open.
var ErrCorruptDatabase = errors.New("corrupt database")

// OpenBolt opens (creating) the database at path, checking every page of
// an existing one. A second berthd on the same file fails after timeout.
//
// A new database is made whole beside path and then linked into place
// (createBolt), so a first start that fails half-way (a full disk, a kill)
// leaves no file at path and the next start creates it again. A file at
// path is therefore always one bbolt wrote completely; an empty or short
// one is damage, refused like any other.
func OpenBolt(path string, timeout time.Duration) (_ *bolt.DB, retErr error) {
	if err := createBolt(path, timeout); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.Size() == 0 {
		// bbolt would initialise it as new: an empty database.
		return nil, corruptDB(path, errors.New("the file is empty"))
	}
	db, err := openBoltRecovering(path, timeout)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: in use by another berthd", path)
	case err != nil:
		// The file could not be opened or locked (permissions, a full
		// disk): not the content's fault. Anything else bbolt says (invalid
		// database, checksum error, file size too small) is.
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return nil, corruptDB(path, err)
	}
	if err := checkBolt(db); err != nil {
		db.Close()
		return nil, corruptDB(path, err)
	}
	return db, nil
}

// createBolt makes an empty database at path unless a file is there: bbolt
// initialises it under a temporary name, it is synced, and a hard link
// puts it at path (failing if another berthd got there first, whose file
// is kept). The temporary files of earlier attempts are removed.
func createBolt(path string, timeout time.Duration) error {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return nil // there, or a stat error OpenBolt reports
	}
	stale, _ := filepath.Glob(path + ".new-*")
	for _, f := range stale {
		os.Remove(f)
	}
	tmp := fmt.Sprintf("%s.new-%d", path, os.Getpid())
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	// bbolt syncs the pages it initialises; the link needs its directory
	// synced to last.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// openBoltRecovering is bolt.Open with its panics on a damaged file (a
// freelist page of garbage) turned into errors. berthd stops then, so
// the file bbolt may have left open does not matter.
func openBoltRecovering(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", bolterrors.ErrInvalid, r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
}

// checkBolt walks every page; bbolt panics on some damage rather than
// erring, which is an error here.
func checkBolt(db *bolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check: %v", r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

func corruptDB(path string, err error) error {
	return fmt.Errorf("database %s: %v: %w. berthd does not start on it: an empty database would forget "+
		"the pods, containers and images it records and orphan what runs. To recover, restore a copy of the "+
		"file, or move it aside (mv %s %s.corrupt) and start berthd with an empty one, then remove what the "+
		"old one ran by hand (its processes, mounts under the state directory, cgroups)",
		path, err, ErrCorruptDatabase, path, path)
}
