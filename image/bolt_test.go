package image

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

const boltWriterEnv = "BERTH_TEST_BOLT_WRITER"

// TestMain lets the test binary be the writer killed by
// TestBoltSurvivesAKillInTheMiddleOfWrites.
func TestMain(m *testing.M) {
	if path := os.Getenv(boltWriterEnv); path != "" {
		boltWriter(path)
		return
	}
	os.Exit(m.Run())
}

// boltWriter commits transactions of 64 records of 4 KiB for ever and
// prints the number of each one committed.
func boltWriter(path string) {
	db, err := OpenBolt(path, time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	val := make([]byte, 4096)
	for n := 1; ; n++ {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("records"))
			if err != nil {
				return err
			}
			for i := range 64 {
				if err := b.Put(fmt.Appendf(nil, "%08d-%02d", n, i), val); err != nil {
					return err
				}
			}
			return b.Put([]byte("last"), []byte(strconv.Itoa(n)))
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(n)
	}
}

func TestBoltSurvivesAKillInTheMiddleOfWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	for round := range 5 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), boltWriterEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it some transactions in: it is then almost always in the
		// middle of one (writing pages or the meta page).
		sc := bufio.NewScanner(out)
		committed := 0
		for sc.Scan() && committed < 20*(round+1) {
			committed, _ = strconv.Atoi(sc.Text())
		}
		cmd.Process.Kill()
		for sc.Scan() {
			committed, _ = strconv.Atoi(sc.Text())
		}
		cmd.Wait()

		db, err := OpenBolt(path, time.Second)
		if err != nil {
			t.Fatalf("round %d: the database a killed writer left does not open: %v", round, err)
		}
		err = db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("records"))
			last, _ := strconv.Atoi(string(b.Get([]byte("last"))))
			// Every transaction it reported committed is there whole; one
			// more may have committed before it could say so.
			if last < committed || last > committed+1 {
				return fmt.Errorf("last transaction %d, the writer reported %d committed", last, committed)
			}
			for n := 1; n <= last; n++ {
				for i := range 64 {
					if v := b.Get(fmt.Appendf(nil, "%08d-%02d", n, i)); len(v) != 4096 {
						return fmt.Errorf("record %d-%d of a committed transaction: %d bytes", n, i, len(v))
					}
				}
			}
			if b.Get(fmt.Appendf(nil, "%08d-%02d", last+1, 0)) != nil {
				return fmt.Errorf("a record of the uncommitted transaction %d is visible", last+1)
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func TestOpenBoltRefusesACorruptDatabase(t *testing.T) {
	good := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "meta.db")
		db, err := OpenBolt(path, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			for i := range 20 {
				b, err := tx.CreateBucketIfNotExists(fmt.Appendf(nil, "b%d", i))
				if err != nil {
					return err
				}
				for j := range 50 {
					if err := b.Put(fmt.Appendf(nil, "k%d", j), make([]byte, 300)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{name: "a file of garbage is corrupt", damage: func(t *testing.T, path string) {
			os.WriteFile(path, []byte("this is not a bbolt database, not even close to one....."), 0o600)
		}},
		{name: "an empty file is corrupt, not a new database", damage: func(t *testing.T, path string) {
			os.Truncate(path, 0)
		}},
		{name: "a file whose data pages were overwritten is corrupt", damage: func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			junk := make([]byte, st.Size()-4*4096)
			for i := range junk {
				junk[i] = byte(i*7 + 3)
			}
			f.WriteAt(junk, 4*4096) // the two meta pages, freelist and root stay
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := good(t)
			tc.damage(t, path)
			db, err := OpenBolt(path, time.Second)
			if err == nil {
				db.Close()
				t.Fatal("OpenBolt opened it")
			}
			if !errors.Is(err, ErrCorruptDatabase) {
				t.Fatalf("OpenBolt: %v, want ErrCorruptDatabase", err)
			}
		})
	}
}

// TestAFirstCreationThatFailsLeavesNoDatabaseToRefuse fails the creation
// of a new database on a full disk and after a kill: neither may leave a
// file that the next start refuses as corrupt, and once there is room the
// database is created and works.
func TestAFirstCreationThatFailsLeavesNoDatabaseToRefuse(t *testing.T) {
	dir := mountTmpfs(t, 256<<10)
	path := filepath.Join(dir, "meta.db")
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, freeBytes(t, dir)-8<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := OpenBolt(path, time.Second)
	if err == nil {
		db.Close()
		t.Fatal("OpenBolt created a database in 8 KiB")
	}
	if errors.Is(err, ErrCorruptDatabase) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("OpenBolt on a full disk: %v, want ENOSPC", err)
	}
	if names := readdirNames(t, dir); !slices.Equal(names, []string{"filler"}) {
		t.Fatalf("a failed creation left %v", names)
	}
	os.Remove(filler)
	// What a kill in the middle of a creation leaves.
	if err := os.WriteFile(path+".new-1", make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = OpenBolt(path, time.Second)
	if err != nil {
		t.Fatalf("OpenBolt once there is room: %v", err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	if names := readdirNames(t, dir); !slices.Equal(names, []string{"meta.db"}) {
		t.Fatalf("the store holds %v, want meta.db only", names)
	}
}
