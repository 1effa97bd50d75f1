package images

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HostileKind names an attack a layer can make on an unpacker.
type HostileKind string

// Each Hostile image is busybox plus one top layer (gzip, tar members in the
// order given) that tries to write outside the layer's directory. A safe
// unpacker either rejects the layer (Berth: errdefs.ErrInvalidArgument or
// similar, the pull fails) or confines every member to the layer root; in no
// case may a file named by HostileMarker appear outside it, and no file in
// it may be the host's /etc/passwd.
const (
	// PathTraversal: regular files "../escape" and
	// "../../../../../../../../tmp/berth-hostile-path-traversal".
	PathTraversal HostileKind = "path-traversal"
	// AbsolutePath: regular file "/tmp/berth-hostile-absolute-path" (a
	// confining unpacker may place it at <root>/tmp/...).
	AbsolutePath HostileKind = "absolute-path"
	// SymlinkEscape: symlink "escape" -> "/", then regular file
	// "escape/tmp/berth-hostile-symlink-escape" written through it; and
	// symlink "up" -> "../../../../../../../..", then "up/tmp/berth-hostile-symlink-escape".
	SymlinkEscape HostileKind = "symlink-escape"
	// HardlinkEscape: hard link "passwd" -> "/etc/passwd" (the layer has no
	// /etc/passwd of its own, so the only file it can name is the host's).
	HardlinkEscape HostileKind = "hardlink-escape"
	// HardlinkTraversal: hard link "x" -> "../../x" pointing out of the layer.
	HardlinkTraversal HostileKind = "hardlink-traversal"
	// WhiteoutSymlink: symlink "escape" -> "/", then the whiteout
	// "escape/tmp/.wh.berth-hostile-whiteout-symlink" through it; and
	// symlink "up" -> "../../../../../../../..", then the same whiteout
	// through "up". An unpacker following either would make the whiteout
	// (an overlayfs 0:0 character device named after the marker) in the
	// host's /tmp.
	WhiteoutSymlink HostileKind = "whiteout-symlink"
)

// HostileKinds lists every kind, for table-driven tests.
func HostileKinds() []HostileKind {
	return []HostileKind{PathTraversal, AbsolutePath, SymlinkEscape, HardlinkEscape, HardlinkTraversal, WhiteoutSymlink}
}

// HostileMarker is the base name of the file the kind's layer tries to
// create outside the layer root (for PathTraversal also "escape").
func HostileMarker(kind HostileKind) string { return "berth-hostile-" + string(kind) }

// HostileContent is the content of every file a hostile layer writes.
const HostileContent = "berth hostile layer escaped\n"

// Hostile is busybox plus a top layer making the attack kind; see the
// HostileKind constants. It panics on an unknown kind.
func Hostile(kind HostileKind) v1.Image {
	return memo("hostile/"+string(kind), func() (v1.Image, error) {
		tb, err := hostileTar(kind)
		if err != nil {
			return nil, err
		}
		base, err := busyboxLayer(Gzip)
		if err != nil {
			return nil, err
		}
		top, err := newLayer(tb, Gzip, OCI, 6)
		if err != nil {
			return nil, err
		}
		return assemble(OCI, baseConfig(), []*blobLayer{base, top}, []string{"busybox", "hostile " + string(kind)})
	})
}

func hostileTar(kind HostileKind) ([]byte, error) {
	b := tarBuilder{ordered: true}
	data := []byte(HostileContent)
	marker := HostileMarker(kind)
	switch kind {
	case PathTraversal:
		b.file("../escape", 0o644, data)
		b.file("../../../../../../../../tmp/"+marker, 0o644, data)
	case AbsolutePath:
		b.file("/tmp/"+marker, 0o644, data)
	case SymlinkEscape:
		b.symlink("escape", "/")
		b.file("escape/tmp/"+marker, 0o644, data)
		b.symlink("up", "../../../../../../../..")
		b.file("up/tmp/"+marker, 0o644, data)
	case HardlinkEscape:
		b.hardlink("passwd", "/etc/passwd")
	case HardlinkTraversal:
		b.hardlink("x", "../../x")
	case WhiteoutSymlink:
		b.symlink("escape", "/")
		b.file("escape/tmp/.wh."+marker, 0o644, nil)
		b.symlink("up", "../../../../../../../..")
		b.file("up/tmp/.wh."+marker, 0o644, nil)
	default:
		return nil, fmt.Errorf("unknown hostile kind %q", kind)
	}
	return b.bytes()
}
