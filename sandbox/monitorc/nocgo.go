//go:build !cgo

package monitorc

// Available says whether the C monitor is built into this binary: not
// without cgo, where monitors stay Go for their whole life.
const Available = false
