package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// mustUnpack unpacks a layer built from entries into root/layers/<name>/fs,
// the store's layout, and returns that directory.
func mustUnpack(t *testing.T, root, name string, entries ...tarEntry) string {
	t.Helper()
	dir := filepath.Join(root, "layers", name, "fs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unpackLayer(context.Background(), bytes.NewReader(layerTar(t, entries...)), dir, nil); err != nil {
		t.Fatalf("unpack %s: %v", name, err)
	}
	return dir
}

// mountedAt reports whether anything is mounted at target, from
// /proc/self/mountinfo.
func mountedAt(t *testing.T, target string) bool {
	t.Helper()
	return mountInfo(t, target) != ""
}

// mountInfo returns the last /proc/self/mountinfo line of a mount at target,
// or "".
func mountInfo(t *testing.T, target string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20) // overlay lines with many layers are long
	var line string
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && fields[4] == target {
			line = s.Text()
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return line
}

// mustMountOverlay mounts and registers an unmount that also checks nothing
// is left in mountinfo.
func mustMountOverlay(t *testing.T, lowers []string, upper, work, target string) {
	t.Helper()
	if err := mountOverlay(lowers, upper, work, target); err != nil {
		t.Fatalf("mountOverlay: %v", err)
	}
	t.Cleanup(func() { mustUnmountCleanly(t, target) })
	if !mountedAt(t, target) {
		t.Fatalf("mountOverlay returned but nothing is mounted at %s", target)
	}
}

func mustUnmountCleanly(t *testing.T, target string) {
	t.Helper()
	if err := unmount(target); err != nil {
		t.Errorf("unmount: %v", err)
	}
	if mountedAt(t, target) {
		t.Errorf("%s still in /proc/self/mountinfo after unmount", target)
	}
}

func mustMkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func readdirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestMountOverlayShowsWhiteoutsAndOpaqueDirsAndWritesGoToUpper(t *testing.T) {
	root := t.TempDir()
	base := mustUnpack(t, root, "base",
		tDir("etc/", 0o755),
		tFile("etc/passwd", 0o644, "root:x:0:0\n"),
		tFile("etc/motd", 0o644, "hello\n"),
		tDir("var/cache/", 0o755),
		tFile("var/cache/old1", 0o644, "old"),
		tFile("var/cache/old2", 0o644, "old"),
		tDir("usr/bin/", 0o755),
		tFile("usr/bin/tool", 0o755, "v1"),
	)
	top := mustUnpack(t, root, "top",
		tDir("etc/", 0o755),
		tFile("etc/.wh.motd", 0o644, ""),
		tDir("var/cache/", 0o755),
		tFile("var/cache/.wh..wh..opq", 0o644, ""),
		tFile("var/cache/new", 0o644, "new"),
		tFile("usr/bin/tool", 0o755, "v2"),
		tFile("usr/bin/other", 0o700, "other"),
	)
	upper, work, target := filepath.Join(root, "c1/fs"), filepath.Join(root, "c1/work"), filepath.Join(root, "rootfs")
	mustMkdirs(t, upper, work, target)
	mustMountOverlay(t, []string{top, base}, upper, work, target)
	if info := mountInfo(t, target); !strings.Contains(info, " - overlay overlay ") {
		t.Errorf("mountinfo %q: want an overlay named overlay, as mount(2) makes it", info)
	}

	for dir, want := range map[string][]string{
		"":          {"etc", "usr", "var"},
		"etc":       {"passwd"},
		"var/cache": {"new"},
		"usr/bin":   {"other", "tool"},
	} {
		if got := readdirNames(t, filepath.Join(target, dir)); !slices.Equal(got, want) {
			t.Errorf("readdir /%s = %v, want %v", dir, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(target, "etc/motd")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("whited-out etc/motd: lstat says %v", err)
	}
	if _, err := os.Lstat(filepath.Join(target, "var/cache/old1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("var/cache/old1 below an opaque dir: lstat says %v", err)
	}
	if got := mustRead(t, filepath.Join(target, "usr/bin/tool")); got != "v2" {
		t.Errorf("usr/bin/tool = %q, want the top layer's", got)
	}
	checkOwnerMode(t, "usr/bin/other", mustLstat(t, filepath.Join(target, "usr/bin/other")), unix.S_IFREG, 0o700, 0, 0)

	// Writes land in the upper dir; the layers stay as unpacked.
	if err := os.WriteFile(filepath.Join(target, "etc/hostname"), []byte("pod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(target, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(upper, "etc/hostname")); got != "pod\n" {
		t.Errorf("upper etc/hostname = %q", got)
	}
	checkOwnerMode(t, "upper etc/passwd", mustLstat(t, filepath.Join(upper, "etc/passwd")), unix.S_IFCHR, 0, 0, 0)
	mustNotExist(t, filepath.Join(base, "etc/hostname"))
	mustNotExist(t, filepath.Join(top, "etc/hostname"))
	if got := mustRead(t, filepath.Join(base, "etc/passwd")); got != "root:x:0:0\n" {
		t.Errorf("base layer etc/passwd changed: %q", got)
	}
}

func TestMountOverlayMounts70LayersBeyondOnePageOfOptions(t *testing.T) {
	root := t.TempDir()
	const n = 70
	lowers := make([]string, n)
	for i := range n {
		// Layer dirs named like the store's: a 64-hex chain ID.
		lowers[n-1-i] = mustUnpack(t, root, fmt.Sprintf("%064x", i),
			tFile(fmt.Sprintf("layer%02d", i), 0o644, "x"),
			tFile("which", 0o644, fmt.Sprint(i)),
		)
	}
	if data := overlayData(lowers, "/u", "/w"); len(data) < os.Getpagesize() {
		t.Fatalf("test layout too small: %d bytes of options fit in a page", len(data))
	}

	tests := []struct {
		name  string
		mount func(lowers []string, upper, work, target string) error
	}{
		{"through mountOverlay", mountOverlay},
		{"through the new mount API with lowerdir+", mountOverlayFsopen},
		{"through the mount(2) fallback for kernels without lowerdir+", mountOverlayClassic},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upper, work, target := filepath.Join(root, fmt.Sprint("up", i)), filepath.Join(root, fmt.Sprint("work", i)), filepath.Join(root, fmt.Sprint("rootfs", i))
			mustMkdirs(t, upper, work, target)
			if err := tt.mount(lowers, upper, work, target); err != nil {
				t.Fatalf("mount: %v", err)
			}
			t.Cleanup(func() { mustUnmountCleanly(t, target) })
			for _, f := range []string{"layer00", "layer69"} {
				if _, err := os.Stat(filepath.Join(target, f)); err != nil {
					t.Errorf("%s through the overlay: %v", f, err)
				}
			}
			if got := mustRead(t, filepath.Join(target, "which")); got != "69" {
				t.Errorf("which = %q, want the top layer's 69", got)
			}
			if got := len(readdirNames(t, target)); got != n+1 {
				t.Errorf("readdir shows %d entries, want %d", got, n+1)
			}
		})
	}
}

func TestMountOverlayWithoutUpperIsReadOnly(t *testing.T) {
	root := t.TempDir()
	l1 := mustUnpack(t, root, "l1", tFile("a", 0o644, "a1"), tFile("only1", 0o644, "1"))
	l2 := mustUnpack(t, root, "l2", tFile("a", 0o644, "a2"), tFile(".wh.only1", 0o644, ""))
	tests := []struct {
		name   string
		lowers []string
		files  map[string]string
		absent []string
	}{
		{"two lowers make a read-only union", []string{l2, l1}, map[string]string{"a": "a2"}, []string{"only1"}},
		{"a single lower is bound read-only", []string{l1}, map[string]string{"a": "a1", "only1": "1"}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(root, fmt.Sprint("view", i))
			mustMkdirs(t, target)
			mustMountOverlay(t, tt.lowers, "", "", target)
			for f, want := range tt.files {
				if got := mustRead(t, filepath.Join(target, f)); got != want {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
			for _, f := range tt.absent {
				mustNotExist(t, filepath.Join(target, f))
			}
			err := os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("write through a read-only view: %v, want EROFS", err)
			}
		})
	}
}

func TestMountOverlayRefusesBadArgumentsAndLeavesNothingMounted(t *testing.T) {
	root := t.TempDir()
	l1 := mustUnpack(t, root, "l1", tFile("a", 0o644, "a"))
	l2 := mustUnpack(t, root, "l2", tFile("b", 0o644, "b"))
	upper, work := filepath.Join(root, "up"), filepath.Join(root, "work")
	mustMkdirs(t, upper, work)
	tests := []struct {
		name         string
		lowers       []string
		upper, work  string
		wantArgument bool
	}{
		{name: "no lower layers", upper: upper, work: work, wantArgument: true},
		{name: "an upper without a work dir", lowers: []string{l1}, upper: upper, wantArgument: true},
		{name: "a missing lower layer", lowers: []string{l1, filepath.Join(root, "missing")}, upper: upper, work: work},
		{name: "a missing upper dir", lowers: []string{l2, l1}, upper: filepath.Join(root, "missing"), work: work},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(root, fmt.Sprint("rootfs", i))
			mustMkdirs(t, target)
			err := mountOverlay(tt.lowers, tt.upper, tt.work, target)
			if err == nil {
				unmount(target)
				t.Fatal("mountOverlay succeeded")
			}
			t.Logf("error: %v", err)
			if tt.wantArgument && !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v, want invalid argument", err)
			}
			if mountedAt(t, target) {
				unmount(target)
				t.Errorf("a failed mountOverlay left a mount at %s", target)
			}
		})
	}
}

func TestUnmountToleratesWhatIsNotMounted(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Join(dir, "missing")} {
		if err := unmount(p); err != nil {
			t.Errorf("unmount %s: %v", p, err)
		}
	}
}

func TestUnmountDetachesABusyMount(t *testing.T) {
	root := t.TempDir()
	l1 := mustUnpack(t, root, "l1", tDir("d/", 0o755))
	l2 := mustUnpack(t, root, "l2", tFile("d/f", 0o644, "f"))
	target := filepath.Join(root, "rootfs")
	mustMkdirs(t, target)
	if err := mountOverlay([]string{l2, l1}, "", "", target); err != nil {
		t.Fatal(err)
	}
	// An open directory inside makes a plain umount(2) fail with EBUSY.
	busy, err := os.Open(filepath.Join(target, "d"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	mustUnmountCleanly(t, target)
}

func TestOverlayProbeFindsLowerdirAddOnLinux68AndLater(t *testing.T) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Fatal(err)
	}
	want := major > 6 || major == 6 && minor >= 8
	if got := overlayLowerdirAdd(); got != want {
		t.Errorf("overlayLowerdirAdd() = %v on Linux %d.%d, want %v", got, major, minor, want)
	}
}
