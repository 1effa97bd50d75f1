package image

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of size bytes (and more mount options) on a
// new temporary directory.
func mountTmpfs(t *testing.T, size int64, opts ...string) string {
	t.Helper()
	dir := t.TempDir()
	if size > 0 {
		opts = append(opts, "size="+strconv.FormatInt(size, 10))
	}
	data := strings.Join(opts, ",")
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, data); err != nil {
		t.Fatalf("mount a tmpfs (the test needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

func TestSpaceGuardKeepsTheReserveFree(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	free := freeBytes(t, dir)
	for _, tc := range []struct {
		name       string
		minBytes   uint64
		minPercent uint64
		take       int64
		ok         bool
	}{
		{name: "no reserve lets a write of all the free space through", take: free, ok: true},
		{name: "a write that leaves the reserve free passes", minBytes: 4 << 20, take: free - 4<<20, ok: true},
		{name: "a write that would eat into the byte reserve fails", minBytes: 4 << 20, take: free - 4<<20 + 1},
		{name: "a write that would eat into the percentage reserve fails", minPercent: 50, take: free - 7<<20},
		{name: "the larger of the two reserves applies", minBytes: 1 << 20, minPercent: 50, take: free - 4<<20},
		{name: "a reserve above the free space refuses the first write", minBytes: uint64(free) + 1, take: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newSpaceGuard(dir, tc.minBytes, tc.minPercent).check(tc.take)
			if tc.ok && err != nil {
				t.Fatalf("check(%d) with %d free: %v", tc.take, free, err)
			}
			if !tc.ok && (!errdefs.IsResourceExhausted(err) || !storeFull(err) || !strings.Contains(err.Error(), "reserve")) {
				t.Fatalf("check(%d) with %d free: %v, want a ResourceExhausted error naming the reserve", tc.take, free, err)
			}
		})
	}
	t.Run("small writes are summed until a statfs", func(t *testing.T) {
		g := newSpaceGuard(dir, uint64(free)+1, 0)
		var err error
		n := 0
		for ; err == nil && n <= spaceCheckEvery/entryCost; n++ {
			err = g.take(entryCost)
		}
		if !storeFull(err) || n != spaceCheckEvery/entryCost {
			t.Fatalf("the guard refused after %d entries (%v), want after %d", n, err, spaceCheckEvery/entryCost)
		}
	})
	if err := (*spaceGuard)(nil).take(1 << 40); err != nil {
		t.Fatalf("a nil guard refused a write: %v", err)
	}
}

// TestAPullThatWouldGoBelowTheReserveStopsAndFreesWhatItWrote pulls a
// layer that unpacks to far more than it downloads (a 40 MiB file of zeros
// gzips to 40 KiB) onto a 64 MiB tmpfs. With a 32 MiB reserve it must stop
// part-way with ResourceExhausted naming the image and leave no image, no
// ingest file and no layer directory, and the space must come back. A
// layer of many small files on a tmpfs short of inodes fails on the
// filesystem's own ENOSPC before the guard looks, which must be reported
// the same way.
func TestAPullThatWouldGoBelowTheReserveStopsAndFreesWhatItWrote(t *testing.T) {
	reg := newTestRegistry(t)
	base := newLayer(t, gzipped, file{name: "base", body: "base"})
	zeros := newLayer(t, gzipped, file{name: "zeros", body: strings.Repeat("\x00", 40<<20)})
	var files []file
	for i := range 200 {
		files = append(files, file{name: "f" + strconv.Itoa(i), body: "x"})
	}
	many := newLayer(t, gzipped, files...)
	small := reg.push(t, "small:1", imageOf(t, v1.Config{}, base))

	for _, tc := range []struct {
		name     string
		bomb     *memLayer
		tmpfs    []string
		minBytes int64
		want     string
	}{
		{name: "the reserve stops a layer that unpacks too large", bomb: zeros, tmpfs: []string{"size=64m"}, minBytes: 32 << 20, want: "reserve"},
		{name: "the filesystem's own ENOSPC stops a layer of too many files", bomb: many, tmpfs: []string{"size=64m", "nr_inodes=100"}, want: "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bomb := tc.bomb
			ref := reg.push(t, "bomb:"+strconv.Itoa(len(tc.tmpfs)), imageOf(t, v1.Config{}, base, bomb))
			root := filepath.Join(mountTmpfs(t, 0, tc.tmpfs...), "image")
			s, err := Open(context.Background(), Options{Root: root, Log: zaptest.NewLogger(t),
				Config: Config{MaxConcurrentDownloads: 3, MinFreeBytes: tc.minBytes}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			before := freeBytes(t, root)

			_, err = s.Pull(context.Background(), ref, nil)
			if !errdefs.IsResourceExhausted(err) || !strings.Contains(err.Error(), ref) ||
				!strings.Contains(err.Error(), bomb.digest()) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pull of a layer that does not fit: %v, want ResourceExhausted naming %s, layer %s and %q", err, ref, bomb.digest(), tc.want)
			}
			if imgs, err := s.List(context.Background()); err != nil || len(imgs) != 0 {
				t.Fatalf("images after the refused pull: %v, %v", imgs, err)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, dirIngest)); len(ents) != 0 {
				t.Errorf("ingest files left: %v", ents)
			}
			if _, err := os.Stat(s.blobPath(strings.TrimPrefix(bomb.digest(), "sha256:"))); !os.IsNotExist(err) {
				t.Errorf("the layer that did not fit was stored (%v)", err)
			}
			// Only the base layer, verified, stays for the next attempt.
			if n := len(layerDirs(t, s)); n != 1 {
				t.Errorf("%d layer dirs, want only the base layer's", n)
			}
			if after := freeBytes(t, root); after < before-1<<20 {
				t.Errorf("%d bytes free after the refused pull, %d before: the partial layer was not removed", after, before)
			}
			mustPull(t, s, small)
		})
	}
}
