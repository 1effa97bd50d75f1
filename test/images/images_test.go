package images

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// builders names every fixture with its default options, plus variants.
func builders() []struct {
	name  string
	build func() digester
} {
	return []struct {
		name  string
		build func() digester
	}{
		{"busybox", func() digester { return Busybox() }},
		{"busybox docker zstd", func() digester { return Busybox(WithFormat(Docker), WithCompression(Zstd)) }},
		{"busybox uncompressed", func() digester { return Busybox(WithCompression(Uncompressed)) }},
		{"layered", func() digester { return Layered() }},
		{"mixed", func() digester { return Mixed() }},
		{"mixed docker", func() digester { return Mixed(WithFormat(Docker)) }},
		{"configured", func() digester { return Configured() }},
		{"pause", func() digester { return Pause() }},
		{"index", func() digester { return Index() }},
		{"docker index", func() digester { return Index(WithFormat(Docker)) }},
		{"many layers", func() digester { return ManyLayers(70) }},
		{"hostile symlink", func() digester { return Hostile(SymlinkEscape) }},
		{"large", func() digester { return Large(3, 3<<20, 9) }},
		{"large sibling", func() digester { return LargeSibling(3, 3<<20, 9, 2) }},
	}
}

type digester interface{ Digest() (v1.Hash, error) }

// resetCaches forgets every built image and the busybox files read from
// the host, so the next call rebuilds from scratch.
func resetCaches() {
	cache.Clear()
	busyboxOnce = sync.Once{}
	busyboxHost, busyboxErr = nil, nil
}

func TestRebuildingFromScratchGivesIdenticalDigests(t *testing.T) {
	first := map[string]v1.Hash{}
	for _, b := range builders() {
		d, err := b.build().Digest()
		if err != nil {
			t.Fatalf("%s: digest: %v", b.name, err)
		}
		first[b.name] = d
	}
	resetCaches()
	for _, b := range builders() {
		d, err := b.build().Digest()
		if err != nil {
			t.Fatalf("%s: digest: %v", b.name, err)
		}
		if d != first[b.name] {
			t.Errorf("%s: digest %s after rebuild, was %s", b.name, d, first[b.name])
		}
	}
}

func TestEveryImageIsInternallyConsistent(t *testing.T) {
	for _, b := range builders() {
		t.Run(b.name, func(t *testing.T) {
			// validate reads every layer as gzip; other compressions get
			// the structural checks there and their blobs checked here.
			var err error
			switch v := b.build().(type) {
			case v1.Image:
				err = validate.Image(v, validate.Fast)
				checkLayerDigests(t, v)
			case v1.ImageIndex:
				err = validate.Index(v, validate.Fast)
				im, _ := v.IndexManifest()
				for _, d := range im.Manifests {
					img, err := v.Image(d.Digest)
					if err != nil {
						t.Fatal(err)
					}
					checkLayerDigests(t, img)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkLayerDigests hashes every layer's blob and tar stream and compares
// them with the manifest's digests and the config's diff ids.
func checkLayerDigests(t *testing.T, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(m.Layers) || len(layers) != len(cfg.RootFS.DiffIDs) {
		t.Fatalf("%d layers, %d in manifest, %d diff ids", len(layers), len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range layers {
		for _, c := range []struct {
			open func() (io.ReadCloser, error)
			want v1.Hash
		}{{l.Compressed, m.Layers[i].Digest}, {l.Uncompressed, cfg.RootFS.DiffIDs[i]}} {
			rc, err := c.open()
			if err != nil {
				t.Fatal(err)
			}
			h, n, err := v1.SHA256(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if h != c.want {
				t.Errorf("layer %d: content hashes to %s, want %s", i, h, c.want)
			}
			if c.want == m.Layers[i].Digest && n != m.Layers[i].Size {
				t.Errorf("layer %d: blob is %d bytes, manifest says %d", i, n, m.Layers[i].Size)
			}
		}
	}
}

// flatten reads the flattened root filesystem of img into a map by
// absolute path.
func flatten(t *testing.T, img v1.Image) map[string]File {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]File{}
	eachMember(t, rc, func(hdr *tar.Header, body io.Reader) {
		data, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		f := File{
			Path: "/" + strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "/"), "/"),
			Type: hdr.Typeflag, Mode: os.FileMode(hdr.Mode & 0o7777), UID: hdr.Uid, GID: hdr.Gid,
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			f.Content = string(data)
		case tar.TypeSymlink, tar.TypeLink:
			f.Target = hdr.Linkname
			f.Mode = 0
		}
		files[f.Path] = f
	})
	return files
}

// eachMember calls fn with every member of the tar stream r and its body,
// failing t when the stream does not read.
func eachMember(t *testing.T, r io.Reader, fn func(hdr *tar.Header, body io.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		fn(hdr, tr)
	}
}

func TestLayeredFlattensToTheDocumentedFiles(t *testing.T) {
	for _, opts := range [][]Option{nil, {WithFormat(Docker)}, {WithCompression(Zstd)}} {
		files := flatten(t, Layered(opts...))
		var got []File
		for p, f := range files {
			if strings.HasPrefix(p, "/data") || strings.HasPrefix(p, "/opt") || p == "/etc/layered-release" {
				got = append(got, f)
			}
		}
		sort.Slice(got, func(i, j int) bool { return got[i].Path < got[j].Path })
		if want := LayeredFiles(); !reflect.DeepEqual(got, want) {
			t.Errorf("variant %v: flattened files\n got %+v\nwant %+v", variantOf(opts), got, want)
		}
		for _, p := range LayeredAbsent() {
			if _, ok := files[p]; ok {
				t.Errorf("variant %v: %s exists, a whiteout should have removed it", variantOf(opts), p)
			}
		}
		if _, ok := files["/bin/ls"]; !ok {
			t.Errorf("variant %v: /bin/ls from the busybox layer is missing", variantOf(opts))
		}
	}
}

func TestHardLinksCarryTheirTargetsMode(t *testing.T) {
	layers, err := Busybox().Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	modes := map[string]int64{}
	links := 0
	eachMember(t, rc, func(hdr *tar.Header, _ io.Reader) {
		if hdr.Typeflag != tar.TypeLink {
			modes[hdr.Name] = hdr.Mode
			return
		}
		links++
		target, ok := modes[hdr.Linkname]
		if !ok {
			t.Errorf("hard link %s precedes its target %s", hdr.Name, hdr.Linkname)
		}
		if hdr.Mode != target || target&0o111 == 0 {
			t.Errorf("hard link %s has mode %o, target %s %o; unpackers apply the link's mode to the target", hdr.Name, hdr.Mode, hdr.Linkname, target)
		}
	})
	if links < 100 {
		t.Errorf("only %d hard links; want one per busybox applet", links)
	}
}

func TestBusyboxRootfsHasAppletsLibrariesUsersAndDirs(t *testing.T) {
	files := flatten(t, Busybox())
	for _, applet := range []string{"sh", "ls", "sleep", "cat", "echo", "id", "ps", "top", "nc", "ip", "hostname", "mount", "touch", "env", "kill", "wget"} {
		f, ok := files["/bin/"+applet]
		if !ok || f.Type != tar.TypeLink || f.Target != "bin/busybox" {
			t.Errorf("/bin/%s = %+v, want a hard link to bin/busybox", applet, f)
		}
	}
	if f := files["/bin/busybox"]; f.Type != tar.TypeReg || f.Mode&0o111 == 0 {
		t.Errorf("/bin/busybox = type %c mode %v, want an executable file", f.Type, f.Mode)
	}
	libs, err := sharedLibraries(BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		if _, ok := files[lib]; !ok {
			t.Errorf("shared library %s (from ldd) missing", lib)
		}
	}
	for p, mode := range map[string]os.FileMode{"/tmp": 0o1777, "/var/tmp": 0o1777, "/root": 0o700, "/proc": 0o755, "/sys": 0o755, "/dev": 0o755} {
		if f := files[p]; f.Type != tar.TypeDir || f.Mode != mode {
			t.Errorf("%s = type %c mode %o, want a directory with mode %o", p, f.Type, f.Mode, mode)
		}
	}
	if f := files["/home/berth"]; f.UID != UserBerth || f.GID != UserBerth {
		t.Errorf("/home/berth owned by %d:%d, want %d:%d", f.UID, f.GID, UserBerth, UserBerth)
	}
	if !strings.Contains(files["/etc/passwd"].Content, "berth:x:1000:1000:") {
		t.Errorf("/etc/passwd has no berth user:\n%s", files["/etc/passwd"].Content)
	}
}

// extract writes img's flattened root filesystem into dir (as root, with
// ownership), for running it with chroot.
func extract(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	eachMember(t, rc, func(hdr *tar.Header, body io.Reader) {
		var err error
		p := filepath.Join(dir, hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(body); err == nil {
				err = os.WriteFile(p, data, 0o600)
			}
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, p)
		case tar.TypeLink:
			err = os.Link(filepath.Join(dir, hdr.Linkname), p)
		}
		if err == nil && hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeLink {
			if err = os.Lchown(p, hdr.Uid, hdr.Gid); err == nil {
				err = os.Chmod(p, fileMode(hdr.Mode))
			}
		}
		if err != nil {
			t.Fatalf("extract %s: %v", hdr.Name, err)
		}
	})
}

func fileMode(m int64) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// chroot returns a command running argv inside root.
func chroot(root string, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{DefaultPath}
	return cmd
}

func TestBusyboxRunsAppletsAndResolvesUsersInChroot(t *testing.T) {
	root := t.TempDir()
	extract(t, Busybox(), root)
	out, err := chroot(root, "/bin/sh", "-c", "id berth; echo hi | cat; ls -d /tmp").CombinedOutput()
	if err != nil {
		t.Fatalf("run busybox in chroot: %v: %s", err, out)
	}
	want := "uid=1000(berth) gid=1000(berth) groups=1000(berth),2000(builders),2001(testers)\nhi\n/tmp\n"
	if string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestPauseExitsZeroOnSIGTERM(t *testing.T) {
	root := t.TempDir()
	img := Pause()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config.Entrypoint, PauseCommand()) {
		t.Fatalf("entrypoint %q, want %q", cfg.Config.Entrypoint, PauseCommand())
	}
	extract(t, img, root)
	cmd := chroot(root, PauseCommand()...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	// Signal only once the shell has installed its TERM trap.
	for !catches(t, cmd.Process.Pid, syscall.SIGTERM) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pause exited with %v after SIGTERM, want status 0", err)
	}
}

// catches reports whether process pid has a handler for sig (SigCgt).
func catches(t *testing.T, pid int, sig syscall.Signal) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

func TestConfiguredCarriesEveryRuntimeField(t *testing.T) {
	cfg, err := Configured().ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config, ConfiguredConfig()) {
		t.Errorf("config %+v, want %+v", cfg.Config, ConfiguredConfig())
	}
	root := t.TempDir()
	extract(t, Configured(), root)
	c := ConfiguredConfig()
	cmd := chroot(root, append(c.Entrypoint, c.Cmd...)...)
	cmd.Env, cmd.Dir = c.Env, c.WorkingDir
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: UserBerth, Gid: UserBerth}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run configured command: %v: %s", err, out)
	}
	if want := "configured hello from /srv/app as 1000:1000\n"; string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestIndexHasOneDistinctManifestPerPlatform(t *testing.T) {
	for _, f := range []Format{OCI, Docker} {
		idx := Index(WithFormat(f))
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.MediaType != f.indexType() {
			t.Errorf("%v: index media type %s", f, im.MediaType)
		}
		ps := IndexPlatforms()
		if len(im.Manifests) != len(ps) || len(ps) != 3 {
			t.Fatalf("%v: %d manifests for platforms %v", f, len(im.Manifests), ps)
		}
		seen := map[v1.Hash]bool{}
		for i, d := range im.Manifests {
			if d.Platform == nil || !d.Platform.Equals(ps[i]) {
				t.Errorf("%v: manifest %d platform %v, want %v", f, i, d.Platform, ps[i])
			}
			if d.MediaType != f.manifestType() {
				t.Errorf("%v: manifest %d media type %s", f, i, d.MediaType)
			}
			if seen[d.Digest] {
				t.Errorf("%v: manifest %s listed twice", f, d.Digest)
			}
			seen[d.Digest] = true
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Platform() == nil || !cfg.Platform().Equals(ps[i]) {
				t.Errorf("%v: manifest %d config platform %v, want %v", f, i, cfg.Platform(), ps[i])
			}
		}
		bb, _ := Busybox(WithFormat(f)).Digest()
		if im.Manifests[0].Digest != bb {
			t.Errorf("%v: host entry %s is not Busybox %s", f, im.Manifests[0].Digest, bb)
		}
	}
}

func TestManyLayersAddsOneFilePerLayer(t *testing.T) {
	const n = 80
	img := ManyLayers(n)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != n {
		t.Fatalf("%d layers, want %d", len(layers), n)
	}
	files := flatten(t, img)
	for i := 1; i < n; i++ {
		p := ManyLayersFile(i)
		if files[p].Content != p+"\n" {
			t.Errorf("%s = %q, want %q", p, files[p].Content, p+"\n")
		}
	}
}

func TestVariantsDifferOnlyInEncoding(t *testing.T) {
	base, err := Layered().ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{OCI, Docker} {
		for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
			img := Layered(WithFormat(f), WithCompression(c))
			mt, _ := img.MediaType()
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if mt != f.manifestType() || m.MediaType != mt || m.Config.MediaType != f.configType() {
				t.Errorf("%v/%v: manifest %s (%s), config %s", f, c, mt, m.MediaType, m.Config.MediaType)
			}
			layers, _ := img.Layers()
			for i, l := range layers {
				lmt, _ := l.MediaType()
				if lmt != c.mediaType(f) {
					t.Errorf("%v/%v: layer %d media type %s, want %s", f, c, i, lmt, c.mediaType(f))
				}
				d, _ := l.Digest()
				diffID, _ := l.DiffID()
				if diffID != base.RootFS.DiffIDs[i] {
					t.Errorf("%v/%v: layer %d diff id %s, want %s as in every variant", f, c, i, diffID, base.RootFS.DiffIDs[i])
				}
				if (c == Uncompressed) != (d == diffID) {
					t.Errorf("%v/%v: layer %d digest %s vs diff id %s", f, c, i, d, diffID)
				}
			}
		}
	}
	if types.OCILayerZStd != Zstd.mediaType(Docker) {
		t.Errorf("docker zstd layers should use the OCI zstd media type")
	}
}

func TestHostileLayersHoldTheDocumentedAttack(t *testing.T) {
	want := map[HostileKind][]string{
		PathTraversal:     {"0 ../escape", "0 ../../../../../../../../tmp/berth-hostile-path-traversal"},
		AbsolutePath:      {"0 /tmp/berth-hostile-absolute-path"},
		SymlinkEscape:     {"2 escape -> /", "0 escape/tmp/berth-hostile-symlink-escape", "2 up -> ../../../../../../../..", "0 up/tmp/berth-hostile-symlink-escape"},
		HardlinkEscape:    {"1 passwd -> /etc/passwd"},
		HardlinkTraversal: {"1 x -> ../../x"},
		WhiteoutSymlink:   {"2 escape -> /", "0 escape/tmp/.wh.berth-hostile-whiteout-symlink", "2 up -> ../../../../../../../..", "0 up/tmp/.wh.berth-hostile-whiteout-symlink"},
	}
	for _, kind := range HostileKinds() {
		layers, err := Hostile(kind).Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(layers) != 2 {
			t.Fatalf("%s: %d layers, want busybox + 1", kind, len(layers))
		}
		rc, err := layers[1].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		eachMember(t, rc, func(hdr *tar.Header, _ io.Reader) {
			s := fmt.Sprintf("%c %s", hdr.Typeflag, hdr.Name)
			if hdr.Linkname != "" {
				s += " -> " + hdr.Linkname
			}
			got = append(got, s)
		})
		rc.Close()
		if !reflect.DeepEqual(got, want[kind]) {
			t.Errorf("%s: members %q, want %q", kind, got, want[kind])
		}
	}
}

func TestLargeSiblingSharesOnlyItsLowerLayers(t *testing.T) {
	const layers, size, shared = 4, 4 << 20, 2
	a, err := Large(layers, size, 3).Layers()
	if err != nil {
		t.Fatal(err)
	}
	b, err := LargeSibling(layers, size, 3, shared).Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != layers+1 || len(b) != layers+1 {
		t.Fatalf("%d and %d layers, want busybox + %d", len(a), len(b), layers)
	}
	for i := range a {
		da, _ := a[i].Digest()
		db, _ := b[i].Digest()
		if same := da == db; same != (i <= shared) {
			t.Errorf("layer %d: digests %s and %s, want shared=%v", i, da, db, i <= shared)
		}
		if i > 0 {
			if n, _ := a[i].Size(); n < size/layers {
				t.Errorf("layer %d: blob of %d bytes holds %d bytes of random data; it compressed", i, n, size/layers)
			}
		}
	}
	var buf bytes.Buffer
	rc, _ := a[1].Uncompressed()
	_, _ = io.Copy(&buf, rc)
	rc.Close()
	if !bytes.Contains(buf.Bytes(), []byte("large/1/chunk-00")) {
		t.Errorf("layer 1 does not hold large/1/chunk-00")
	}
}

func TestMixedHasOneLayerPerCompression(t *testing.T) {
	img := Mixed()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var got []types.MediaType
	for _, l := range layers {
		mt, _ := l.MediaType()
		got = append(got, mt)
	}
	want := []types.MediaType{types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer media types %v, want %v", got, want)
	}
	files := flatten(t, img)
	for _, p := range MixedFiles() {
		if files[p].Content != p+"\n" {
			t.Errorf("%s = %q", p, files[p].Content)
		}
	}
}
