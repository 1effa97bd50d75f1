package images

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"os"
)

// File is an expected file in a flattened image.
type File struct {
	Path    string      // absolute path in the root filesystem
	Type    byte        // tar type flag: tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	Content string      // regular files
	Target  string      // symlinks
	Mode    os.FileMode // permission bits (with sticky/setuid), not for symlinks
	UID     int
	GID     int
}

// The layers of Layered, bottom to top:
//
//	0  busybox (see Busybox)
//	1  /data/a.txt "a from layer 1", /data/b.txt "b from layer 1",
//	   /data/gone/x.txt, /data/owned.txt (0640 berth:builders),
//	   /data/link -> a.txt, /opt/app/old.txt, /opt/app/sub/deep.txt,
//	   /etc/layered-release "1"
//	2  /data/a.txt rewritten "a from layer 2"; whiteouts /data/.wh.b.txt
//	   (file), /data/.wh.gone (directory), /bin/.wh.vi (a busybox hard link);
//	   /opt/app/.wh..wh..opq with /opt/app/new.txt (directory replaced)
//	3  /data/b.txt recreated "b from layer 3"; /data/gone/ recreated holding
//	   only y.txt; /etc/layered-release "3"
//
// LayeredFiles is the resulting view under /data, /opt and
// /etc/layered-release; LayeredAbsent are paths that must not exist.
func Layered(opts ...Option) v1.Image {
	v := variantOf(opts)
	return memo("layered/"+v.String(), func() (v1.Image, error) {
		layers := []*blobLayer{}
		base, err := busyboxLayer(v.comp)
		if err != nil {
			return nil, err
		}
		layers = append(layers, base)
		for i, fn := range []func() ([]byte, error){layered1, layered2, layered3} {
			l, err := layerOf("layered-"+string(rune('1'+i)), v.comp, fn)
			if err != nil {
				return nil, err
			}
			layers = append(layers, l)
		}
		return assemble(v.format, baseConfig(), layers,
			[]string{"busybox", "layered: files", "layered: whiteouts and opaque dir", "layered: recreate"})
	})
}

func layered1() ([]byte, error) {
	var b tarBuilder
	b.dir("data", 0o755)
	b.file("data/a.txt", 0o644, []byte("a from layer 1\n"))
	b.file("data/b.txt", 0o644, []byte("b from layer 1\n"))
	b.dir("data/gone", 0o755)
	b.file("data/gone/x.txt", 0o644, []byte("x from layer 1\n"))
	b.add(tarReg, "data/owned.txt", 0o640, UserBerth, GroupBuilders, []byte("owned\n"), "")
	b.symlink("data/link", "a.txt")
	b.dir("opt", 0o755)
	b.dir("opt/app", 0o755)
	b.file("opt/app/old.txt", 0o644, []byte("old from layer 1\n"))
	b.dir("opt/app/sub", 0o755)
	b.file("opt/app/sub/deep.txt", 0o644, []byte("deep from layer 1\n"))
	b.dir("etc", 0o755)
	b.file("etc/layered-release", 0o644, []byte("1\n"))
	return b.bytes()
}

func layered2() ([]byte, error) {
	var b tarBuilder
	b.dir("data", 0o755)
	b.file("data/a.txt", 0o644, []byte("a from layer 2\n"))
	b.file("data/.wh.b.txt", 0o644, nil)
	b.file("data/.wh.gone", 0o644, nil)
	b.dir("bin", 0o755)
	b.file("bin/.wh.vi", 0o644, nil)
	b.dir("opt", 0o755)
	b.dir("opt/app", 0o750)
	b.file("opt/app/.wh..wh..opq", 0o644, nil)
	b.file("opt/app/new.txt", 0o600, []byte("new from layer 2\n"))
	return b.bytes()
}

func layered3() ([]byte, error) {
	var b tarBuilder
	b.dir("data", 0o755)
	b.file("data/b.txt", 0o644, []byte("b from layer 3\n"))
	b.dir("data/gone", 0o700)
	b.file("data/gone/y.txt", 0o644, []byte("y from layer 3\n"))
	b.dir("etc", 0o755)
	b.file("etc/layered-release", 0o644, []byte("3\n"))
	return b.bytes()
}

// LayeredFiles is every entry of the flattened Layered image under /data
// and /opt, plus /etc/layered-release, sorted by path.
func LayeredFiles() []File {
	return []File{
		{Path: "/data", Type: tarDir, Mode: 0o755},
		{Path: "/data/a.txt", Type: tarReg, Content: "a from layer 2\n", Mode: 0o644},
		{Path: "/data/b.txt", Type: tarReg, Content: "b from layer 3\n", Mode: 0o644},
		{Path: "/data/gone", Type: tarDir, Mode: 0o700},
		{Path: "/data/gone/y.txt", Type: tarReg, Content: "y from layer 3\n", Mode: 0o644},
		{Path: "/data/link", Type: tarSymlink, Target: "a.txt"},
		{Path: "/data/owned.txt", Type: tarReg, Content: "owned\n", Mode: 0o640, UID: UserBerth, GID: GroupBuilders},
		{Path: "/etc/layered-release", Type: tarReg, Content: "3\n", Mode: 0o644},
		{Path: "/opt", Type: tarDir, Mode: 0o755},
		{Path: "/opt/app", Type: tarDir, Mode: 0o750},
		{Path: "/opt/app/new.txt", Type: tarReg, Content: "new from layer 2\n", Mode: 0o600},
	}
}

// LayeredAbsent are paths that lower layers of Layered create and upper
// layers delete: none may exist in a correctly flattened root filesystem.
func LayeredAbsent() []string {
	return []string{
		"/bin/vi",
		"/data/gone/x.txt",
		"/opt/app/old.txt",
		"/opt/app/sub",
		"/opt/app/sub/deep.txt",
	}
}
