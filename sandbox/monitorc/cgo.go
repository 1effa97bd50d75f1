//go:build cgo

package monitorc

// #cgo CFLAGS: -Wall -Wextra -Werror -O2
import "C"

// Available says whether the C monitor is built into this binary.
const Available = true
