// Package monitorc is the C half of a container's monitor: once the Go
// monitor (sandbox.MonitorMain) has created the container, it execs the
// berthd binary again as "berth-monitor-c", and the C constructor in
// monitor.c takes over before the Go runtime starts, for the rest of the
// container's life. Import it for that side effect (package sandbox does).
//
// Why: a Go process idling with its runtime, its threads and the pages of
// the berthd binary it touched costs about 16 MiB of RSS per container; the
// C program about 1 MiB. Creating the container needs Go (the built-in
// runtime in package oci, or runc's command line and console socket), so
// the Go monitor stays for that, as CRI-O's conmon is C and the runtime it
// calls is not.
//
// What carries over execve: the PID (berthd's handle on its monitor and the
// pid in status.json do not change), being a child subreaper, the children
// (the container's process, and what was reparented to the monitor), the
// working directory (the container's state directory, where m.sock and
// exit.json are) and the fds named here. The C monitor then does steps 4
// and 5 of the monitor (see sandbox/monitor.go) with the same files and
// protocol: the CRI log, "reopen" on m.sock, reaping, the bounded drain,
// the OOM-kill counter and exit.json.
//
// The hand-over, in the environment of the exec:
//
//	_BERTH_MONITOR_C    "key=fd,..." with pid (the container's process),
//	                    stdout, stderr or console (output), stdin (the write
//	                    end held open for the container's life), log (the
//	                    open CRI log), control (m.sock, listening), drain_ms
//	_BERTH_MONITOR_LOG      the log path beneath the log directory, reopened on request
//	_BERTH_MONITOR_LOG_DIR  the pod's log directory
//	_BERTH_MONITOR_OOM  the cgroup file with the "oom_kill N" line
//
// argv is "berth-monitor-c <state dir>": the role for ps and tests, and the
// directory so that a leftover monitor is found by where it belongs.
//
// The C code is structured for CRI Attach (see monitor.c): the stdin and
// console fds are already handed over for it.
package monitorc

// Role is argv[0] of the C monitor.
const Role = "berth-monitor-c"
