package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"
)

// epochUnix is 2024-01-01T00:00:00Z.
const epochUnix = 1704067200

// Epoch is the fixed time stamped on every tar entry, config and history
// entry, so that a rebuild produces the same bytes and the same digests.
func Epoch() time.Time { return time.Unix(epochUnix, 0).UTC() }

// entry is one tar member before it is serialized.
type entry struct {
	hdr  tar.Header
	data []byte
}

// tarBuilder collects tar members. Members are written either sorted by
// name (hard links last, so their targets precede them) or, for hostile
// layers whose attack depends on member order, in insertion order.
type tarBuilder struct {
	entries []entry
	ordered bool // keep insertion order instead of sorting
}

func (b *tarBuilder) add(typ byte, name string, mode int64, uid, gid int, data []byte, link string) {
	if typ == tar.TypeDir && !strings.HasSuffix(name, "/") {
		name += "/"
	}
	b.entries = append(b.entries, entry{
		hdr: tar.Header{
			Typeflag: typ,
			Name:     name,
			Linkname: link,
			Mode:     mode,
			Uid:      uid,
			Gid:      gid,
			Size:     int64(len(data)),
			ModTime:  Epoch(),
		},
		data: data,
	})
}

// dir adds a directory owned by root.
func (b *tarBuilder) dir(name string, mode int64) { b.add(tar.TypeDir, name, mode, 0, 0, nil, "") }

// file adds a regular file owned by root.
func (b *tarBuilder) file(name string, mode int64, data []byte) {
	b.add(tar.TypeReg, name, mode, 0, 0, data, "")
}

// symlink adds a symbolic link name -> target.
func (b *tarBuilder) symlink(name, target string) {
	b.add(tar.TypeSymlink, name, 0o777, 0, 0, nil, target)
}

// hardlink adds a hard link name to the member target.
func (b *tarBuilder) hardlink(name, target string) {
	b.add(tar.TypeLink, name, 0o644, 0, 0, nil, target)
}

// device adds a device node (tar.TypeChar or tar.TypeBlock), 0666.
func (b *tarBuilder) device(typ byte, name string, major, minor int64) {
	b.add(typ, name, 0o666, 0, 0, nil, "")
	b.entries[len(b.entries)-1].hdr.Devmajor = major
	b.entries[len(b.entries)-1].hdr.Devminor = minor
}

// bytes serializes the members. A fixed ModTime and no
// user/group names or access/change times keeps the output reproducible.
func (b *tarBuilder) bytes() ([]byte, error) {
	entries := append([]entry(nil), b.entries...)
	if !b.ordered {
		sort.SliceStable(entries, func(i, j int) bool {
			li, lj := entries[i].hdr.Typeflag == tar.TypeLink, entries[j].hdr.Typeflag == tar.TypeLink
			if li != lj {
				return lj
			}
			return entries[i].hdr.Name < entries[j].hdr.Name
		})
	}
	// A hard link's header carries its target's mode and owner, as GNU tar
	// writes it: containerd and Docker apply a link header's mode to the
	// linked inode, so a 0644 link would make /bin/busybox unexecutable.
	targets := map[string]*tar.Header{}
	for i := range entries {
		if h := &entries[i].hdr; h.Typeflag != tar.TypeLink {
			targets[h.Name] = h
		}
	}
	for i := range entries {
		h := &entries[i].hdr
		if t, ok := targets[h.Linkname]; ok && h.Typeflag == tar.TypeLink {
			h.Mode, h.Uid, h.Gid = t.Mode, t.Uid, t.Gid
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("write tar header %s: %w", hdr.Name, err)
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				return nil, fmt.Errorf("write tar member %s: %w", hdr.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

const (
	tarDir     = tar.TypeDir
	tarReg     = tar.TypeReg
	tarSymlink = tar.TypeSymlink
	tarLink    = tar.TypeLink
)
