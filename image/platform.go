package image

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostPlatform is the platform images are chosen for.
func hostPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// choosePlatform picks the manifest for want from an index: same OS and
// architecture, the exact variant first, then no variant, then the
// nearest lower variant (v7 runs v6 images); attestation manifests never.
func choosePlatform(manifests []ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, error) {
	best, bestRank := -1, -1
	for i, m := range manifests {
		if m.Platform == nil || m.Platform.OS != want.OS || m.Platform.Architecture != want.Architecture {
			continue
		}
		if !isManifest(m.MediaType) && !isIndex(m.MediaType) && m.MediaType != "" {
			continue
		}
		rank := variantRank(m.Platform.Variant, want.Variant)
		if rank > bestRank {
			best, bestRank = i, rank
		}
	}
	if best < 0 {
		var have []string
		for _, m := range manifests {
			if m.Platform != nil {
				have = append(have, strings.TrimSuffix(m.Platform.OS+"/"+m.Platform.Architecture+"/"+m.Platform.Variant, "/"))
			}
		}
		return ocispec.Descriptor{}, fmt.Errorf("no manifest for %s/%s (the index has %s): %w",
			want.OS, want.Architecture, strings.Join(have, ", "), errdefs.ErrNotFound)
	}
	return manifests[best], nil
}

// variantRank orders a candidate variant for the host's: exact 1000,
// absent (or amd64's implied v1) 500, a lower numbered variant 100+n,
// anything else -1 (it may not run here).
func variantRank(have, want string) int {
	norm := func(v string) string {
		if v == "v1" && runtime.GOARCH == "amd64" {
			return ""
		}
		return v
	}
	have, want = norm(have), norm(want)
	switch {
	case have == want:
		return 1000
	case have == "":
		return 500
	case len(have) == 2 && len(want) == 2 && have[0] == 'v' && want[0] == 'v' && have[1] < want[1]:
		return 100 + int(have[1]-'0')
	}
	return -1
}
