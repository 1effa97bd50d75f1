package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
)

// Images the cluster's registry serves, by the names manifests use. The
// busybox tags differ in encoding only (OCI and Docker media types), so a
// rolling update from one to the other changes the image's digest but not
// what runs.
const (
	Busybox       = "docker.io/library/busybox:1.37"
	BusyboxOther  = "docker.io/library/busybox:1.36"
	E2EBusybox    = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"
	NonRoot       = "registry.k8s.io/e2e-test-images/nonroot:1.4" // runs as uid 1000 (images.UserBerth)
	Pause         = "registry.k8s.io/pause:3.10.1"
	mirroredHosts = "docker.io registry.k8s.io"
)

func testImages() map[string]v1.Image {
	return map[string]v1.Image{
		Busybox:      images.Busybox(),
		BusyboxOther: images.Busybox(images.WithFormat(images.Docker)),
		E2EBusybox:   images.Busybox(),
		NonRoot:      images.Configured(),
		Pause:        images.Pause(),
	}
}

// startRegistry serves the test images on the node address (the first
// node's, on the cluster's own bridge: the second node's berthd reaches it
// there from its network namespace) and writes berthd's certs.d: each
// mirrored host's hosts.toml sends pulls to the registry.
func (c *Cluster) startRegistry() error {
	if err := images.Prepare(); err != nil {
		return err
	}
	r, err := registry.Listen(NodeIP + ":0")
	if err != nil {
		return err
	}
	c.Registry = r
	for ref, img := range testImages() {
		// docker.io/library/busybox:1.37 -> library/busybox:1.37
		repo := ref[strings.IndexByte(ref, '/')+1:]
		if _, err := r.WriteImage(repo, img); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	for _, host := range strings.Fields(mirroredHosts) {
		d := c.path("certs.d", host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		toml := fmt.Sprintf("server = \"https://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host, r.Host())
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(toml), 0o644); err != nil {
			return err
		}
	}
	return nil
}
