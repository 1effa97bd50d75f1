//go:build !linux

package oci

import (
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Containers need Linux; elsewhere the package only builds specs.

func newBuiltin(name string, opts Options) (Runtime, error) {
	return nil, fmt.Errorf("builtin runtime: %w", errdefs.ErrNotImplemented)
}

func newExternal(name string, h Handler, opts Options) (Runtime, error) {
	return nil, fmt.Errorf("oci runtime: %w", errdefs.ErrNotImplemented)
}

func defaultNamespaces() []specs.LinuxNamespace {
	return []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
	}
}

// SealedExe needs memfd_create; elsewhere it fails.
func SealedExe(binary string) (string, error) {
	return "", fmt.Errorf("sealed binary: %w", errdefs.ErrNotImplemented)
}

// InitMain is the "berth-init" role; it needs Linux.
func InitMain() { panic("berth-init: needs Linux") }

// ExecMain is the "berth-exec" role; it needs Linux.
func ExecMain() { panic("berth-exec: needs Linux") }

// HugetlbAvailable is false where there are no cgroups.
func HugetlbAvailable() bool { return false }

// SwapAccounting is false where there are no cgroups.
func SwapAccounting() bool { return false }

// UnifiedMemory is false where there are no cgroups.
func UnifiedMemory() bool { return false }

// SeccompEnforced is false: there is no built-in runtime here.
const SeccompEnforced = false

// ValidateSeccomp refuses any filter where none can be compiled.
func ValidateSeccomp(s *specs.LinuxSeccomp) error {
	if s == nil {
		return nil
	}
	return fmt.Errorf("seccomp: %w", errdefs.ErrNotImplemented)
}

// WriteSeccompProgram refuses any filter where none can be compiled.
func WriteSeccompProgram(bundle string, s *specs.LinuxSeccomp) error { return ValidateSeccomp(s) }
