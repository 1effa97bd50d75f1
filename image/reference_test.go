package image

import (
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseReference(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"a bare name is docker.io/library with tag latest", "busybox", "docker.io/library/busybox:latest"},
		{"a tag is kept", "busybox:1.36", "docker.io/library/busybox:1.36"},
		{"a docker hub user repo gets no library prefix", "someone/app", "docker.io/someone/app:latest"},
		{"index.docker.io is spelled docker.io", "index.docker.io/library/busybox:1", "docker.io/library/busybox:1"},
		{"another registry is kept", "registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"},
		{"a registry with a port is kept", "127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"},
		{"a digest reference", "busybox@" + d, "docker.io/library/busybox@" + d},
		{"name:tag@digest is the digest reference", "busybox:1.36@" + d, "docker.io/library/busybox@" + d},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReference(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tc.want {
				t.Fatalf("ParseReference(%q) = %q, want %q", tc.in, r.String(), tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, in string }{
		{"an empty reference", ""},
		{"upper case", "BusyBox"},
		{"surrounding space", " busybox"},
		{"a malformed digest", "busybox@sha256:xyz"},
		{"a non-sha256 digest", "busybox@sha512:" + "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"},
	} {
		t.Run(tc.name+" is invalid", func(t *testing.T) {
			if _, err := ParseReference(tc.in); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ParseReference(%q) error = %v, want invalid argument", tc.in, err)
			}
		})
	}
}
