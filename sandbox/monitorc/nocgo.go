//go:build !cgo

package monitorc

// Available says whether the C monitor is built into this binary: not
// without cgo. Only package sandbox and its tests build so; berthd does
// not (oci/nsenter needs cgo too).
const Available = false
