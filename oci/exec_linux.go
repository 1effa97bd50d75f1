package oci

import (
	"context"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func (r *builtin) Exec(ctx context.Context, id string, proc *specs.Process, io IO) (Process, error) {
	return nil, errdefs.ErrNotImplemented
}

// ExecMain is the "berth-exec" role: a process joining a running container
// before it execs the requested program. It never returns.
func ExecMain() { panic("berth-exec: not implemented") }
