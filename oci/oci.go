package oci

import (
	"fmt"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
)

// Options configure the runtimes.
type Options struct {
	// StateDir is where runtimes keep per-container state
	// (<state>/runtime/<handler>/<id>).
	StateDir string
	// Handlers maps CRI runtime handler names to runtimes; "" is the default.
	Handlers map[string]Handler
	// CgroupDriver is "cgroupfs" or "systemd".
	CgroupDriver string
	Log          *zap.Logger
}

// New returns one Runtime per configured handler.
func New(opts Options) (map[string]Runtime, error) {
	out := make(map[string]Runtime, len(opts.Handlers))
	for name, h := range opts.Handlers {
		switch h.Type {
		case "builtin", "oci":
			out[name] = unimplemented{}
		default:
			return nil, fmt.Errorf("runtime handler %q: type %q: %w", name, h.Type, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}

// InitMain is the "berth-init" role: a container's first process before it
// execs the user program. It never returns.
func InitMain() { panic("berth-init: not implemented") }

// ExecMain is the "berth-exec" role: a process joining a running container
// before it execs the requested program. It never returns.
func ExecMain() { panic("berth-exec: not implemented") }
