package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestBuildSpecChoosesTheSeccompProfileAsContainerdDoes(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "deny-mkdir.json")
	os.WriteFile(local, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`), 0o644)
	docker := filepath.Join(dir, "docker.json")
	// Docker's format: a rule for CAP_SYS_ADMIN holders only.
	os.WriteFile(docker, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
		{"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
		{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`), 0o644)
	profile := func(typ runtimeapi.SecurityProfile_ProfileType, ref string) *runtimeapi.SecurityProfile {
		return &runtimeapi.SecurityProfile{ProfileType: typ, LocalhostRef: ref}
	}
	allows := func(s *specs.LinuxSeccomp, name string) bool {
		for _, c := range s.Syscalls {
			if c.Action == specs.ActAllow && slices.Contains(c.Names, name) {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		name  string
		sc    *runtimeapi.LinuxContainerSecurityContext
		pod   bool // a privileged pod
		check func(*specs.LinuxSeccomp) bool
		err   bool
	}{
		{name: "no field is unconfined", sc: &runtimeapi.LinuxContainerSecurityContext{},
			check: func(s *specs.LinuxSeccomp) bool { return s == nil }},
		{name: "Unconfined is none", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Unconfined, "")},
			check: func(s *specs.LinuxSeccomp) bool { return s == nil }},
		{name: "RuntimeDefault is the moby profile for x86_64 and its compat ABIs", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_RuntimeDefault, "")},
			check: func(s *specs.LinuxSeccomp) bool {
				return s != nil && s.DefaultAction == specs.ActErrno && slices.Contains(s.Architectures, specs.ArchX32) &&
					slices.Contains(s.Architectures, specs.ArchX86) && allows(s, "read") && !allows(s, "mount")
			}},
		{name: "RuntimeDefault follows the capabilities", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_RuntimeDefault, ""),
			Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}}},
			check: func(s *specs.LinuxSeccomp) bool { return allows(s, "mount") }},
		{name: "the deprecated docker/default is RuntimeDefault", sc: &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "docker/default"},
			check: func(s *specs.LinuxSeccomp) bool { return s != nil && allows(s, "read") }},
		{name: "the deprecated unconfined is none", sc: &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "unconfined"},
			check: func(s *specs.LinuxSeccomp) bool { return s == nil }},
		{name: "the field wins over the deprecated path", sc: &runtimeapi.LinuxContainerSecurityContext{
			Seccomp: profile(runtimeapi.SecurityProfile_Unconfined, ""), SeccompProfilePath: "runtime/default"},
			check: func(s *specs.LinuxSeccomp) bool { return s == nil }},
		{name: "Localhost reads the OCI format", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, local)},
			check: func(s *specs.LinuxSeccomp) bool {
				return s != nil && len(s.Syscalls) == 1 && *s.Syscalls[0].ErrnoRet == 13
			}},
		{name: "the deprecated localhost/ path reads the file", sc: &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + local},
			check: func(s *specs.LinuxSeccomp) bool { return s != nil && len(s.Syscalls) == 1 }},
		{name: "Docker's includes are evaluated for the container", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, docker)},
			check: func(s *specs.LinuxSeccomp) bool { return allows(s, "getpid") && !allows(s, "mount") }},
		{name: "privileged without a profile is unconfined", pod: true, sc: &runtimeapi.LinuxContainerSecurityContext{Privileged: true},
			check: func(s *specs.LinuxSeccomp) bool { return s == nil }},
		{name: "privileged asking for RuntimeDefault gets it, with its capabilities' rules", pod: true,
			sc:    &runtimeapi.LinuxContainerSecurityContext{Privileged: true, Seccomp: profile(runtimeapi.SecurityProfile_RuntimeDefault, "")},
			check: func(s *specs.LinuxSeccomp) bool { return s != nil && allows(s, "mount") }},
		{name: "a LocalhostRef on another type is refused", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_RuntimeDefault, local)}, err: true},
		{name: "a relative Localhost path is refused", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "x.json")}, err: true},
		{name: "an unknown deprecated path is refused", sc: &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "strict"}, err: true},
		{name: "an empty file is refused", sc: &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/dev/null")}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Pod.Privileged = tc.pod
			in.Config.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: tc.sc}
			s, err := buildSpec(in)
			if tc.err {
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("err = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s.Linux.Seccomp) {
				t.Errorf("seccomp %+v", s.Linux.Seccomp)
			}
		})
	}
}
