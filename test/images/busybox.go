package images

import (
	"compress/gzip"
	"fmt"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultPath is the PATH set in every image's config.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// layerOf memoizes one layer built from tar bytes, per compression. Layers
// are stored with OCI media types; assemble relabels them per format.
func layerOf(name string, c Compression, tarFn func() ([]byte, error)) (*blobLayer, error) {
	var err error
	l := memoErr("layer/"+name+"/"+c.String(), &err, func() (*blobLayer, error) {
		tb, err := tarFn()
		if err != nil {
			return nil, err
		}
		return newLayer(tb, c, OCI, gzip.DefaultCompression)
	})
	return l, err
}

// pathLayer is a layer holding the one file p (an absolute path one
// directory deep) with content p plus "\n", memoized under kind+p.
func pathLayer(kind string, c Compression, p string) (*blobLayer, error) {
	return layerOf(kind+p, c, func() ([]byte, error) {
		var b tarBuilder
		b.dir(path.Dir(p)[1:], 0o755)
		b.file(p[1:], 0o644, []byte(p+"\n"))
		return b.bytes()
	})
}

func busyboxLayer(c Compression) (*blobLayer, error) {
	return layerOf("busybox", c, busyboxTar)
}

// baseConfig is the config of a plain busybox image.
func baseConfig() v1.ConfigFile {
	p := hostPlatform()
	return v1.ConfigFile{
		OS:           p.OS,
		Architecture: p.Architecture,
		Config: v1.Config{
			Env: []string{DefaultPath},
			Cmd: []string{"sh"},
		},
	}
}

// Busybox is a single-layer image of Debian's dynamic busybox for the host
// platform: every applet hard-linked in /bin, the users and groups listed
// at UserBerth, Cmd ["sh"], Env [DefaultPath]. Its layer is the first
// layer of every other busybox-based image here (same compression).
func Busybox(opts ...Option) v1.Image {
	v := variantOf(opts)
	return memo("busybox/"+v.String(), func() (v1.Image, error) {
		l, err := busyboxLayer(v.comp)
		if err != nil {
			return nil, err
		}
		return assemble(v.format, baseConfig(), []*blobLayer{l}, []string{"busybox"})
	})
}

// ConfiguredConfig is the runtime configuration of the Configured image.
// WorkingDir exists in the image, owned by UserBerth.
func ConfiguredConfig() v1.Config {
	return v1.Config{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{`echo "configured $BERTH_GREETING from $(pwd) as $(id -u):$(id -g)"`},
		Env:        []string{DefaultPath, "BERTH_GREETING=hello", "BERTH_EMPTY="},
		WorkingDir: "/srv/app",
		User:       "berth",
		StopSignal: "SIGUSR1",
		Labels: map[string]string{
			"org.opencontainers.image.title": "berth-configured",
			"io.berth.test":                  "configured",
		},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "5353/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
	}
}

// Configured is busybox plus a layer creating /srv/app (owned by berth,
// holding app.txt "configured app\n") with every runtime field of the
// config set: see ConfiguredConfig. Running it with no overrides prints
// "configured hello from /srv/app as 1000:1000".
func Configured(opts ...Option) v1.Image {
	v := variantOf(opts)
	return memo("configured/"+v.String(), func() (v1.Image, error) {
		base, err := busyboxLayer(v.comp)
		if err != nil {
			return nil, err
		}
		app, err := layerOf("configured-app", v.comp, func() ([]byte, error) {
			var b tarBuilder
			b.dir("srv", 0o755)
			b.add(tarDir, "srv/app", 0o755, UserBerth, UserBerth, nil, "")
			b.add(tarReg, "srv/app/app.txt", 0o644, UserBerth, UserBerth, []byte("configured app\n"), "")
			b.dir("data", 0o755)
			return b.bytes()
		})
		if err != nil {
			return nil, err
		}
		cfg := baseConfig()
		cfg.Config = ConfiguredConfig()
		return assemble(v.format, cfg, []*blobLayer{base, app}, []string{"busybox", "configured app"})
	})
}

// PauseCommand is the Entrypoint of the Pause image: a shell that sleeps
// until SIGTERM or SIGINT and then exits 0 (as PID 1 it needs the trap,
// since the kernel drops default-action signals sent to a namespace init).
func PauseCommand() []string {
	return []string{"/bin/sh", "-c", `trap 'kill $! 2>/dev/null; exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`}
}

// Pause is busybox with PauseCommand as Entrypoint, usable as a sandbox
// (pause) image for Berth and for containerd's sandbox_image.
func Pause(opts ...Option) v1.Image {
	v := variantOf(opts)
	return memo("pause/"+v.String(), func() (v1.Image, error) {
		l, err := busyboxLayer(v.comp)
		if err != nil {
			return nil, err
		}
		cfg := baseConfig()
		cfg.Config = v1.Config{
			Env:        []string{DefaultPath},
			Entrypoint: PauseCommand(),
			StopSignal: "SIGTERM",
		}
		return assemble(v.format, cfg, []*blobLayer{l}, []string{"busybox"})
	})
}

// IndexPlatforms are the platforms of Index, in order: the host platform
// (busybox, runnable) first, then the others of linux/amd64, linux/arm64,
// linux/arm/v7.
func IndexPlatforms() []v1.Platform {
	all := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
	}
	ps := []v1.Platform{hostPlatform()}
	for _, p := range all {
		if p.Architecture != ps[0].Architecture {
			ps = append(ps, p)
		}
	}
	return ps
}

// Index is a multi-platform image index (an OCI index, or a Docker manifest
// list with WithFormat(Docker)). The host-platform entry is Busybox with the
// same options, so its manifest digest equals Busybox(opts...)'s. Each other
// entry is a one-layer image holding /platform with the text
// "linux/arm64\n" (etc.) and a config naming that platform; it cannot run.
func Index(opts ...Option) v1.ImageIndex {
	v := variantOf(opts)
	return memo("index/"+v.String(), func() (v1.ImageIndex, error) {
		ps := IndexPlatforms()
		imgs := []v1.Image{Busybox(opts...)}
		for _, p := range ps[1:] {
			l, err := layerOf("platform-"+p.String(), v.comp, func() ([]byte, error) {
				var b tarBuilder
				b.file("platform", 0o644, []byte(p.String()+"\n"))
				return b.bytes()
			})
			if err != nil {
				return nil, err
			}
			cfg := v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
				Config: v1.Config{Env: []string{DefaultPath}, Cmd: []string{"/bin/false"}}}
			img, err := assemble(v.format, cfg, []*blobLayer{l}, []string{"platform " + p.String()})
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, img)
		}
		return assembleIndex(v.format, imgs, ps)
	})
}

// ManyLayersFile is the file layer i (1 <= i < n) of ManyLayers adds; its
// content is the same text plus "\n".
func ManyLayersFile(i int) string { return fmt.Sprintf("/layers/%04d", i) }

// ManyLayers is an image of n layers (n >= 2): busybox, then n-1 layers,
// layer i adding ManyLayersFile(i). Tests use n >= 64 to cross overlayfs
// mount-option length limits.
func ManyLayers(n int, opts ...Option) v1.Image {
	v := variantOf(opts)
	return memo(fmt.Sprintf("many-layers-%d/%s", n, v), func() (v1.Image, error) {
		if n < 2 {
			return nil, fmt.Errorf("ManyLayers needs at least 2 layers, got %d", n)
		}
		base, err := busyboxLayer(v.comp)
		if err != nil {
			return nil, err
		}
		layers := []*blobLayer{base}
		comments := []string{"busybox"}
		for i := 1; i < n; i++ {
			name := ManyLayersFile(i)
			l, err := pathLayer("many", v.comp, name)
			if err != nil {
				return nil, err
			}
			layers = append(layers, l)
			comments = append(comments, "add "+name)
		}
		return assemble(v.format, baseConfig(), layers, comments)
	})
}

// MixedFiles are the files Mixed adds over busybox, by layer: layer 1
// (zstd) and layer 2 (uncompressed); each file's content is its path plus
// "\n".
func MixedFiles() []string { return []string{"/mixed/zstd.txt", "/mixed/uncompressed.txt"} }

// Mixed is busybox (gzip) plus a zstd layer and an uncompressed layer, each
// adding one of MixedFiles: one image whose layers need three decoders.
func Mixed(opts ...Option) v1.Image {
	v := variantOf(opts)
	return memo("mixed/"+v.format.String(), func() (v1.Image, error) {
		base, err := busyboxLayer(Gzip)
		if err != nil {
			return nil, err
		}
		layers := []*blobLayer{base}
		for i, c := range []Compression{Zstd, Uncompressed} {
			p := MixedFiles()[i]
			l, err := pathLayer("mixed", c, p)
			if err != nil {
				return nil, err
			}
			layers = append(layers, l)
		}
		return assemble(v.format, baseConfig(), layers, []string{"busybox", "zstd layer", "uncompressed layer"})
	})
}
