// Package nsenter joins a running container's namespaces before the Go
// runtime starts. Import it for its side effect (cmd/berthd does).
//
// A Go process cannot join a mount namespace once it has threads, and the
// Go runtime starts threads before main. So the runtime's Exec starts the
// berthd binary as the "berth-exec" role with _BERTH_NSENTER set, and the C
// constructor in nsenter.c, which runs while the process is still single
// threaded, joins the namespaces listed there:
//
//	_BERTH_NSENTER         "<type>:<fd>,..." types U(ser) n(et) i(pc) u(ts) p(id) c(group) m(nt)
//	_BERTH_NSENTER_CGROUP  cgroup.procs files, one per line, to join the container's cgroups
//	_BERTH_NSENTER_UNSHARE clone flags (decimal) of namespaces to make after the joins
//	_BERTH_NSENTER_INIT    set for a container's init (berth-init), not an exec
//
// Every namespace but mount is joined first, a user namespace (listed
// first) before the others, which it owns: a multithreaded Go process
// could join none of them after it. Joining a PID namespace only
// affects children, so the constructor then forks: the parent stays behind
// as a thin proxy that forwards to the child the signals one sends to ask a
// program something (not faults: see forwarded in nsenter.c) and exits
// with its status (128+signal if it was killed); the child, now
// in the container's PID namespace, sets PR_SET_PDEATHSIG so it dies with
// the proxy, joins the cgroups, joins the mount namespace (which also moves
// its root and cwd to the container's root) and lets the Go runtime start.
// Failures are written as a JSON error message to fd 3, the runtime's sync
// pipe, which the proxy closes. After a user namespace it joins the
// cgroups while it still has the host's IDs, then becomes the namespace's
// root (setgroups, setresgid, setresuid 0).
//
// A container's init in a pod's user namespace (_BERTH_NSENTER_INIT) is
// started the same way: the joins, then the new namespaces unshared, so
// that the user namespace owns them; with a new or joined PID namespace
// the parent reports the child's PID ({"type":"pid"} on fd 3) and exits,
// leaving no proxy: the init is reparented to the runtime's subreaper.
//
// With _BERTH_EXEC_C set (see exec.c) the constructor also sets up the
// process and execs the program, so the Go runtime never starts for an
// exec; oci.ExecMain does it otherwise (terminals).
//
// Without _BERTH_NSENTER the constructor does nothing.
package nsenter

// #cgo CFLAGS: -Wall -Wextra -Werror
import "C"
