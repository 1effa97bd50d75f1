package image

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestChoosePlatform(t *testing.T) {
	m := func(name, os, arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name),
			Platform: &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	for _, tc := range []struct {
		name  string
		list  []ocispec.Descriptor
		want  ocispec.Platform
		chose string
	}{
		{"the host's os and architecture win", []ocispec.Descriptor{m("arm", "linux", "arm64", "v8"), m("amd", "linux", "amd64", "")},
			ocispec.Platform{OS: "linux", Architecture: "amd64"}, "amd"},
		{"an exact variant beats none", []ocispec.Descriptor{m("none", "linux", "arm64", ""), m("v8", "linux", "arm64", "v8")},
			ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "v8"},
		{"a lower variant runs when the exact one is missing", []ocispec.Descriptor{m("v6", "linux", "arm", "v6"), m("v5", "linux", "arm", "v5")},
			ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "v6"},
		{"attestations (unknown/unknown) are never chosen", []ocispec.Descriptor{m("att", "unknown", "unknown", ""), m("amd", "linux", "amd64", "")},
			ocispec.Platform{OS: "linux", Architecture: "amd64"}, "amd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := choosePlatform(tc.list, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != digest.FromString(tc.chose) {
				t.Fatalf("chose %v, want %s", got.Platform, tc.chose)
			}
		})
	}
	_, err := choosePlatform([]ocispec.Descriptor{m("s390x", "linux", "s390x", "")}, ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("no matching platform: error %v, want not found", err)
	}
}
