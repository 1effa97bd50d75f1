// Command roles is the oci tests' stand-in for berthd when cmd/berthd does
// not build (another area mid-edit): it dispatches the same runtime roles
// by argv[0].
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-runtime/berth/oci"
	_ "github.com/berth-runtime/berth/oci/nsenter"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "berth-init":
		oci.InitMain()
	case "berth-exec":
		oci.ExecMain()
	}
	fmt.Fprintf(os.Stderr, "roles: unknown role %q\n", os.Args[0])
	os.Exit(1)
}
