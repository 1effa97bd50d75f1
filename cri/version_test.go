package cri

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
)

func TestBaseVersionIsTheVERSIONFile(t *testing.T) {
	b, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != baseVersion {
		t.Errorf("VERSION holds %q, cri.baseVersion is %q: keep them equal", got, baseVersion)
	}
}

func TestDevVersionIsSemantic(t *testing.T) {
	rev := "cd57ffcb1ea0d5a7c0e0b5c1d5fa0a4e1d0c9a11"
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{name: "a build without build information is the base version's dev", want: "0.2.0-dev"},
		{name: "a build without VCS information is the base version's dev", info: &debug.BuildInfo{}, ok: true, want: "0.2.0-dev"},
		{name: "a build from a clean checkout names the commit",
			info: &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}}, ok: true,
			want: "0.2.0-dev+cd57ffcb1ea0"},
		{name: "a build from a changed checkout says so",
			info: &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}}, ok: true,
			want: "0.2.0-dev+cd57ffcb1ea0.dirty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := devVersion(tc.info, tc.ok)
			if got != tc.want {
				t.Errorf("devVersion = %q, want %q", got, tc.want)
			}
			if _, err := version.ParseSemantic(got); err != nil {
				t.Errorf("%q is no semantic version: %v", got, err)
			}
		})
	}
}
