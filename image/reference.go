package image

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
)

// dockerHub is the registry of references that name none, in the familiar
// spelling kubelet and containerd record ("docker.io/library/busybox").
const dockerHub = "docker.io"

// Reference is a normalised image reference: a repository in a registry,
// and either a tag or a digest.
type Reference struct {
	Registry   string // "docker.io", "registry.k8s.io", "127.0.0.1:5000"
	Repository string // "library/busybox"
	Tag        string // set when Digest is not
	Digest     string // "sha256:..."
}

// ParseReference normalises ref the way kubelet and containerd do:
// busybox is docker.io/library/busybox:latest, a missing tag is "latest",
// and a reference with both a tag and a digest (name:tag@digest) is the
// digest one.
func ParseReference(ref string) (Reference, error) {
	if ref == "" || strings.TrimSpace(ref) != ref {
		return Reference{}, fmt.Errorf("image reference %q: %w", ref, errdefs.ErrInvalidArgument)
	}
	r, err := name.ParseReference(ref, name.WithDefaultRegistry(name.DefaultRegistry), name.WithDefaultTag("latest"))
	if err != nil {
		return Reference{}, fmt.Errorf("image reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	out := Reference{Registry: r.Context().RegistryStr(), Repository: r.Context().RepositoryStr()}
	if out.Registry == name.DefaultRegistry {
		out.Registry = dockerHub
	}
	switch r := r.(type) {
	case name.Digest:
		d, err := digest.Parse(r.DigestStr())
		if err != nil || d.Algorithm() != digest.SHA256 {
			return Reference{}, fmt.Errorf("image reference %q: only sha256 digests are supported: %w", ref, errdefs.ErrInvalidArgument)
		}
		out.Digest = r.DigestStr()
	case name.Tag:
		out.Tag = r.TagStr()
	}
	return out, nil
}

// Name is the repository's full name: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String is the reference in normalised form.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Name() + "@" + r.Digest
	}
	return r.Name() + ":" + r.Tag
}

// identifier is what the registry API calls the manifest: tag or digest.
func (r Reference) identifier() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}
