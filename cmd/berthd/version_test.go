package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
)

// TestVersionIsSemanticHoweverBerthdIsBuilt builds berthd each way one
// can and checks that --version prints a semantic version (kubelet parses
// RuntimeVersion, the same string, as one). The builds share make's
// compile cache (-trimpath) and cost a link each.
func TestVersionIsSemanticHoweverBerthdIsBuilt(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(base))
	commit := ""
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		bin  string // the directory the build writes berthd into
		cmd  []string
		// want is the version; ending in "+", the prefix of one with the
		// commit; ending in "?", a version with or without the commit.
		want string
	}{
		{name: "make build on a development tree is the next release's dev with the commit",
			bin: "make-dev", cmd: []string{"make", "-s", "build", "BIN=" + dir + "/make-dev", "RELEASE="}, want: release + "-dev+"},
		{name: "make build RELEASE=1 is the release",
			bin: "make-release", cmd: []string{"make", "-s", "build", "BIN=" + dir + "/make-release", "RELEASE=1"}, want: release},
		// The commit comes from the build information when the toolchain
		// records it (-buildvcs, off in GOFLAGS on some machines).
		{name: "go build is the next release's dev, with the commit if the build recorded it",
			bin: "go-build", cmd: []string{"go", "build", "-trimpath", "-o", dir + "/go-build/berthd", "./cmd/berthd"}, want: release + "-dev?"},
		{name: "go build without VCS information is the next release's dev",
			bin: "go-novcs", cmd: []string{"go", "build", "-trimpath", "-buildvcs=false", "-o", dir + "/go-novcs/berthd", "./cmd/berthd"}, want: release + "-dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build := exec.Command(tc.cmd[0], tc.cmd[1:]...)
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("%q: %v\n%s", tc.cmd, err, out)
			}
			bin := filepath.Join(dir, tc.bin, "berthd")
			out, err := exec.Command(bin, "--version").Output()
			if err != nil {
				t.Fatalf("%s --version: %v", bin, err)
			}
			got, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "berthd ")
			if !ok {
				t.Fatalf("--version printed %q, want berthd <version>", out)
			}
			if _, err := version.ParseSemantic(got); err != nil {
				t.Errorf("version %q is not semantic: %v", got, err)
			}
			if _, err := version.ParseGeneric(got); err != nil {
				t.Errorf("version %q is not generic either: %v", got, err)
			}
			if prefix, maybe := strings.CutSuffix(tc.want, "?"); maybe {
				if got != prefix && (commit == "" || !strings.HasPrefix(got, prefix+"+"+commit)) {
					t.Errorf("version %q, want %s or %s+%s...", got, prefix, prefix, commit)
				}
			} else if prefix, dev := strings.CutSuffix(tc.want, "+"); dev {
				if commit != "" && !strings.HasPrefix(got, prefix+"+"+commit) {
					t.Errorf("version %q, want %s+%s...", got, prefix, commit)
				}
				if commit == "" && got != prefix {
					t.Errorf("version %q outside a git checkout, want %s", got, prefix)
				}
			} else if got != tc.want {
				t.Errorf("version %q, want %q", got, tc.want)
			}
		})
	}
}
