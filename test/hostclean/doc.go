// Package hostclean finds and removes what a container runtime left on the
// host: mounts below its directories and cgroups below its cgroup parent.
// The integration test harness uses it to report and remove a berthd's
// leaks, and the benchmark to clean up after berthd and containerd, so
// both clean the same way and a fix to one is a fix to both.
//
// Both jobs have the same traps, which is why they live here once:
//
//   - Mounts nest: a container's rootfs holds /proc, /dev and /sys, and a
//     parent cannot be detached before its children are seen to go, so
//     mounts are handled deepest first and detaching is retried.
//   - A cgroup exists once per hierarchy: on a cgroup v1 or hybrid host a
//     pod's cgroup parent is a directory in every controller's hierarchy
//     (and in the unified one), on a pure v2 host one directory.
//   - A cgroup cannot be removed while anything is in it, nor while its
//     last process is still exiting (rmdir fails with EBUSY for a moment),
//     and a process in a frozen cgroup does not die of SIGKILL until it is
//     thawed. A leak check that only calls rmdir therefore fails on
//     exactly the leaks it should clean.
package hostclean
