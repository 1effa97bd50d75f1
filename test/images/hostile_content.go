package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Images that are hostile by their size or by what a container may do with
// them rather than by where they unpack: each is busybox plus one gzip
// layer.

// BombFile is the one file of a GzipBomb's top layer.
const BombFile = "/bomb"

// GzipBomb is busybox plus a layer whose one file, BombFile, is size zero
// bytes: a blob of about size/1000 bytes that unpacks to size. The layer
// is built as a stream, so a bomb of gigabytes costs no memory.
func GzipBomb(size int64) v1.Image {
	return memo(fmt.Sprintf("gzip-bomb/%d", size), func() (v1.Image, error) {
		var blob bytes.Buffer
		zw, err := gzip.NewWriterLevel(&blob, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		diff := sha256.New()
		tw := tar.NewWriter(io.MultiWriter(zw, diff))
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: BombFile[1:], Mode: 0o644, Size: size, ModTime: Epoch()}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		zeros := make([]byte, 1<<20)
		for left := size; left > 0; left -= int64(len(zeros)) {
			if _, err := tw.Write(zeros[:min(left, int64(len(zeros)))]); err != nil {
				return nil, err
			}
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		top := &blobLayer{blob: blob.Bytes(), digest: sha256Hash(blob.Bytes()),
			diffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diff.Sum(nil))}, comp: Gzip, mt: Gzip.mediaType(OCI)}
		return onBusybox(top, fmt.Sprintf("gzip bomb of %d bytes", size))
	})
}

// ManyFilesPath is the path of file i of a ManyFiles image: a thousand
// files to a directory.
func ManyFilesPath(i int) string { return fmt.Sprintf("/many/%03d/%05d", i/1000, i) }

// ManyFiles is busybox plus a layer of n one-byte files at ManyFilesPath(0
// ... n-1).
func ManyFiles(n int) v1.Image {
	return memo(fmt.Sprintf("many-files/%d", n), func() (v1.Image, error) {
		b := tarBuilder{ordered: true}
		b.dir("many", 0o755)
		for i := range n {
			if i%1000 == 0 {
				b.dir(ManyFilesPath(i)[1:len("/many/000")], 0o755)
			}
			b.file(ManyFilesPath(i)[1:], 0o644, []byte("x"))
		}
		return tarOnBusybox(&b, gzip.BestSpeed, fmt.Sprintf("%d files", n))
	})
}

// DeviceNodesDir holds a DeviceNodes image's nodes: "char" and "block".
const DeviceNodesDir = "/devices"

// DeviceNodes is busybox plus a layer holding a character device node
// DeviceNodesDir/char (charMajor:charMinor) and a block device node
// DeviceNodesDir/block (blockMajor:blockMinor), both 0666: what a layer
// would carry to reach the host's memory or disk from a container.
func DeviceNodes(charMajor, charMinor, blockMajor, blockMinor int64) v1.Image {
	return memo(fmt.Sprintf("devices/%d:%d/%d:%d", charMajor, charMinor, blockMajor, blockMinor), func() (v1.Image, error) {
		b := tarBuilder{ordered: true}
		b.dir(DeviceNodesDir[1:], 0o755)
		b.device(tar.TypeChar, DeviceNodesDir[1:]+"/char", charMajor, charMinor)
		b.device(tar.TypeBlock, DeviceNodesDir[1:]+"/block", blockMajor, blockMinor)
		return tarOnBusybox(&b, gzip.DefaultCompression, "device nodes")
	})
}

// tarOnBusybox assembles busybox with b's members as a gzip layer.
func tarOnBusybox(b *tarBuilder, level int, comment string) (v1.Image, error) {
	tb, err := b.bytes()
	if err != nil {
		return nil, err
	}
	top, err := newLayer(tb, Gzip, OCI, level)
	if err != nil {
		return nil, err
	}
	return onBusybox(top, comment)
}

// onBusybox assembles busybox with one more layer.
func onBusybox(top *blobLayer, comment string) (v1.Image, error) {
	base, err := busyboxLayer(Gzip)
	if err != nil {
		return nil, err
	}
	return assemble(OCI, baseConfig(), []*blobLayer{base, top}, []string{"busybox", comment})
}

// EscapingSymlinks is busybox plus a layer of two symlinks a container's
// mount destination may name: /hostroot -> "/" and /up ->
// "../../../../../../../..". Followed from the host they lead to the
// host's root; resolved in the container's root they are its root.
func EscapingSymlinks() v1.Image {
	return memo("escaping-symlinks", func() (v1.Image, error) {
		b := tarBuilder{ordered: true}
		b.symlink("hostroot", "/")
		b.symlink("up", "../../../../../../../..")
		return tarOnBusybox(&b, gzip.DefaultCompression, "escaping symlinks")
	})
}
