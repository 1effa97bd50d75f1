// Package nsenter joins a running container's namespaces before the Go
// runtime starts. Import it for its side effect (cmd/berthd does).
//
// A Go process cannot join a mount namespace once it has threads, and the
// Go runtime starts threads before main. So the runtime's Exec starts the
// berthd binary as the "berth-exec" role with _BERTH_NSENTER set, and the C
// constructor in nsenter.c, which runs while the process is still single
// threaded, joins the namespaces listed there:
//
//	_BERTH_NSENTER         "<type>:<fd>,..." types n(et) i(pc) u(ts) p(id) c(group) m(nt)
//	_BERTH_NSENTER_CGROUP  cgroup.procs files, one per line, to join the container's cgroups
//
// Every namespace but mount is joined first. Joining a PID namespace only
// affects children, so the constructor then forks: the parent stays behind
// as a thin proxy that forwards to the child the signals one sends to ask a
// program something (not faults: see forwarded in nsenter.c) and exits
// with its status (128+signal if it was killed); the child, now
// in the container's PID namespace, sets PR_SET_PDEATHSIG so it dies with
// the proxy, joins the cgroups, joins the mount namespace (which also moves
// its root and cwd to the container's root) and lets the Go runtime start.
// Failures are written as a JSON error message to fd 3, the runtime's sync
// pipe, which the proxy closes.
//
// With _BERTH_EXEC_C set (see exec.c) the constructor also sets up the
// process and execs the program, so the Go runtime never starts for an
// exec; oci.ExecMain does it otherwise (terminals).
//
// Outside the exec role the constructor does nothing.
package nsenter

// #cgo CFLAGS: -Wall -Wextra -Werror
import "C"
