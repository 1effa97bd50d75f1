// Command testimages serves every Berth test image from an in-process
// registry, for trying berthd by hand (make run, crictl-like clients):
//
//	go run ./hack/testimages -listen 127.0.0.1:5000 [-auth basic|bearer] [-tls] [-large]
//
// It prints one reference per line and serves until interrupted. The
// registry is package test/registry's, so it listens only where told; the
// images are package test/images' and have the same digests as in tests.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5000", "address to serve the registry on")
	auth := flag.String("auth", "none", "authentication: none, basic or bearer")
	user := flag.String("user", "berth", "username for -auth basic or bearer")
	password := flag.String("password", "berth", "password for -auth basic or bearer")
	useTLS := flag.Bool("tls", false, "serve HTTPS with a fresh CA (its file is printed)")
	large := flag.Bool("large", false, "also push the benchmark images (about 400 MB in memory)")
	flag.Parse()
	if err := run(*listen, *auth, *user, *password, *useTLS, *large); err != nil {
		fmt.Fprintln(os.Stderr, "testimages:", err)
		os.Exit(1)
	}
}

func run(listen, auth, user, password string, useTLS, large bool) error {
	var opts []registry.Option
	switch auth {
	case "none":
	case "basic":
		opts = append(opts, registry.WithBasicAuth(user, password))
	case "bearer":
		opts = append(opts, registry.WithBearerAuth(user, password))
	default:
		return fmt.Errorf("unknown -auth %q: want none, basic or bearer", auth)
	}
	if useTLS {
		opts = append(opts, registry.WithTLS())
	}
	if err := images.Prepare(); err != nil {
		return err
	}
	r, err := registry.Listen(listen, opts...)
	if err != nil {
		return err
	}
	defer r.Close()

	imgs, indexes := catalog(large)
	var refs []string
	for ref, img := range imgs {
		full, err := r.WriteImage(ref, img)
		if err != nil {
			return err
		}
		refs = append(refs, full)
	}
	for ref, idx := range indexes {
		full, err := r.WriteIndex(ref, idx)
		if err != nil {
			return err
		}
		refs = append(refs, full)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		fmt.Println(ref)
	}
	if u, p := r.Credentials(); u != "" {
		fmt.Fprintf(os.Stderr, "credentials: %s / %s (%s auth)\n", u, p, auth)
	}
	if ca := r.CAFile(); ca != "" {
		fmt.Fprintf(os.Stderr, "CA certificate: %s\n", ca)
	}
	fmt.Fprintf(os.Stderr, "serving %s until interrupted\n", r.URL())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}

// catalog names every test image under the reference it is pushed as.
func catalog(large bool) (map[string]v1.Image, map[string]v1.ImageIndex) {
	imgs := map[string]v1.Image{
		"library/busybox:latest":       images.Busybox(),
		"library/busybox:docker":       images.Busybox(images.WithFormat(images.Docker)),
		"library/busybox:zstd":         images.Busybox(images.WithCompression(images.Zstd)),
		"library/busybox:uncompressed": images.Busybox(images.WithCompression(images.Uncompressed)),
		"library/pause:latest":         images.Pause(),
		"test/configured:latest":       images.Configured(),
		"test/layered:latest":          images.Layered(),
		"test/many-layers:latest":      images.ManyLayers(100),
		"test/mixed:latest":            images.Mixed(),
	}
	for _, kind := range images.HostileKinds() {
		imgs["test/hostile:"+string(kind)] = images.Hostile(kind)
	}
	if large {
		imgs["test/large:latest"] = images.Large(images.BenchLayers, images.BenchBytes, images.BenchSeed)
		imgs["test/large:sibling"] = images.LargeSibling(images.BenchLayers, images.BenchBytes, images.BenchSeed, images.BenchShared)
	}
	indexes := map[string]v1.ImageIndex{
		"test/multiarch:latest": images.Index(),
		"test/multiarch:docker": images.Index(images.WithFormat(images.Docker)),
	}
	return imgs, indexes
}
