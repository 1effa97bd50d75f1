package images

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

//go:embed probe/probe.c
var probeSource []byte

// ProbePath is the probe program in the Probe image: `probe NAME...`
// makes each named system call directly (unshare_user, unshare_user_i386,
// unshare_user_x32, mount, keyctl, add_key, kexec_load, ptrace, mkdir,
// mseal, listmount, listmount_i386, listmount_x32, fchmodat2, getpid) in
// a child of its own and prints "NAME ERRNO" (0: success), so
// tests see what a seccomp filter or the capabilities let through, which
// busybox applets cannot all show.
const ProbePath = "/bin/probe"

// Probe is busybox plus ProbePath, built static from probe/probe.c with
// the host's cc.
func Probe(opts ...Option) v1.Image {
	v := variantOf(opts)
	return memo("probe/"+v.String(), func() (v1.Image, error) {
		base, err := busyboxLayer(v.comp)
		if err != nil {
			return nil, err
		}
		l, err := layerOf("probe", v.comp, func() ([]byte, error) {
			bin, err := buildProbe()
			if err != nil {
				return nil, err
			}
			var b tarBuilder
			b.dir("bin", 0o755)
			b.file(ProbePath[1:], 0o755, bin)
			return b.bytes()
		})
		if err != nil {
			return nil, err
		}
		return assemble(v.format, baseConfig(), []*blobLayer{base, l}, []string{"busybox", "probe"})
	})
}

func buildProbe() ([]byte, error) {
	dir, err := os.MkdirTemp("", "berth-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, probeSource, 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command("cc", "-O2", "-static", "-o", bin, src).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the probe program: %v: %s", err, out)
	}
	return os.ReadFile(bin)
}
