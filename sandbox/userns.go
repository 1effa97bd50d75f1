package sandbox

// User namespaces (Kubernetes hostUsers: false) as the CRI describes them:
// NamespaceOption.userns_options, mode NODE (the host's user namespace, as
// an absent userns_options is) or POD (a new user namespace for the whole
// pod, with the one uid and one gid mapping kubelet picked). CONTAINER and
// TARGET are not modes a user namespace can have.
//
// What exists: the request is checked as the CRI and containerd check it,
// so a bad one is InvalidArgument and NODE runs. What does not, yet: mode
// POD itself, refused with Unimplemented (never run in the host's user
// namespace while kubelet believes it is isolated). It needs the pod's
// user namespace created first, by a child process cloned with it (a
// multithreaded Go process can neither unshare nor join one), and the
// pod's network, IPC and UTS namespaces created inside it so that they
// are owned by it; the built-in runtime's init joining it before the Go
// runtime starts (as oci/nsenter joins namespaces for execs); and the
// rootfs layers and volumes mounted idmapped (mount_setattr
// MOUNT_ATTR_IDMAP; Linux 6.x has it for overlayfs and tmpfs), so the
// image's files are root's inside without a chown copy. Runtime handlers
// report user_namespaces false until then.

import (
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// checkUserns validates a pod's userns_options.
func checkUserns(opts *runtimeapi.UserNamespace) error {
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
	return fmt.Errorf("user namespaces for pods (userns_options mode POD): %w", errdefs.ErrNotImplemented)
}
