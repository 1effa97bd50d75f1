package sandbox

// User namespaces (Kubernetes hostUsers: false) as the CRI describes them:
// NamespaceOption.userns_options, mode NODE (the host's user namespace, as
// an absent userns_options is) or POD (a new user namespace for the whole
// pod, with the one uid and one gid mapping kubelet picked). CONTAINER and
// TARGET are not modes a user namespace can have.
//
// What exists, for the built-in runtime and runc (which report
// user_namespaces true):
//   - The request is checked as the CRI and containerd check it, so a bad
//     one is InvalidArgument (also POD with the host's network, IPC or PID
//     namespace, which kubelet forbids) and NODE runs.
//   - The pod (userns_linux.go, RunPod): a child cloned with CLONE_NEWUSER
//     and the pod's other new namespaces at once (a multithreaded Go
//     process can neither unshare nor join a user namespace), so that the
//     kernel makes the user namespace first and it owns the pod's network,
//     IPC, UTS (and PID) namespaces; its uid and gid maps written by
//     os/exec, the child setting its IDs to the namespace's root (uid H on
//     the host). The user namespace is pinned at <state>/pods/<id>/ns/user
//     beside the others; berthd stays host root for the hostname,
//     loopback, sysctls and CNI (IPC sysctls are written with the thread's
//     euid set to H, the only writer the kernel allows). In PID mode POD
//     the child is berth-podinit; otherwise a berth-nsholder killed once
//     the pins exist. The pod's hostname, hosts and resolv.conf are H's.
//     Teardown, restart recovery and the crash failpoints cover the pin
//     and the containers' idmapped rootfs and volumes.
//   - Containers (CreateContainer): the spec joins the pinned user
//     namespace by path with the pod's mappings; the rootfs is an overlay
//     of idmapped clones of the image's layers (image/idmap_linux.go), its
//     upper dir H's, so the image's files are root's inside with no chown
//     copy; the container's state dirs are 0711 so that H reaches the
//     rootfs. The built-in runtime (oci/nsenter) joins the user namespace
//     first, makes the container's namespaces after it, joins the cgroups
//     as host root, then becomes the namespace's root; bind sources are
//     cloned on the host (open_tree) and moved into place, so kubelet's
//     0750 volume dirs need not be reachable by H; oom_score_adj and
//     rlimits are set from the host. Execs join the user namespace first.
//     A hostPath is bound as is: what the container's root writes there is
//     owned by H on the host. runc (1.1.5 here) joins the pinned user
//     namespace by path with the spec's mappings, and binds the rootfs
//     Berth idmapped; it cannot idmap mounts itself, and need not.
//   - Idmapped volumes: a CRI Mount with uid_mappings/gid_mappings (the
//     pod's; private propagation) is cloned on the host, idmapped through
//     the pod's user namespace (package idmap) and attached below
//     <state>/containers/<id>/idmap, which the runtime binds; unmounted at
//     removal. Elsewhere such a mount is InvalidArgument, and so is a
//     filesystem that cannot be idmapped.
//   - Tests: userns_linux_test.go here, oci/userns_linux_test.go,
//     image/idmap_linux_test.go, and test/integration/userns_test.go and
//     the userns crash test.
//
// What does not exist yet:
//   - crun (untested: Debian's 1.8.1 refuses this host's hybrid cgroups):
//     mode POD is refused with Unimplemented and it reports
//     user_namespaces false (never run in the host's user namespace while
//     kubelet believes the pod is isolated). A berthd started with
//     UsernsPodsEnv (tests only) makes such pods there, with
//     CreateContainer refused.

import (
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// checkUserns validates a pod's userns_options.
func checkUserns(nsOpts *runtimeapi.NamespaceOption) error {
	opts := nsOpts.GetUsernsOptions()
	if opts == nil {
		return nil // older kubelets: the host's user namespace
	}
	switch opts.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(opts.GetUids()) != 0 || len(opts.GetGids()) != 0 {
			return fmt.Errorf("user namespace mode NODE with uid or gid mappings: mappings are for mode POD: %w", errdefs.ErrInvalidArgument)
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return fmt.Errorf("user namespace mode %s: a pod's user namespace is POD or NODE: %w", opts.GetMode(), errdefs.ErrInvalidArgument)
	}
	for _, ids := range []struct {
		what string
		m    []*runtimeapi.IDMapping
	}{{"uid", opts.GetUids()}, {"gid", opts.GetGids()}} {
		if len(ids.m) != 1 {
			return fmt.Errorf("user namespace: %d %s mappings, want exactly one: %w", len(ids.m), ids.what, errdefs.ErrInvalidArgument)
		}
		m := ids.m[0]
		if m.GetLength() == 0 {
			return fmt.Errorf("user namespace: %s mapping of length 0: %w", ids.what, errdefs.ErrInvalidArgument)
		}
		if m.GetContainerId() != 0 {
			return fmt.Errorf("user namespace: %s mapping starts at %d, so %s 0 is unmapped: %w",
				ids.what, m.GetContainerId(), ids.what, errdefs.ErrInvalidArgument)
		}
		if uint64(m.GetHostId())+uint64(m.GetLength()) > 1<<32-1 {
			return fmt.Errorf("user namespace: %s mapping %d+%d runs past the last host ID: %w",
				ids.what, m.GetHostId(), m.GetLength(), errdefs.ErrInvalidArgument)
		}
	}
	// As kubelet validates: the host's network, IPC or PID namespace is
	// owned by the host's user namespace, so a pod cannot have both.
	for what, mode := range map[string]runtimeapi.NamespaceMode{
		"network": nsOpts.GetNetwork(), "IPC": nsOpts.GetIpc(), "PID": nsOpts.GetPid()} {
		if mode == runtimeapi.NamespaceMode_NODE {
			return fmt.Errorf("user namespace mode POD with the host's %s namespace: %w", what, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
