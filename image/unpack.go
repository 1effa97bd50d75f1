package image

// Layer unpacking.
//
//	func unpackLayer(ctx context.Context, r io.Reader, dir string, space *spaceGuard) (diffID digest.Digest, size int64, err error)
//
// unpackLayer reads one layer as an UNCOMPRESSED tar stream (the caller
// decompresses gzip/zstd while it downloads), hashes every byte it reads
// (including the padding after the end-of-archive marker) into the layer's
// diff ID, and writes the entries into dir, an existing empty directory that
// becomes one overlayfs lower dir. size is the number of uncompressed bytes.
//
// What lands in dir:
//   - Regular files, directories, symlinks, hardlinks (to earlier entries of
//     the same layer), char/block devices and FIFOs, with the header's mode
//     (setuid/setgid/sticky included), uid/gid, atime/mtime and PAX
//     SCHILY.xattr.* extended attributes. Directory times are set once the
//     whole layer is written, so that their own contents do not disturb them.
//     Xattrs the filesystem does not support (EOPNOTSUPP) are skipped, except
//     security.capability, whose loss would silently change what a binary may
//     do: that fails the unpack. trusted.overlay.* xattrs in the tar are
//     dropped: overlay semantics come only from OCI whiteouts, never from a
//     layer smuggling redirect/metacopy/opaque attributes.
//   - OCI whiteouts become overlayfs ones: ".wh.NAME" becomes a 0:0 character
//     device NAME (device 0); ".wh..wh..opq" sets trusted.overlay.opaque=y on
//     its directory. Other ".wh..wh." entries (AUFS bookkeeping) are skipped.
//   - An entry whose path already exists in dir replaces it (tar order), except
//     that a directory entry over an existing directory merges into it. A
//     whiteout hides only lower layers (OCI image spec): over an entry of the
//     same layer it leaves a non-directory alone and makes a directory opaque,
//     and a directory replacing a whiteout of the same layer is opaque.
//
// Hostile layers: names are normalized as containerd does (a leading "/" is
// relative to dir), but a name whose cleaned form climbs above dir ("../x",
// "a/../../x") is an error. Every parent directory is opened with openat2(2)
// and RESOLVE_BENEATH relative to dir, so a symlink written earlier in the
// layer cannot redirect a later entry outside dir (an absolute symlink or one
// that climbs out makes the kernel refuse with EXDEV), and the final component
// is always created or replaced without following it. Hardlink targets are
// resolved the same way and must be existing non-directory entries of this
// layer. Any such entry fails the whole layer with an error wrapping
// errdefs.ErrInvalidArgument that names the entry; nothing is written outside
// dir, and the caller removes dir. openat2 needs Linux 5.6.
//
// Speed: file contents are copied with a pooled 1 MiB buffer, the parent
// directory's descriptor is reused while consecutive entries share it (the
// usual tar order), and nothing is fsynced per entry: the caller makes the
// whole layer durable once with syncDir (syncfs(2)) before recording it.
//
// ctx is checked between entries and between buffers of a large file.
//
// Space: every entry and every buffer of file contents is taken from space
// (see space_linux.go) before it is written, so a layer that would fill the
// filesystem below the free-space reserve stops part-way with an error
// wrapping errdefs.ErrResourceExhausted; a nil space checks nothing.

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
)

// copyBufPool holds the buffers file contents are copied through.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// unpackLayer writes the uncompressed layer tar r into dir and returns the
// layer's diff ID and uncompressed size. See the file comment for what it
// writes and what it refuses. On error dir holds a partial layer that the
// caller removes.
func unpackLayer(ctx context.Context, r io.Reader, dir string, space *spaceGuard) (diffID digest.Digest, size int64, err error) {
	digester := digest.SHA256.Digester()
	counted := &countingWriter{w: digester.Hash()}
	br := bufio.NewReaderSize(io.TeeReader(r, counted), 128<<10)

	u, err := newUnpacker(dir)
	if err != nil {
		return "", 0, err
	}
	defer u.close()
	u.space = space

	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	u.buf = *bufp

	tr := tar.NewReader(br)
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			if errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrFieldTooLong) {
				err = fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
			}
			return "", 0, fmt.Errorf("read layer tar: %w", err)
		}
		if err := u.apply(ctx, hdr, tr); err != nil {
			return "", 0, err
		}
	}
	if err := u.finish(); err != nil {
		return "", 0, err
	}
	// The diff ID covers the whole stream, including the zero blocks and any
	// padding after the end-of-archive marker.
	if _, err := io.CopyBuffer(io.Discard, br, u.buf); err != nil {
		return "", 0, fmt.Errorf("read layer tar: %w", err)
	}
	return digester.Digest(), counted.n, nil
}

// cleanEntryName turns a tar entry name into a path relative to the layer
// root: leading slashes are dropped (absolute names are relative to the
// root), and a name that climbs above the root is refused. The root itself
// is ".".
func cleanEntryName(name string) (string, bool) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", false
	}
	n := path.Clean(strings.TrimLeft(name, "/"))
	if n == ".." || strings.HasPrefix(n, "../") {
		return "", false
	}
	return n, true
}

// invalidEntry is the error for a layer entry that is refused.
func invalidEntry(name, format string, args ...any) error {
	return fmt.Errorf("layer entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
