package image

// The free-space reserve.
//
// A pull writes two things to the store's filesystem: the compressed blob
// (the ingest file) and the layer it unpacks to, which a gzip bomb makes a
// thousand times larger. Both go through one spaceGuard per store. Every
// write is accounted before it is made (a file's bytes as they are copied,
// 4 KiB for each other entry: an inode and a directory block), and once
// spaceCheckEvery bytes have been accounted since the last look, statfs(2)
// tells the filesystem's free space. A write that would leave less than the
// reserve free fails with an error wrapping errdefs.ErrResourceExhausted; the
// pull then removes its partial layer directory and ingest file and reports
// the image. Between two looks each writer may write up to spaceCheckEvery
// bytes, so the reserve is undershot by at most that much per layer being
// unpacked at once (a few MiB), never by the size of the layer.
//
// A write that the filesystem itself refuses (ENOSPC, EDQUOT: the reserve is
// 0, or something other than the pull filled the disk) is reported the same
// way by noSpace.

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// errStoreFull marks a pull stopped for want of space in the store. It is
// an ErrResourceExhausted, but not every one is (a registry's 429 is too):
// this one says the disk is the cause, so another endpoint will not help and
// the blob being unpacked is not to blame.
var errStoreFull = fmt.Errorf("not enough free space in the image store: %w", errdefs.ErrResourceExhausted)

// spaceCheckEvery is how many bytes may be accounted between two statfs
// calls.
const spaceCheckEvery = 1 << 20

// entryCost is what each non-file entry (directory, link, device node) is
// accounted: an inode and, for a directory, its first block.
const entryCost = 4 << 10

// spaceGuard keeps writes to a filesystem above its free-space reserve. A
// nil guard checks nothing.
type spaceGuard struct {
	path       string // any path on the filesystem
	minBytes   uint64
	minPercent uint64

	pending atomic.Int64 // bytes accounted since the last statfs
}

func newSpaceGuard(path string, minBytes, minPercent uint64) *spaceGuard {
	return &spaceGuard{path: path, minBytes: minBytes, minPercent: minPercent}
}

// take accounts n bytes about to be written and fails if the filesystem's
// free space would fall below the reserve.
func (g *spaceGuard) take(n int64) error {
	if g == nil {
		return nil
	}
	if g.pending.Add(n) < spaceCheckEvery {
		return nil
	}
	pending := g.pending.Swap(0)
	return g.check(pending)
}

// check fails if writing n more bytes would leave less than the reserve
// free.
func (g *spaceGuard) check(n int64) error {
	if g == nil {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(g.path, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", g.path, err)
	}
	bsize := uint64(st.Bsize)
	free := st.Bavail * bsize
	reserve := max(g.minBytes, st.Blocks*bsize/100*g.minPercent)
	if free < reserve+uint64(max(n, 0)) {
		return fmt.Errorf("%s has %d bytes free and writing on would go below the free-space reserve of %d bytes (registry.min_free_bytes, registry.min_free_percent): %w",
			g.path, free, reserve, errStoreFull)
	}
	return nil
}

// noSpace marks a write the filesystem refused for want of space or
// inodes (ENOSPC, EDQUOT) with errStoreFull, so that it reaches the caller
// as ResourceExhausted.
func noSpace(err error) error {
	if err != nil && !errors.Is(err, errStoreFull) && (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) {
		return fmt.Errorf("%w: %w", errStoreFull, err)
	}
	return err
}

// storeFull reports whether err is a write stopped for want of space.
func storeFull(err error) bool { return errors.Is(noSpace(err), errStoreFull) }

// guardedWriter is an io.Writer that takes from a spaceGuard before each
// write.
type guardedWriter struct {
	g *spaceGuard
	w interface{ Write([]byte) (int, error) }
}

func (w guardedWriter) Write(p []byte) (int, error) {
	if err := w.g.take(int64(len(p))); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}
