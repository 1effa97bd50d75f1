package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	hdr  tar.Header
	body string
}

var (
	testMtime = time.Unix(1600000000, 123456789)
	testAtime = time.Unix(1500000000, 987654321)
)

func tFile(name string, mode int64, body string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
}

func tDir(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func tSymlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func tHardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

// with returns e with changes applied to its header.
func (e tarEntry) with(f func(h *tar.Header)) tarEntry {
	f(&e.hdr)
	return e
}

// layerTar builds an uncompressed PAX layer. Entries with no times get
// testMtime/testAtime.
func layerTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Format = tar.FormatPAX
		if h.ModTime.IsZero() {
			h.ModTime = testMtime
		}
		if h.AccessTime.IsZero() {
			h.AccessTime = testAtime
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("write body %s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustLstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: want it absent, lstat says %v", p, err)
	}
}

func checkTimes(t *testing.T, p string, st unix.Stat_t, atime, mtime time.Time) {
	t.Helper()
	if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
		t.Errorf("%s: mtime %v, want %v", p, got, mtime)
	}
	if got := time.Unix(st.Atim.Unix()); !got.Equal(atime) {
		t.Errorf("%s: atime %v, want %v", p, got, atime)
	}
}

func checkOwnerMode(t *testing.T, p string, st unix.Stat_t, typ uint32, perm uint32, uid, gid uint32) {
	t.Helper()
	if st.Mode&unix.S_IFMT != typ {
		t.Errorf("%s: type %o, want %o", p, st.Mode&unix.S_IFMT, typ)
	}
	if typ != unix.S_IFLNK && st.Mode&0o7777 != perm {
		t.Errorf("%s: mode %o, want %o", p, st.Mode&0o7777, perm)
	}
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func getxattr(t *testing.T, p, attr string) (string, error) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, attr, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// capNetBindService is a version 2 security.capability value granting
// CAP_NET_BIND_SERVICE (bit 10) permitted.
func capNetBindService() string {
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], 0x02000000)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	return string(b[:])
}

func unpackForTest(t *testing.T, layer []byte) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err := unpackLayer(context.Background(), bytes.NewReader(layer), dir, nil)
	return dir, err
}

func TestUnpackLayer(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		check   func(t *testing.T, dir string)
	}{
		{
			name: "a regular file keeps its content, mode, owner and times",
			entries: []tarEntry{
				tDir("etc/", 0o755),
				tFile("etc/hosts", 0o640, "127.0.0.1 localhost\n").with(func(h *tar.Header) { h.Uid, h.Gid = 1000, 2000 }),
			},
			check: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "etc/hosts")
				st := mustLstat(t, p)
				checkOwnerMode(t, p, st, unix.S_IFREG, 0o640, 1000, 2000)
				checkTimes(t, p, st, testAtime, testMtime)
				if got := mustRead(t, p); got != "127.0.0.1 localhost\n" {
					t.Errorf("content %q", got)
				}
			},
		},
		{
			name: "setuid, setgid and sticky bits survive chown",
			entries: []tarEntry{
				tFile("bin/su", 0o4755, "su").with(func(h *tar.Header) { h.Uid, h.Gid = 0, 0 }),
				tFile("bin/wall", 0o2755, "wall").with(func(h *tar.Header) { h.Uid, h.Gid = 0, 5 }),
				tDir("tmp/", 0o1777),
				tFile("bin/suid-user", 0o4750, "x").with(func(h *tar.Header) { h.Uid, h.Gid = 1000, 1000 }),
			},
			check: func(t *testing.T, dir string) {
				for _, c := range []struct {
					p        string
					typ      uint32
					perm     uint32
					uid, gid uint32
				}{
					{"bin/su", unix.S_IFREG, 0o4755, 0, 0},
					{"bin/wall", unix.S_IFREG, 0o2755, 0, 5},
					{"tmp", unix.S_IFDIR, 0o1777, 0, 0},
					{"bin/suid-user", unix.S_IFREG, 0o4750, 1000, 1000},
				} {
					p := filepath.Join(dir, c.p)
					checkOwnerMode(t, p, mustLstat(t, p), c.typ, c.perm, c.uid, c.gid)
				}
			},
		},
		{
			name: "directory times are those of the header even after entries were written into it",
			entries: []tarEntry{
				tDir("usr/", 0o755).with(func(h *tar.Header) { h.Uid, h.Gid = 3, 4 }),
				tDir("usr/lib/", 0o700),
				tFile("usr/lib/a", 0o644, "a"),
				tFile("usr/b", 0o644, "b"),
			},
			check: func(t *testing.T, dir string) {
				for _, p := range []string{"usr", "usr/lib"} {
					st := mustLstat(t, filepath.Join(dir, p))
					checkTimes(t, p, st, testAtime, testMtime)
				}
				checkOwnerMode(t, "usr", mustLstat(t, filepath.Join(dir, "usr")), unix.S_IFDIR, 0o755, 3, 4)
				checkOwnerMode(t, "usr/lib", mustLstat(t, filepath.Join(dir, "usr/lib")), unix.S_IFDIR, 0o700, 0, 0)
			},
		},
		{
			name: "a symlink gets its own owner and times and is not followed",
			entries: []tarEntry{
				tFile("target", 0o600, "t"),
				tSymlink("link", "target").with(func(h *tar.Header) {
					h.Uid, h.Gid = 7, 8
					h.ModTime = time.Unix(1200000000, 5)
					h.AccessTime = time.Unix(1100000000, 6)
				}),
				tSymlink("abs", "/etc/passwd"),
				tSymlink("dangling", "../../nowhere"),
			},
			check: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "link")
				st := mustLstat(t, p)
				checkOwnerMode(t, p, st, unix.S_IFLNK, 0, 7, 8)
				checkTimes(t, p, st, time.Unix(1100000000, 6), time.Unix(1200000000, 5))
				tst := mustLstat(t, filepath.Join(dir, "target"))
				checkOwnerMode(t, "target", tst, unix.S_IFREG, 0o600, 0, 0)
				checkTimes(t, "target", tst, testAtime, testMtime)
				for name, want := range map[string]string{"link": "target", "abs": "/etc/passwd", "dangling": "../../nowhere"} {
					if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != want {
						t.Errorf("readlink %s = %q, %v; want %q", name, got, err, want)
					}
				}
			},
		},
		{
			name: "a hardlink shares the inode of an earlier entry, by relative or absolute name",
			entries: []tarEntry{
				tFile("bin/busybox", 0o755, "busybox"),
				tHardlink("bin/sh", "bin/busybox"),
				tHardlink("sbin/init", "/bin/busybox"),
			},
			check: func(t *testing.T, dir string) {
				orig := mustLstat(t, filepath.Join(dir, "bin/busybox"))
				for _, p := range []string{"bin/sh", "sbin/init"} {
					st := mustLstat(t, filepath.Join(dir, p))
					if st.Ino != orig.Ino {
						t.Errorf("%s: inode %d, want %d", p, st.Ino, orig.Ino)
					}
				}
				if orig.Nlink != 3 {
					t.Errorf("nlink %d, want 3", orig.Nlink)
				}
			},
		},
		{
			name: "char and block devices and fifos are created with their numbers and modes",
			entries: []tarEntry{
				{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
				{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop7", Mode: 0o660, Devmajor: 7, Devminor: 7, Gid: 6}},
				{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o620, Uid: 9}},
			},
			check: func(t *testing.T, dir string) {
				st := mustLstat(t, filepath.Join(dir, "dev/null"))
				checkOwnerMode(t, "dev/null", st, unix.S_IFCHR, 0o666, 0, 0)
				if unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
					t.Errorf("dev/null: rdev %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
				}
				checkTimes(t, "dev/null", st, testAtime, testMtime)
				st = mustLstat(t, filepath.Join(dir, "dev/loop7"))
				checkOwnerMode(t, "dev/loop7", st, unix.S_IFBLK, 0o660, 0, 6)
				if unix.Major(st.Rdev) != 7 || unix.Minor(st.Rdev) != 7 {
					t.Errorf("dev/loop7: rdev %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
				}
				checkOwnerMode(t, "run/fifo", mustLstat(t, filepath.Join(dir, "run/fifo")), unix.S_IFIFO, 0o620, 9, 0)
			},
		},
		{
			name: "PAX xattrs are set, security.capability surviving the chown",
			entries: []tarEntry{
				tFile("bin/ping", 0o755, "ping").with(func(h *tar.Header) {
					h.Uid = 1000
					h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": capNetBindService(), "SCHILY.xattr.user.origin": "debian"}
				}),
				tDir("data/", 0o755).with(func(h *tar.Header) {
					h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.berth": "dir"}
				}),
				tSymlink("data/link", "x").with(func(h *tar.Header) {
					h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.berth": "symlink"}
				}),
			},
			check: func(t *testing.T, dir string) {
				for _, c := range []struct{ p, attr, want string }{
					{"bin/ping", "security.capability", capNetBindService()},
					{"bin/ping", "user.origin", "debian"},
					{"data", "trusted.berth", "dir"},
					{"data/link", "trusted.berth", "symlink"},
				} {
					got, err := getxattr(t, filepath.Join(dir, c.p), c.attr)
					if err != nil || got != c.want {
						t.Errorf("%s %s = %q, %v; want %q", c.p, c.attr, got, err, c.want)
					}
				}
				checkOwnerMode(t, "bin/ping", mustLstat(t, filepath.Join(dir, "bin/ping")), unix.S_IFREG, 0o755, 1000, 0)
			},
		},
		{
			name: "trusted.overlay xattrs smuggled in the tar are dropped",
			entries: []tarEntry{
				tDir("d/", 0o755).with(func(h *tar.Header) {
					h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.trusted.overlay.opaque": "y"}
				}),
			},
			check: func(t *testing.T, dir string) {
				for _, attr := range []string{"trusted.overlay.redirect", "trusted.overlay.opaque"} {
					if v, err := getxattr(t, filepath.Join(dir, "d"), attr); err != unix.ENODATA {
						t.Errorf("%s = %q, %v; want ENODATA", attr, v, err)
					}
				}
			},
		},
		{
			name: "a whiteout becomes a 0:0 character device and no .wh. file",
			entries: []tarEntry{
				tDir("etc/", 0o755),
				tFile("etc/.wh.motd", 0o644, "").with(func(h *tar.Header) { h.Uid, h.Gid = 5, 5 }),
				tFile(".wh.toplevel", 0o600, ""),
			},
			check: func(t *testing.T, dir string) {
				for _, p := range []string{"etc/motd", "toplevel"} {
					st := mustLstat(t, filepath.Join(dir, p))
					checkOwnerMode(t, p, st, unix.S_IFCHR, 0, 0, 0)
					if st.Rdev != 0 {
						t.Errorf("%s: rdev %d, want 0", p, st.Rdev)
					}
				}
				mustNotExist(t, filepath.Join(dir, "etc/.wh.motd"))
				mustNotExist(t, filepath.Join(dir, ".wh.toplevel"))
			},
		},
		{
			name: "an opaque marker sets trusted.overlay.opaque on its directory and is not created",
			entries: []tarEntry{
				tDir("var/", 0o755),
				tDir("var/cache/", 0o755),
				tFile("var/cache/.wh..wh..opq", 0o644, ""),
				tFile("var/cache/new", 0o644, "new"),
				tFile("var/.wh..wh.plnk", 0o644, ""),
			},
			check: func(t *testing.T, dir string) {
				if v, err := getxattr(t, filepath.Join(dir, "var/cache"), "trusted.overlay.opaque"); err != nil || v != "y" {
					t.Errorf("opaque xattr = %q, %v", v, err)
				}
				if v, err := getxattr(t, filepath.Join(dir, "var"), "trusted.overlay.opaque"); err != unix.ENODATA {
					t.Errorf("var is opaque too: %q, %v", v, err)
				}
				mustNotExist(t, filepath.Join(dir, "var/cache/.wh..wh..opq"))
				mustNotExist(t, filepath.Join(dir, "var/.wh..wh.plnk"))
				if got := mustRead(t, filepath.Join(dir, "var/cache/new")); got != "new" {
					t.Errorf("var/cache/new = %q", got)
				}
			},
		},
		{
			name: "missing parent directories are created root-owned 0755",
			entries: []tarEntry{
				tFile("a/b/c/file", 0o644, "deep"),
			},
			check: func(t *testing.T, dir string) {
				for _, p := range []string{"a", "a/b", "a/b/c"} {
					checkOwnerMode(t, p, mustLstat(t, filepath.Join(dir, p)), unix.S_IFDIR, 0o755, 0, 0)
				}
				if got := mustRead(t, filepath.Join(dir, "a/b/c/file")); got != "deep" {
					t.Errorf("content %q", got)
				}
			},
		},
		{
			name: "a later entry replaces an earlier one of the same path, in tar order",
			entries: []tarEntry{
				tFile("f2link", 0o644, "file"),
				tSymlink("f2link", "elsewhere"),
				tDir("dir2file/", 0o755),
				tFile("dir2file/child", 0o644, "child"),
				tFile("dir2file", 0o600, "now a file"),
				tSymlink("link2dir", "/"),
				tDir("link2dir/", 0o711),
				tFile("link2dir/inside", 0o644, "inside"),
				tFile("twice", 0o644, "first"),
				tFile("twice", 0o600, "second"),
				tFile(".wh.back", 0o644, ""),
				tFile("back", 0o640, "back"),
			},
			check: func(t *testing.T, dir string) {
				if got, err := os.Readlink(filepath.Join(dir, "f2link")); err != nil || got != "elsewhere" {
					t.Errorf("f2link = %q, %v", got, err)
				}
				checkOwnerMode(t, "dir2file", mustLstat(t, filepath.Join(dir, "dir2file")), unix.S_IFREG, 0o600, 0, 0)
				checkOwnerMode(t, "link2dir", mustLstat(t, filepath.Join(dir, "link2dir")), unix.S_IFDIR, 0o711, 0, 0)
				if got := mustRead(t, filepath.Join(dir, "link2dir/inside")); got != "inside" {
					t.Errorf("link2dir/inside = %q", got)
				}
				if got := mustRead(t, filepath.Join(dir, "twice")); got != "second" {
					t.Errorf("twice = %q", got)
				}
				checkOwnerMode(t, "back", mustLstat(t, filepath.Join(dir, "back")), unix.S_IFREG, 0o640, 0, 0)
			},
		},
		{
			name: "a whiteout hides only lower layers: what the same layer wrote under the name stays",
			entries: []tarEntry{
				tFile("kept", 0o644, "kept"),
				tFile(".wh.kept", 0o644, ""),
				tDir("d/", 0o755),
				tFile("d/child", 0o644, "child"),
				tFile(".wh.d", 0o644, ""),
				tFile(".wh.e", 0o644, ""),
				tDir("e/", 0o750),
				tFile("e/new", 0o644, "new"),
			},
			check: func(t *testing.T, dir string) {
				if got := mustRead(t, filepath.Join(dir, "kept")); got != "kept" {
					t.Errorf("kept = %q", got)
				}
				for _, p := range []string{"d", "e"} {
					if v, err := getxattr(t, filepath.Join(dir, p), "trusted.overlay.opaque"); err != nil || v != "y" {
						t.Errorf("%s: opaque xattr = %q, %v; want y so lower layers stay hidden", p, v, err)
					}
				}
				checkOwnerMode(t, "e", mustLstat(t, filepath.Join(dir, "e")), unix.S_IFDIR, 0o750, 0, 0)
				if got := mustRead(t, filepath.Join(dir, "d/child")); got != "child" {
					t.Errorf("d/child = %q", got)
				}
				if got := mustRead(t, filepath.Join(dir, "e/new")); got != "new" {
					t.Errorf("e/new = %q", got)
				}
			},
		},
		{
			name: "a directory entry over an existing directory keeps its contents and takes the new metadata",
			entries: []tarEntry{
				tDir("d/", 0o755),
				tFile("d/keep", 0o644, "keep"),
				tDir("d/", 0o700).with(func(h *tar.Header) { h.Uid = 42 }),
			},
			check: func(t *testing.T, dir string) {
				checkOwnerMode(t, "d", mustLstat(t, filepath.Join(dir, "d")), unix.S_IFDIR, 0o700, 42, 0)
				if got := mustRead(t, filepath.Join(dir, "d/keep")); got != "keep" {
					t.Errorf("d/keep = %q", got)
				}
			},
		},
		{
			name: "absolute and dotted names stay inside the layer",
			entries: []tarEntry{
				tFile("/etc/x", 0o644, "abs"),
				tFile("./etc/y", 0o644, "dot"),
				tFile("etc/sub/../z", 0o644, "clean"),
				tDir("./", 0o751),
			},
			check: func(t *testing.T, dir string) {
				for p, want := range map[string]string{"etc/x": "abs", "etc/y": "dot", "etc/z": "clean"} {
					if got := mustRead(t, filepath.Join(dir, p)); got != want {
						t.Errorf("%s = %q, want %q", p, got, want)
					}
				}
				st := mustLstat(t, dir)
				checkOwnerMode(t, "root", st, unix.S_IFDIR, 0o751, 0, 0)
				checkTimes(t, "root", st, testAtime, testMtime)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := unpackForTest(t, layerTar(t, tt.entries...))
			if err != nil {
				t.Fatalf("unpackLayer: %v", err)
			}
			tt.check(t, dir)
		})
	}
}

func TestUnpackLayerReturnsDiffIDAndSizeOfTheWholeStream(t *testing.T) {
	layer := layerTar(t, tFile("a", 0o644, strings.Repeat("x", 3<<20)), tFile("b", 0o644, "b"))
	layer = append(layer, make([]byte, 10240)...) // padding after the end marker, as tar(1) writes
	dir := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	diffID, size, err := unpackLayer(context.Background(), bytes.NewReader(layer), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(layer))); diffID != want {
		t.Errorf("diffID %s, want %s", diffID, want)
	}
	if size != int64(len(layer)) {
		t.Errorf("size %d, want %d", size, len(layer))
	}
	if fi, err := os.Stat(filepath.Join(dir, "a")); err != nil || fi.Size() != 3<<20 {
		t.Errorf("a: %v, %v", fi, err)
	}
}

func TestUnpackLayerRejectsHostileEntries(t *testing.T) {
	const evil = "berth-unpack-test-evil"
	tests := []struct {
		name    string
		entries func(sentinel string) []tarEntry
		entry   string // named in the error
	}{
		{
			name:    "a name climbing out with ..",
			entries: func(string) []tarEntry { return []tarEntry{tFile("../"+evil, 0o644, "x")} },
			entry:   "../" + evil,
		},
		{
			name:    "a name climbing out after cleaning",
			entries: func(string) []tarEntry { return []tarEntry{tFile("a/../../"+evil, 0o644, "x")} },
			entry:   "a/../../" + evil,
		},
		{
			name: "a file written through a symlink to /",
			entries: func(string) []tarEntry {
				return []tarEntry{tSymlink("link", "/"), tFile("link/etc/"+evil, 0o644, "x")}
			},
			entry: "link/etc/" + evil,
		},
		{
			name: "a file written through an absolute symlink to the sentinel",
			entries: func(s string) []tarEntry {
				return []tarEntry{tSymlink("link", s), tFile("link/"+evil, 0o644, "x")}
			},
			entry: "link/" + evil,
		},
		{
			name: "a file written through a symlink to ../../..",
			entries: func(string) []tarEntry {
				return []tarEntry{tDir("a/", 0o755), tSymlink("a/up", "../../.."), tFile("a/up/"+evil, 0o644, "x")}
			},
			entry: "a/up/" + evil,
		},
		{
			name: "a file written through a chain of relative symlinks",
			entries: func(string) []tarEntry {
				return []tarEntry{tSymlink("a", "b"), tSymlink("b", ".."), tFile("a/"+evil, 0o644, "x")}
			},
			entry: "a/" + evil,
		},
		{
			name: "a directory created through a symlink to ..",
			entries: func(string) []tarEntry {
				return []tarEntry{tSymlink("up", ".."), tDir("up/"+evil+"/", 0o755)}
			},
			entry: "up/" + evil + "/",
		},
		{
			name: "a whiteout through a symlink to ..",
			entries: func(string) []tarEntry {
				return []tarEntry{tSymlink("up", ".."), tFile("up/.wh.secret", 0o644, "")}
			},
			entry: "up/.wh.secret",
		},
		{
			name: "an opaque marker through a symlink to ..",
			entries: func(string) []tarEntry {
				return []tarEntry{tSymlink("up", ".."), tFile("up/.wh..wh..opq", 0o644, "")}
			},
			entry: "up/.wh..wh..opq",
		},
		{
			name:    "a hardlink to ../../etc/passwd",
			entries: func(string) []tarEntry { return []tarEntry{tHardlink("passwd", "../../etc/passwd")} },
			entry:   "passwd",
		},
		{
			name: "a hardlink to an absolute host path",
			entries: func(s string) []tarEntry {
				return []tarEntry{tHardlink("stolen", filepath.Join(s, "secret"))}
			},
			entry: "stolen",
		},
		{
			name: "a hardlink through a symlink to ..",
			entries: func(string) []tarEntry {
				return []tarEntry{tSymlink("up", ".."), tHardlink("stolen", "up/secret")}
			},
			entry: "stolen",
		},
		{
			name: "a hardlink placed through a symlink to ..",
			entries: func(string) []tarEntry {
				return []tarEntry{tFile("f", 0o644, "f"), tSymlink("up", ".."), tHardlink("up/"+evil, "f")}
			},
			entry: "up/" + evil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sentinel := t.TempDir()
			secret := filepath.Join(sentinel, "secret")
			if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(sentinel, "layer")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			layer := layerTar(t, tt.entries(sentinel)...)
			_, _, err := unpackLayer(context.Background(), bytes.NewReader(layer), dir, nil)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("unpackLayer error %v, want invalid argument", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.entry)) {
				t.Errorf("error %q does not name entry %q", err, tt.entry)
			}
			names, err := os.ReadDir(sentinel)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range names {
				got = append(got, n.Name())
			}
			if !slices.Equal(got, []string{"layer", "secret"}) {
				t.Errorf("sentinel dir holds %v, want [layer secret]", got)
			}
			st := mustLstat(t, secret)
			if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || mustRead(t, secret) != "secret" {
				t.Errorf("secret changed: mode %o nlink %d", st.Mode, st.Nlink)
			}
			if v, err := getxattr(t, sentinel, "trusted.overlay.opaque"); err != unix.ENODATA {
				t.Errorf("sentinel got opaque xattr %q, %v", v, err)
			}
			mustNotExist(t, filepath.Join("/etc", evil))
			mustNotExist(t, filepath.Join("/", evil))
		})
	}
}

func TestUnpackLayerRejectsUnsupportedAndMalformedEntries(t *testing.T) {
	tests := []struct {
		name  string
		layer []byte
	}{
		{
			name:  "a whiteout with no name",
			layer: layerTar(t, tFile("dir/.wh.", 0o644, "")),
		},
		{
			name:  "a symlink with no target",
			layer: layerTar(t, tSymlink("l", "")),
		},
		{
			name:  "a hardlink to a directory",
			layer: layerTar(t, tDir("d/", 0o755), tHardlink("l", "d")),
		},
		{
			name:  "a hardlink to a missing entry",
			layer: layerTar(t, tHardlink("l", "missing")),
		},
		{
			name:  "a file below a regular file",
			layer: layerTar(t, tFile("f", 0o644, "f"), tFile("f/g", 0o644, "g")),
		},
		{
			name:  "a corrupt header",
			layer: bytes.Repeat([]byte{'z'}, 1024),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := unpackForTest(t, tt.layer); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("unpackLayer error %v, want invalid argument", err)
			}
		})
	}
}

func TestUnpackLayerStopsWhenContextIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, _, err := unpackLayer(ctx, bytes.NewReader(layerTar(t, tFile("a", 0o644, "a"))), dir, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	mustNotExist(t, filepath.Join(dir, "a"))
}

func TestSyncDirSyncsAnUnpackedLayer(t *testing.T) {
	dir, err := unpackForTest(t, layerTar(t, tFile("a", 0o644, "a")))
	if err != nil {
		t.Fatal(err)
	}
	if err := syncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := syncDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("syncDir of a missing dir succeeded")
	}
}

// BenchmarkUnpack unpacks a 50 MiB layer shaped like a distro image: many
// small files in a few hundred directories, and some large ones.
func BenchmarkUnpack(b *testing.B) {
	var entries []tarEntry
	small := strings.Repeat("s", 8<<10)
	for d := range 200 {
		entries = append(entries, tDir(fmt.Sprintf("usr/share/d%03d/", d), 0o755))
		for f := range 20 {
			entries = append(entries, tFile(fmt.Sprintf("usr/share/d%03d/f%02d", d, f), 0o644, small))
		}
		entries = append(entries, tSymlink(fmt.Sprintf("usr/share/d%03d/link", d), "f00"))
	}
	large := strings.Repeat("L", 4<<20)
	for i := range 5 {
		entries = append(entries, tFile(fmt.Sprintf("usr/lib/big%d", i), 0o755, large))
	}
	layer := layerTar(b, entries...)
	root := b.TempDir()
	b.SetBytes(int64(len(layer)))
	b.ResetTimer()
	for i := range b.N {
		dir := filepath.Join(root, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, _, err := unpackLayer(context.Background(), bytes.NewReader(layer), dir, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
