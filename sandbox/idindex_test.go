package sandbox

import (
	"testing"

	"github.com/containerd/errdefs"
)

func TestIDIndexResolve(t *testing.T) {
	x := idIndex{}
	for _, id := range []string{"abc123", "abd456", "ff00"} {
		x.add(id)
	}
	tests := []struct {
		name   string
		prefix string
		want   string
		is     func(error) bool
	}{
		{name: "a full ID resolves to itself", prefix: "abc123", want: "abc123"},
		{name: "a unique prefix resolves to its ID", prefix: "abd", want: "abd456"},
		{name: "an ambiguous prefix is an invalid argument", prefix: "ab", is: errdefs.IsInvalidArgument},
		{name: "an unknown prefix is not found", prefix: "zz", is: errdefs.IsNotFound},
		{name: "an empty ID is an invalid argument", prefix: "", is: errdefs.IsInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := x.resolve("container", tt.prefix)
			if tt.is != nil {
				if !tt.is(err) {
					t.Fatalf("resolve(%q) error = %v, want its class", tt.prefix, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolve(%q) = %q, %v; want %q", tt.prefix, got, err, tt.want)
			}
		})
	}
}
