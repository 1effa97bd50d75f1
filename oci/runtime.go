// Package oci generates OCI runtime specs and runs OCI bundles.
//
// A Runtime runs one bundle (a directory holding config.json) as a
// container. Berth has two kinds: its built-in runtime (the default, see
// builtin_linux.go) and external OCI runtimes such as runc and crun driven
// through their command line. Both are chosen per CRI runtime handler.
//
// Who calls what: the container's monitor process (sandbox/monitor) calls
// Create, because the container's first process must be its child (or be
// reparented to it: the monitor is a child subreaper). berthd itself calls
// Start, Kill, Exec, State and Delete.
//
// Files:
//
//	spec.go              DefaultSpec (containerd's CRI defaults), ReadSpec, WriteSpec
//	builtin_linux.go     the builtin runtime: Create/Start/Kill/State/Delete
//	init_linux.go        the "berth-init" role (InitMain) and the console
//	mount_linux.go       the init's rootfs, mounts, devices, pivot_root, masked paths
//	process_linux.go     user, capabilities, no_new_privs, seccomp hook, fds, execve
//	caps_linux.go        capabilities on capset(2)/prctl(2)
//	cgroup_linux.go      cgroups through opencontainers/cgroups (v1, v2, cgroupfs, systemd)
//	exec_linux.go        Exec and the "berth-exec" role (ExecMain); oci/nsenter does the C part
//	state_linux.go       on-disk state and the container state machine
//	memfd_linux.go       the unwritable copy of berthd the roles run from (CVE-2019-5736)
//	external_linux.go    runc and crun through the OCI command line
//
// Process ownership: Create's init is the caller's child (builtin) or is
// reparented to it (external runtimes; the caller must be a subreaper), and
// the caller reaps it. Exec's Process is the runtime side of the exec: its
// Pid is the nsenter proxy (builtin) or the runtime process (runc), whose
// exit status is the program's; Signal reaches the program itself.
//
// Errors: an unknown ID is errdefs.ErrNotFound (Delete: nil), a duplicate
// Create ErrAlreadyExists, a bad bundle ErrInvalidArgument, Start of a
// container that is not created and Delete of a running one without force
// ErrFailedPrecondition, Kill of an exited container ErrNotFound. A missing
// executable fails Create and Exec (not an exit code), with runc's message:
// exec: "x": executable file not found in $PATH.
package oci

import (
	"context"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IO is what a container or exec process gets as fds 0, 1 and 2.
// A nil file means /dev/null. With a terminal (spec.Process.Terminal), the
// runtime sends the pty master over the unix socket at ConsoleSocket
// (the OCI --console-socket convention) and the three files are unused.
type IO struct {
	Stdin, Stdout, Stderr *os.File
	ConsoleSocket         string
}

// Status is the state of a container as the runtime sees it.
type Status string

const (
	StatusCreated Status = "created" // process exists, user program not started
	StatusRunning Status = "running"
	StatusStopped Status = "stopped"
)

// State is what the runtime reports about a container.
type State struct {
	ID     string
	Pid    int
	Status Status
	Bundle string
}

// Runtime runs OCI bundles. Implementations must be safe for concurrent use
// on different IDs.
type Runtime interface {
	// Create sets up the container from bundle/config.json (namespaces,
	// rootfs, mounts, cgroup and limits) and leaves its process waiting
	// before the user program; it returns that process's host PID.
	Create(ctx context.Context, id, bundle string, io IO) (pid int, err error)
	// Start lets a created container run its user program.
	Start(ctx context.Context, id string) error
	// Kill sends sig to the container's first process, or to all of its
	// processes when all is true.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Exec starts proc inside the running container and returns a handle
	// to wait for it. The caller owns io.
	Exec(ctx context.Context, id string, proc *specs.Process, io IO) (Process, error)
	// State reports the container; ErrNotFound (containerd/errdefs) if the
	// runtime has no record of it.
	State(ctx context.Context, id string) (State, error)
	// Delete removes what the runtime keeps for a stopped container (its
	// state and its cgroup). With force it kills the container first.
	// Deleting an unknown container is not an error.
	Delete(ctx context.Context, id string, force bool) error
}

// Process is an exec'd process.
type Process interface {
	Pid() int
	// Wait blocks until the process exits and returns its exit status
	// (128+signal when killed by a signal).
	Wait() (exitCode int, err error)
	// Signal sends sig to the process.
	Signal(sig syscall.Signal) error
}

// Handler is how berthd's config names a runtime for a CRI runtime handler.
type Handler struct {
	// Type is "builtin" for Berth's own runtime or "oci" for an external
	// OCI runtime binary.
	Type string `toml:"type" comment:"\"builtin\" for Berth's own runtime, \"oci\" for an external OCI runtime binary (runc, crun)"`
	// Path is the external runtime's binary (Type "oci").
	Path string `toml:"path,omitempty" comment:"path of the external runtime binary (type \"oci\" only)"`
	// Root is the external runtime's state directory (its --root); empty
	// means a directory under berthd's state dir.
	Root string `toml:"root,omitempty" comment:"state directory passed as --root to an external runtime; empty: <state>/runtime/<handler>"`
}

// Features are what a runtime can enforce beyond the basics every runtime
// has, as the CRI's RuntimeHandlerFeatures report them. A spec asking for
// a feature its runtime lacks must be refused, not run without it.
type Features struct {
	// RecursiveReadOnly: the "rro" bind mount option (mount_setattr(2)
	// with MOUNT_ATTR_RDONLY and AT_RECURSIVE) is applied.
	RecursiveReadOnly bool
	// UserNamespaces: a container joins its pod's user namespace, given by
	// path with the spec's uid and gid mappings, and its rootfs and bind
	// mounts are usable there (Berth idmaps the rootfs layers on the host;
	// see image/idmap_linux.go).
	UserNamespaces bool
}

// FeaturesOf reports rt's features; a runtime that cannot say has none.
func FeaturesOf(rt Runtime) Features {
	if f, ok := rt.(interface{ Features() Features }); ok {
		return f.Features()
	}
	return Features{}
}
