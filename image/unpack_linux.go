package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// unpacker writes one layer's entries below root. Every operation is done
// relative to a directory descriptor opened with RESOLVE_BENEATH, so that
// nothing a hostile tar does can reach outside root.
type unpacker struct {
	root   string
	rootfd int
	buf    []byte
	space  *spaceGuard // the free-space reserve; nil checks nothing

	// The last parent directory opened, reused while entries share it.
	cacheName string
	cacheFD   int

	dirs []dirTimes // directory times, set once the layer is written
}

type dirTimes struct {
	name         string
	atime, mtime time.Time
}

func newUnpacker(dir string) (*unpacker, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open layer dir: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	return &unpacker{root: dir, rootfd: fd, cacheFD: -1}, nil
}

func (u *unpacker) close() {
	u.dropCache()
	unix.Close(u.rootfd)
}

func (u *unpacker) dropCache() {
	if u.cacheFD >= 0 {
		unix.Close(u.cacheFD)
	}
	u.cacheName, u.cacheFD = "", -1
}

// openBeneath opens directory name (relative to root) without letting any
// symlink or ".." take the lookup outside root. The caller closes the fd
// unless it is u.rootfd.
func (u *unpacker) openBeneath(name string) (int, error) {
	if name == "." {
		return u.rootfd, nil
	}
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(u.rootfd, name, how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue // a concurrent rename raced a ".." lookup
		}
		return fd, err
	}
}

// parent returns a descriptor of directory name, creating missing
// directories (0755, root-owned) as tar archives that omit parent entries
// expect. The descriptor belongs to u; callers do not close it.
func (u *unpacker) parent(entry, name string) (int, error) {
	if name == "." {
		return u.rootfd, nil
	}
	if u.cacheFD >= 0 && u.cacheName == name {
		return u.cacheFD, nil
	}
	fd, err := u.mkdirAll(entry, name)
	if err != nil {
		return -1, err
	}
	u.dropCache()
	u.cacheName, u.cacheFD = name, fd
	return fd, nil
}

func (u *unpacker) mkdirAll(entry, name string) (int, error) {
	fd, err := u.openBeneath(name)
	if err == nil {
		return fd, nil
	}
	if err != unix.ENOENT {
		return -1, resolveError(entry, name, err)
	}
	pfd, err := u.mkdirAll(entry, path.Dir(name))
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(pfd, path.Base(name), 0o755)
	if pfd != u.rootfd {
		unix.Close(pfd)
	}
	if err != nil && err != unix.EEXIST {
		return -1, fmt.Errorf("layer entry %q: create parent %s: %w", entry, name, err)
	}
	fd, err = u.openBeneath(name)
	if err != nil {
		return -1, resolveError(entry, name, err)
	}
	return fd, nil
}

// resolveError classifies a failure to open a parent directory: a lookup
// the kernel refused because it would leave the layer, a symlink loop or a
// non-directory in the way are all the layer's fault.
func resolveError(entry, name string, err error) error {
	switch err {
	case unix.EXDEV:
		return invalidEntry(entry, "path %s resolves outside the layer", name)
	case unix.ENOTDIR, unix.ELOOP, unix.ENOENT:
		return invalidEntry(entry, "parent %s: %v", name, err)
	}
	return fmt.Errorf("layer entry %q: open parent %s: %w", entry, name, err)
}

// apply writes one tar entry.
func (u *unpacker) apply(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	name, ok := cleanEntryName(hdr.Name)
	if !ok {
		return invalidEntry(hdr.Name, "path escapes the layer")
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return invalidEntry(hdr.Name, "the layer root must be a directory")
		}
		if err := u.setMeta(u.rootfd, ".", -1, hdr); err != nil {
			return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
		u.dirs = append(u.dirs, dirTimes{name: ".", atime: hdr.AccessTime, mtime: hdr.ModTime})
		return nil
	}
	dir, base := path.Dir(name), path.Base(name)
	if err := u.space.take(entryCost); err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}

	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(hdr.Name, dir, base)
	}

	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeLink:
		return u.hardlink(hdr, name, dir, base)
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return invalidEntry(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
	}

	pfd, err := u.parent(hdr.Name, dir)
	if err != nil {
		return err
	}
	err = u.create(ctx, pfd, name, base, hdr, r)
	if errors.Is(err, unix.EEXIST) {
		var merged, whiteout bool
		if merged, whiteout, err = u.replace(pfd, base, hdr.Typeflag == tar.TypeDir); err == nil && !merged {
			err = u.create(ctx, pfd, name, base, hdr, r)
		}
		// A directory after its own whiteout in one layer replaces the
		// lower layers' directory rather than merging with it.
		if err == nil && whiteout && hdr.Typeflag == tar.TypeDir {
			err = setOpaque(pfd, base)
		}
	}
	if err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	return nil
}

// replace makes room for a new entry base in pfd. A directory replacing a
// directory merges into it (merged is true and the caller only updates its
// metadata); anything else removes what is there. whiteout reports that what
// was removed was a whiteout.
func (u *unpacker) replace(pfd int, base string, isDir bool) (merged, whiteout bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, false, fmt.Errorf("stat existing entry: %w", err)
	}
	if isDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return true, false, nil
	}
	if err := u.remove(pfd, base, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
		return false, false, err
	}
	return false, st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0, nil
}

// remove deletes base in pfd, a whole tree if it is a directory. Cached
// parents other than pfd may have lived below it, so the cache is dropped.
func (u *unpacker) remove(pfd int, base string, isDir bool) error {
	if pfd != u.cacheFD {
		u.dropCache()
	}
	if !isDir {
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return fmt.Errorf("remove existing entry: %w", err)
		}
		return nil
	}
	// RemoveAll never follows symlinks below the directory it removes.
	if err := os.RemoveAll(procFDPath(pfd, base)); err != nil {
		return fmt.Errorf("remove existing directory: %w", err)
	}
	return nil
}

// create makes entry base in pfd, or fails with EEXIST when something is
// there (the directory merge case included: the metadata is applied then).
func (u *unpacker) create(ctx context.Context, pfd int, name, base string, hdr *tar.Header, r io.Reader) error {
	perm := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
			return fmt.Errorf("mkdir: %w", err)
		} else if err == unix.EEXIST {
			var st unix.Stat_t
			if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("stat existing entry: %w", err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return unix.EEXIST
			}
		}
		if err := u.setMeta(pfd, base, -1, hdr); err != nil {
			return err
		}
		u.dirs = append(u.dirs, dirTimes{name: name, atime: hdr.AccessTime, mtime: hdr.ModTime})
		return nil

	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			if err == unix.EEXIST {
				return err
			}
			return fmt.Errorf("create file: %w", err)
		}
		err = u.writeFile(ctx, fd, r)
		if err == nil {
			err = u.setMeta(pfd, base, fd, hdr)
		}
		if cerr := unix.Close(fd); err == nil && cerr != nil {
			err = fmt.Errorf("close file: %w", cerr)
		}
		if err != nil {
			return err
		}

	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return fmt.Errorf("symlink has no target: %w", errdefs.ErrInvalidArgument)
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			if err == unix.EEXIST {
				return err
			}
			return fmt.Errorf("symlink: %w", err)
		}
		if err := u.setMeta(pfd, base, -1, hdr); err != nil {
			return err
		}

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := perm
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode, int(dev)); err != nil {
			if err == unix.EEXIST {
				return err
			}
			return fmt.Errorf("mknod: %w", err)
		}
		if err := u.setMeta(pfd, base, -1, hdr); err != nil {
			return err
		}
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

// writeFile copies a file's contents through the pooled buffer.
func (u *unpacker) writeFile(ctx context.Context, fd int, r io.Reader) error {
	for {
		n, rerr := r.Read(u.buf)
		if err := u.space.take(int64(n)); err != nil {
			return err
		}
		for p := u.buf[:n]; len(p) > 0; {
			w, err := unix.Write(fd, p)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("write file: %w", err)
			}
			p = p[w:]
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read layer tar: %w", rerr)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// setMeta applies ownership, mode and xattrs, in that order: chown clears
// setuid/setgid bits and security.capability. fd is the open file, or -1.
func (u *unpacker) setMeta(pfd int, base string, fd int, hdr *tar.Header) error {
	var err error
	if fd >= 0 {
		err = unix.Fchown(fd, hdr.Uid, hdr.Gid)
	} else {
		err = unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		perm := uint32(hdr.Mode) & 0o7777
		if fd >= 0 {
			err = unix.Fchmod(fd, perm)
		} else {
			// Not a symlink: this entry was just made by us, so the
			// following fchmodat does cannot leave pfd.
			err = unix.Fchmodat(pfd, base, perm, 0)
		}
		if err != nil {
			return fmt.Errorf("chmod %o: %w", perm, err)
		}
	}
	for key, value := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(attr, "trusted.overlay.") {
			continue
		}
		if fd >= 0 {
			err = unix.Fsetxattr(fd, attr, []byte(value), 0)
		} else {
			err = unix.Lsetxattr(procFDPath(pfd, base), attr, []byte(value), 0)
		}
		if err == unix.EOPNOTSUPP && attr != "security.capability" {
			continue
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: %w", attr, err)
		}
	}
	return nil
}

// hardlink links name to an earlier entry of the layer.
func (u *unpacker) hardlink(hdr *tar.Header, name, dir, base string) error {
	target, ok := cleanEntryName(hdr.Linkname)
	if !ok || target == "." {
		return invalidEntry(hdr.Name, "hardlink target %q escapes the layer", hdr.Linkname)
	}
	if target == name {
		return nil // a link to itself: already there
	}
	tfd, err := u.openBeneath(path.Dir(target))
	if err != nil {
		if err == unix.ENOENT {
			return invalidEntry(hdr.Name, "hardlink target %q is not in the layer", hdr.Linkname)
		}
		return resolveError(hdr.Name, hdr.Linkname, err)
	}
	if tfd != u.rootfd {
		defer unix.Close(tfd)
	}
	tbase := path.Base(target)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return invalidEntry(hdr.Name, "hardlink target %q is not in the layer", hdr.Linkname)
		}
		return fmt.Errorf("layer entry %q: stat hardlink target: %w", hdr.Name, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return invalidEntry(hdr.Name, "hardlink target %q is a directory", hdr.Linkname)
	}
	pfd, err := u.parent(hdr.Name, dir)
	if err != nil {
		return err
	}
	err = unix.Linkat(tfd, tbase, pfd, base, 0)
	if err == unix.EEXIST {
		if _, _, err = u.replace(pfd, base, false); err == nil {
			err = unix.Linkat(tfd, tbase, pfd, base, 0)
		}
	}
	if err != nil {
		return fmt.Errorf("layer entry %q: link to %q: %w", hdr.Name, hdr.Linkname, err)
	}
	return nil
}

// whiteout turns an OCI whiteout entry into its overlayfs form.
func (u *unpacker) whiteout(entry, dir, base string) error {
	if base == whiteoutOpaque {
		fd, err := u.parent(entry, dir)
		if err != nil {
			return err
		}
		if err := setOpaque(fd, "."); err != nil {
			return fmt.Errorf("layer entry %q: %w", entry, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil // AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
	}
	hidden := strings.TrimPrefix(base, whiteoutPrefix)
	if hidden == "" || hidden == "." || hidden == ".." {
		return invalidEntry(entry, "whiteout names no file")
	}
	pfd, err := u.parent(entry, dir)
	if err != nil {
		return err
	}
	err = unix.Mknodat(pfd, hidden, unix.S_IFCHR, 0)
	if err == unix.EEXIST {
		// A whiteout hides only what lower layers hold; what this layer
		// wrote under the name stays (OCI image spec). A non-directory
		// hides the lower ones already; a directory must turn opaque.
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, hidden, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("layer entry %q: stat whited-out entry: %w", entry, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := setOpaque(pfd, hidden); err != nil {
				return fmt.Errorf("layer entry %q: %w", entry, err)
			}
		}
		return nil
	}
	if err == nil {
		err = unix.Fchownat(pfd, hidden, 0, 0, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("layer entry %q: create whiteout: %w", entry, err)
	}
	return nil
}

// setOpaque marks directory base in pfd opaque: overlayfs shows none of the
// lower layers' entries below it. base "." is pfd itself.
func setOpaque(pfd int, base string) error {
	// pfd is an O_PATH descriptor, which fsetxattr refuses; the
	// /proc/self/fd link names the same directory.
	if err := unix.Lsetxattr(procFDPath(pfd, base), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("mark directory opaque: %w", err)
	}
	return nil
}

// finish sets the directories' times, now that nothing more is written
// into them.
func (u *unpacker) finish() error {
	for _, d := range u.dirs {
		dir, base := path.Dir(d.name), path.Base(d.name)
		pfd := u.cacheFD
		if dir != u.cacheName || pfd < 0 {
			fd, err := u.openBeneath(dir)
			if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.EXDEV || err == unix.ELOOP {
				continue // a later entry replaced a parent
			}
			if err != nil {
				return fmt.Errorf("layer entry %q: open directory: %w", d.name, err)
			}
			if fd != u.rootfd {
				u.dropCache()
				u.cacheName, u.cacheFD = dir, fd
			}
			pfd = fd
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // replaced by a later entry
		}
		if err := setTimes(pfd, base, d.atime, d.mtime); err != nil {
			return fmt.Errorf("layer entry %q: %w", d.name, err)
		}
	}
	return nil
}

// setTimes sets base's times without following a symlink. A missing atime
// (plain ustar) takes the mtime, as tar(1) does.
func setTimes(pfd int, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// procFDPath names base inside the directory open as fd, for the calls that
// have no *at form (lsetxattr). The kernel resolves the fd link to the
// directory itself, so the path cannot be redirected; base is looked up in
// it without following a final symlink by the l* calls.
func procFDPath(fd int, base string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if base != "" {
		p += "/" + base
	}
	return p
}

// syncDir makes everything written below dir durable with one syncfs(2) of
// its filesystem, instead of an fsync per file.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
