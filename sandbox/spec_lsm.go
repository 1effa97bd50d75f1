package sandbox

// AppArmor and SELinux, which Berth does not apply: what a pod or
// container asks of them is either harmless where the host has no such
// module, or refused, never silently dropped where it would matter.
//
//   - AppArmor. Unconfined (or the deprecated apparmor_profile
//     "unconfined") runs without a profile, as asked. RuntimeDefault (or
//     "runtime/default") runs without one on a host without AppArmor,
//     where no runtime could confine anything, and is Unimplemented on a
//     host with it: containerd and CRI-O load their default profile there,
//     and running unconfined would pretend. kubelet sends neither for a
//     pod that asks nothing of AppArmor. A Localhost profile (or "localhost/<name>") is FailedPrecondition on
//     a host without AppArmor, as containerd refuses it ("apparmor is not
//     supported"; CRI-O ignores it), and Unimplemented on a host with it,
//     since Berth would not load it. A malformed request (a LocalhostRef
//     on another type, an empty Localhost name, an unknown deprecated
//     string) is InvalidArgument, as containerd's parsing makes it.
//   - SELinux. selinux_options on a host where SELinux is not enabled are
//     ignored, as containerd and CRI-O ignore them (go-selinux labels
//     nothing there, and both runtimes also ignore them on any host unless
//     their enable_selinux/selinux setting is on). On a host where SELinux
//     is enabled they are Unimplemented: Berth does not label processes or
//     volumes.

import (
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The host checks, variables so that unit tests can pretend either host.
var (
	apparmorEnabled = func() bool {
		b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
		return err == nil && strings.HasPrefix(string(b), "Y")
	}
	selinuxEnabled = func() bool {
		_, err := os.Stat("/sys/fs/selinux/enforce")
		return err == nil
	}
)

// checkLSM refuses the AppArmor and SELinux requests Berth cannot honour.
// deprecated is the container's apparmor_profile string ("" for a pod).
func checkLSM(apparmor *runtimeapi.SecurityProfile, deprecated string, selinux *runtimeapi.SELinuxOption) error {
	if err := checkAppArmor(apparmor, deprecated); err != nil {
		return err
	}
	if selinux.GetUser() != "" || selinux.GetRole() != "" || selinux.GetType() != "" || selinux.GetLevel() != "" {
		if selinuxEnabled() {
			return fmt.Errorf("selinux_options %v: Berth does not apply SELinux labels: %w", selinux, errdefs.ErrNotImplemented)
		}
	}
	return nil
}

func checkAppArmor(sp *runtimeapi.SecurityProfile, deprecated string) error {
	typ, name := sp.GetProfileType(), sp.GetLocalhostRef()
	if sp == nil {
		switch {
		case deprecated == "", deprecated == "unconfined":
			return nil
		case deprecated == "runtime/default":
			typ = runtimeapi.SecurityProfile_RuntimeDefault
		case strings.HasPrefix(deprecated, "localhost/"):
			typ, name = runtimeapi.SecurityProfile_Localhost, strings.TrimPrefix(deprecated, "localhost/")
		default:
			return fmt.Errorf("apparmor_profile %q: want runtime/default, unconfined or localhost/<name>: %w", deprecated, errdefs.ErrInvalidArgument)
		}
	}
	switch typ {
	case runtimeapi.SecurityProfile_RuntimeDefault, runtimeapi.SecurityProfile_Unconfined:
		if name != "" {
			return fmt.Errorf("apparmor: localhost_ref %q is only for profile type Localhost, not %v: %w", name, typ, errdefs.ErrInvalidArgument)
		}
		if typ == runtimeapi.SecurityProfile_RuntimeDefault && apparmorEnabled() {
			return fmt.Errorf("apparmor profile RuntimeDefault: Berth does not apply AppArmor profiles on this AppArmor host: %w", errdefs.ErrNotImplemented)
		}
		return nil
	case runtimeapi.SecurityProfile_Localhost:
	default:
		return fmt.Errorf("apparmor: unknown profile type %v: %w", typ, errdefs.ErrInvalidArgument)
	}
	name = strings.TrimPrefix(name, "localhost/")
	if name == "" {
		return fmt.Errorf("apparmor: a Localhost profile needs a name: %w", errdefs.ErrInvalidArgument)
	}
	if !apparmorEnabled() {
		return fmt.Errorf("apparmor profile %q: AppArmor is not enabled on this host: %w", name, errdefs.ErrFailedPrecondition)
	}
	return fmt.Errorf("apparmor profile %q: Berth does not apply AppArmor profiles: %w", name, errdefs.ErrNotImplemented)
}
