package images

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// printDigestsEnv makes the test binary print every fixture's digest and
// exit, so a test can compare digests built by another process.
const printDigestsEnv = "BERTH_IMAGES_PRINT_DIGESTS"

func TestMain(m *testing.M) {
	if os.Getenv(printDigestsEnv) != "" {
		fmt.Print(digestList())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// digestList is "name digest" per line for every fixture in builders().
func digestList() string {
	var b strings.Builder
	for _, bl := range builders() {
		d, err := bl.build().Digest()
		if err != nil {
			fmt.Fprintf(&b, "%s error %v\n", bl.name, err)
			continue
		}
		fmt.Fprintf(&b, "%s %s\n", bl.name, d)
	}
	return b.String()
}

func TestAnotherProcessBuildsTheSameDigests(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), printDigestsEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run %s: %v", os.Args[0], err)
	}
	if mine := digestList(); string(out) != mine {
		t.Errorf("digests differ between processes:\nother:\n%s\nthis:\n%s", out, mine)
	}
}
