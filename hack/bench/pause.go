package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/berth-runtime/berth/test/images"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pauseSource is a pause program like Kubernetes' own: it holds the pod's
// namespaces, exits on SIGINT or SIGTERM, and reaps orphans. Built static,
// it weighs what registry.k8s.io/pause weighs (under 1 MiB of RSS), so that
// containerd's per-pod memory is not inflated by a heavier stand-in.
const pauseSource = `#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }

int main(void) {
	struct sigaction sa = {0};
	sa.sa_handler = stop;
	sigaction(SIGINT, &sa, 0);
	sigaction(SIGTERM, &sa, 0);
	sa.sa_handler = reap;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, 0);
	for (;;)
		pause();
}
`

// pauseImage builds the pause image in dir: a static C pause when a C
// compiler with a static libc is installed ("c"), else test/images' busybox
// shell loop ("busybox-sh", about 4 MiB of RSS per pod in two processes).
func pauseImage(dir string) (v1.Image, string, error) {
	src, bin := filepath.Join(dir, "pause.c"), filepath.Join(dir, "pause")
	if err := os.WriteFile(src, []byte(pauseSource), 0o644); err != nil {
		return nil, "", err
	}
	if out, err := exec.Command("cc", "-Os", "-static", "-o", bin, src).CombinedOutput(); err != nil {
		logf("no static C compiler (%v: %s); using the busybox pause image", err, bytes.TrimSpace(out))
		return images.Pause(), "busybox-sh", nil
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return nil, "", err
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, "", err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		OS:           "linux",
		Architecture: runtime.GOARCH,
		Config:       v1.Config{Entrypoint: []string{"/pause"}, StopSignal: "SIGTERM"},
	})
	if err != nil {
		return nil, "", err
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, "", fmt.Errorf("pause image: %w", err)
	}
	return img, "c", nil
}
