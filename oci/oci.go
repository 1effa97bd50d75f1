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
	// BinaryPath is the berthd binary the builtin runtime re-executes for
	// its init and exec roles; empty means /proc/self/exe. Tests set it to
	// a freshly built berthd.
	BinaryPath string
	Log        *zap.Logger
}

// New returns one Runtime per configured handler.
func New(opts Options) (map[string]Runtime, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	out := make(map[string]Runtime, len(opts.Handlers))
	for name, h := range opts.Handlers {
		var (
			r   Runtime
			err error
		)
		switch h.Type {
		case "builtin":
			r, err = newBuiltin(name, opts)
		case "oci":
			r, err = newExternal(name, h, opts)
		default:
			return nil, fmt.Errorf("runtime handler %q: type %q: %w", name, h.Type, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return nil, fmt.Errorf("runtime handler %q: %w", name, err)
		}
		out[name] = r
	}
	return out, nil
}

// handlerDir names a handler's directory under StateDir.
func handlerDir(name string) string {
	if name == "" {
		return "default"
	}
	return name
}
