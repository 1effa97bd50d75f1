package oci

// Placeholder until the runtimes land; removed by the runtime work.

import (
	"context"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

type unimplemented struct{}

func (unimplemented) Create(context.Context, string, string, IO) (int, error) {
	return 0, errdefs.ErrNotImplemented
}
func (unimplemented) Start(context.Context, string) error { return errdefs.ErrNotImplemented }
func (unimplemented) Kill(context.Context, string, syscall.Signal, bool) error {
	return errdefs.ErrNotImplemented
}
func (unimplemented) Exec(context.Context, string, *specs.Process, IO) (Process, error) {
	return nil, errdefs.ErrNotImplemented
}
func (unimplemented) State(context.Context, string) (State, error) {
	return State{}, errdefs.ErrNotImplemented
}
func (unimplemented) Delete(context.Context, string, bool) error { return errdefs.ErrNotImplemented }
