package integration

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"go.uber.org/zap/zaptest"
)

// mountPulled stops d and mounts what it pulled as a container's root
// filesystem would be, through the image store it left on disk.
func mountPulled(t *testing.T, d *harness.Daemon, id string) string {
	t.Helper()
	d.Stop(t)
	ctx := context.Background()
	s, err := image.Open(ctx, image.Options{Root: filepath.Join(d.Root, "image"), Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.PrepareSnapshot(ctx, "mount-test", id); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.MountSnapshot(ctx, "mount-test", target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.UnmountSnapshot(ctx, target); err != nil {
			t.Error(err)
		}
		if err := s.RemoveSnapshot(ctx, "mount-test"); err != nil {
			t.Error(err)
		}
	})
	return target
}

func TestImageLayeredWhiteoutsAndOpaqueDirsShowThroughARealOverlay(t *testing.T) {
	for _, c := range []images.Compression{images.Gzip, images.Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			reg := registry.Start(t)
			ref := reg.Push(t, "layered:1", images.Layered(images.WithCompression(c)))
			d := harness.Start(t)
			root := mountPulled(t, d, mustPullImage(t, d, ref))

			for _, f := range images.LayeredFiles() {
				p := filepath.Join(root, f.Path)
				fi, err := os.Lstat(p)
				if err != nil {
					t.Errorf("%s: %v", f.Path, err)
					continue
				}
				st := fi.Sys().(*syscall.Stat_t)
				switch f.Type {
				case tar.TypeReg:
					data, err := os.ReadFile(p)
					if err != nil || string(data) != f.Content {
						t.Errorf("%s holds %q (%v), want %q", f.Path, data, err, f.Content)
					}
				case tar.TypeSymlink:
					if target, err := os.Readlink(p); err != nil || target != f.Target {
						t.Errorf("%s links to %q (%v), want %q", f.Path, target, err, f.Target)
					}
					continue
				case tar.TypeDir:
					if !fi.IsDir() {
						t.Errorf("%s is not a directory", f.Path)
					}
				}
				if perm := fi.Mode() & (os.ModePerm | os.ModeSticky | os.ModeSetuid | os.ModeSetgid); perm != f.Mode {
					t.Errorf("%s has mode %v, want %v", f.Path, perm, f.Mode)
				}
				if int(st.Uid) != f.UID || int(st.Gid) != f.GID {
					t.Errorf("%s is owned by %d:%d, want %d:%d", f.Path, st.Uid, st.Gid, f.UID, f.GID)
				}
			}
			for _, p := range images.LayeredAbsent() {
				if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
					t.Errorf("%s shows through the overlay (%v); an upper layer deleted it", p, err)
				}
			}
			if _, err := os.Stat(filepath.Join(root, "bin", "sh")); err != nil {
				t.Errorf("busybox base layer missing from the rootfs: %v", err)
			}
		})
	}
}

func TestImageWith64LayersMounts(t *testing.T) {
	const n = 64
	reg := registry.Start(t)
	ref := reg.Push(t, "many:64", images.ManyLayers(n))
	d := harness.Start(t)
	root := mountPulled(t, d, mustPullImage(t, d, ref))
	for i := 1; i < n; i++ {
		if _, err := os.Stat(filepath.Join(root, images.ManyLayersFile(i))); err != nil {
			t.Errorf("layer %d's file: %v", i, err)
		}
	}
}
