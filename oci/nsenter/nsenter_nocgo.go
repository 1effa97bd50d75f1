//go:build linux && !cgo

package nsenter

// Exec into a container needs the C constructor; a berthd built without
// cgo could not join a container's mount namespace. Fail the build here,
// with this name, rather than at the first exec.
var _ = oci_nsenter_needs_cgo_set_CGO_ENABLED_1
