package sandbox

// User namespaces (Kubernetes hostUsers: false) as the CRI describes them:
// NamespaceOption.userns_options, mode NODE (the host's user namespace, as
// an absent userns_options is) or POD (a new user namespace for the whole
// pod, with the one uid and one gid mapping kubelet picked). CONTAINER and
// TARGET are not modes a user namespace can have.
//
// What exists:
//   - The request is checked as the CRI and containerd check it, so a bad
//     one is InvalidArgument (also POD with the host's network, IPC or PID
//     namespace, which kubelet forbids) and NODE runs.
//   - The pod side of mode POD (userns_linux.go, RunPod): a child cloned
//     with CLONE_NEWUSER and the pod's other new namespaces at once (a
//     multithreaded Go process can neither unshare nor join a user
//     namespace), so that the kernel makes the user namespace first and it
//     owns the pod's network, IPC, UTS (and PID) namespaces; its uid and
//     gid maps written by os/exec, the child setting its IDs to the
//     namespace's root (uid H on the host). The user namespace is pinned
//     at <state>/pods/<id>/ns/user beside the others; berthd stays host
//     root for the hostname, loopback, sysctls and CNI (IPC sysctls are
//     written with the thread's euid set to H, the only writer the kernel
//     allows). In PID mode POD the child is berth-podinit; otherwise a
//     berth-nsholder killed once the pins exist. Teardown, restart
//     recovery and the crash failpoints cover the user pin.
//   - Tests: userns_linux_test.go; in test/integration, the user
//     namespace pod test and the userns crash test.
//
// What does not exist yet, so mode POD is refused with Unimplemented on
// every handler (never run in the host's user namespace while kubelet
// believes it is isolated) and handlers report user_namespaces false; a
// berthd started with UsernsPodsEnv (tests only) runs such pods with
// CreateContainer refused:
//   - the built-in runtime's init and execs joining the pod's user
//     namespace (oci/nsenter: user first, cgroups and oom_score_adj
//     while still host root, then the pod's other namespaces);
//   - the rootfs mounted with idmapped lower layers (open_tree
//     OPEN_TREE_CLONE, mount_setattr MOUNT_ATTR_IDMAP with the pinned
//     user namespace, move_mount), upper and work owned by H, so the
//     image's files are root's inside without a chown copy; volumes with
//     CRI mount mappings idmapped the same way (still InvalidArgument);
//     the pod's hosts, hostname and resolv.conf owned by H;
//   - runc: the spec joining the pinned user namespace by path with
//     linux.uidMappings/gidMappings, binding the already idmapped mounts
//     (runc 1.1.5 cannot idmap mounts itself);
//   - Features.UserNamespaces per handler, and the Status report.

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
