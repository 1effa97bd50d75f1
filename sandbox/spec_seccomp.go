package sandbox

// The container's seccomp filter, as containerd's CRI plugin and CRI-O
// choose it:
//
//   - security_context.seccomp (a SecurityProfile): RuntimeDefault is the
//     moby/containerd default profile, its architecture and capability
//     conditions evaluated for this container's bounding set; Unconfined
//     is none; Localhost is a JSON profile (OCI or Docker format) at an
//     absolute path. A LocalhostRef with any other type is refused.
//   - without it, the deprecated seccomp_profile_path: "runtime/default"
//     and "docker/default", "unconfined", "localhost/<absolute path>";
//     "" is unconfined, as the CRI defines.
//   - a privileged container is unconfined unless a profile was asked for.
//
// The result goes into the spec (Linux.Seccomp), so runc and crun enforce
// the same filter the built-in runtime compiles from it. It is compiled
// here once as well (oci.ValidateSeccomp), so a profile no runtime could
// load fails CreateContainer with InvalidArgument before anything exists.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-runtime/berth/oci"
	"github.com/containerd/errdefs"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// setSeccomp sets s.Linux.Seccomp from the security context. It runs after
// the capabilities are final: the default profile depends on them.
func setSeccomp(s *specs.Spec, sc *runtimeapi.LinuxContainerSecurityContext) error {
	typ, ref, err := seccompRequest(sc)
	if err != nil {
		return err
	}
	var prof *specs.LinuxSeccomp
	switch typ {
	case runtimeapi.SecurityProfile_Unconfined:
		return nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		if prof, err = seccomp.GetDefaultProfile(s); err != nil {
			return fmt.Errorf("seccomp default profile: %w", err)
		}
	case runtimeapi.SecurityProfile_Localhost:
		if prof, err = localhostSeccomp(s, ref); err != nil {
			return err
		}
	}
	if err := oci.ValidateSeccomp(prof); err != nil {
		if ref != "" {
			return fmt.Errorf("seccomp profile %s: %w", ref, err)
		}
		return fmt.Errorf("seccomp default profile: %w", err)
	}
	s.Linux.Seccomp = prof
	return nil
}

// seccompRequest is the profile the context asks for, Unconfined when it
// asks for none (or is privileged and asks for none).
func seccompRequest(sc *runtimeapi.LinuxContainerSecurityContext) (runtimeapi.SecurityProfile_ProfileType, string, error) {
	if sp := sc.GetSeccomp(); sp != nil {
		if sp.GetLocalhostRef() != "" && sp.GetProfileType() != runtimeapi.SecurityProfile_Localhost {
			return 0, "", fmt.Errorf("seccomp: localhost_ref %q is only for profile type Localhost, not %v: %w",
				sp.GetLocalhostRef(), sp.GetProfileType(), errdefs.ErrInvalidArgument)
		}
		switch sp.GetProfileType() {
		case runtimeapi.SecurityProfile_RuntimeDefault, runtimeapi.SecurityProfile_Unconfined:
			return sp.GetProfileType(), "", nil
		case runtimeapi.SecurityProfile_Localhost:
			// Trimmed as containerd does, though the field should not
			// carry the prefix.
			return sp.GetProfileType(), strings.TrimPrefix(sp.GetLocalhostRef(), "localhost/"), nil
		}
		return 0, "", fmt.Errorf("seccomp: unknown profile type %v: %w", sp.GetProfileType(), errdefs.ErrInvalidArgument)
	}
	switch p := sc.GetSeccompProfilePath(); {
	case p == "" || p == "unconfined":
		return runtimeapi.SecurityProfile_Unconfined, "", nil
	case p == "runtime/default" || p == "docker/default":
		return runtimeapi.SecurityProfile_RuntimeDefault, "", nil
	case strings.HasPrefix(p, "localhost/"):
		return runtimeapi.SecurityProfile_Localhost, strings.TrimPrefix(p, "localhost/"), nil
	default:
		return 0, "", fmt.Errorf("seccomp_profile_path %q: want runtime/default, docker/default, unconfined or localhost/<path>: %w",
			p, errdefs.ErrInvalidArgument)
	}
}

// localhostSeccomp reads the profile at path (OCI or Docker JSON format,
// whose includes and excludes are evaluated for s).
func localhostSeccomp(s *specs.Spec, path string) (*specs.LinuxSeccomp, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("seccomp profile %q: the path must be absolute: %w", path, errdefs.ErrInvalidArgument)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	prof, err := seccomp.LoadProfile(string(b), s)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	if prof == nil {
		return nil, fmt.Errorf("seccomp profile %s: no defaultAction and no syscalls: %w", path, errdefs.ErrInvalidArgument)
	}
	return prof, nil
}
