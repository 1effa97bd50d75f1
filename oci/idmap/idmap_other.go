//go:build !linux

package idmap

import "errors"

// ErrUnsupported: idmapped mounts are Linux's.
var ErrUnsupported = errors.New("idmapped mounts not supported")

// Clone needs Linux.
func Clone(src, dst string, usernsFd int, recursive, readonly bool) error { return ErrUnsupported }
