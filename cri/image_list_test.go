package cri

import (
	"testing"

	"github.com/berth-runtime/berth/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestToCRIImageReportsTheConfigUser(t *testing.T) {
	for _, tc := range []struct {
		name, user, username string
		uid                  int64 // -1: none
	}{
		{"no user leaves both unset", "", "", -1},
		{"a numeric user is a uid", "1000", "", 1000},
		{"uid:gid reports the uid", "1000:1000", "", 1000},
		{"a name is a username", "nobody", "nobody", -1},
		{"name:group reports the name", "nobody:nogroup", "nobody", -1},
		{"root by number is uid 0", "0", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := toCRIImage(image.Image{ID: "sha256:x", Size: 1, Config: ocispec.ImageConfig{User: tc.user}})
			if got.Username != tc.username {
				t.Errorf("username %q, want %q", got.Username, tc.username)
			}
			switch {
			case tc.uid < 0 && got.Uid != nil:
				t.Errorf("uid %v, want none", got.Uid)
			case tc.uid >= 0 && (got.Uid == nil || got.Uid.Value != tc.uid):
				t.Errorf("uid %v, want %d", got.Uid, tc.uid)
			}
		})
	}
}
