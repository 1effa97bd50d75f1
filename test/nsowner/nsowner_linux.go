// Package nsowner tells tests which user namespace owns a namespace
// (ioctl NS_GET_USERNS), so that the sandbox, oci and integration tests
// check "owned by the pod's user namespace" the same way.
package nsowner

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Owns reports whether the user namespace at user (a /proc/<pid>/ns/user
// file or a pin of one) owns the namespace at path.
func Owns(user, path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	owner, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		return false, fmt.Errorf("owner of namespace %s: %w", path, err)
	}
	defer unix.Close(owner)
	var a, b unix.Stat_t
	if err := unix.Fstat(owner, &a); err != nil {
		return false, err
	}
	if err := unix.Stat(user, &b); err != nil {
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
