package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCheckLogPath(t *testing.T) {
	for _, tc := range []struct {
		name, rel string
		ok        bool
	}{
		{name: "a file in a subdirectory is beneath", rel: "c/0.log", ok: true},
		{name: "a path that climbs and comes back in is beneath", rel: "c/../d/0.log", ok: true},
		{name: "an absolute path is refused", rel: "/tmp/x.log"},
		{name: "a path climbing out is refused", rel: "../../../../tmp/berth-escape-log"},
		{name: "a path climbing out after a subdirectory is refused", rel: "c/../../x"},
		{name: "the directory itself is refused", rel: "c/.."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkLogPath(tc.rel)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, errdefs.ErrInvalidArgument)) {
				t.Fatalf("checkLogPath(%q) = %v, want ok %v", tc.rel, err, tc.ok)
			}
		})
	}
}

func TestOpenBeneathDoesNotFollowSymlinks(t *testing.T) {
	root := t.TempDir()
	dir, outside := filepath.Join(root, "logs"), filepath.Join(root, "outside")
	os.MkdirAll(dir, 0o755)
	os.MkdirAll(outside, 0o755)
	os.Symlink(outside, filepath.Join(dir, "c"))
	os.Symlink(filepath.Join(outside, "f.log"), filepath.Join(dir, "f.log"))
	for _, rel := range []string{"c/0.log", "f.log"} {
		if f, err := openBeneath(dir, rel); err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
			if f != nil {
				f.Close()
			}
			t.Errorf("openBeneath(%s) through a symlink = %v, want InvalidArgument", rel, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("files made outside the log directory: %v", ents)
	}
	f, err := openBeneath(dir, "d/e/0.log")
	if err != nil {
		t.Fatalf("open in new subdirectories: %v", err)
	}
	f.Close()
	if _, err := os.Stat(filepath.Join(dir, "d/e/0.log")); err != nil {
		t.Fatal(err)
	}
}
