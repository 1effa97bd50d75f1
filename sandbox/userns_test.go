package sandbox

import (
	"testing"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCheckUserns(t *testing.T) {
	one := func(container, host, length uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: container, HostId: host, Length: length}}
	}
	pod := func(uids, gids []*runtimeapi.IDMapping) *runtimeapi.UserNamespace {
		return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: uids, Gids: gids}
	}
	for _, tc := range []struct {
		name string
		in   *runtimeapi.UserNamespace
		want func(error) bool
	}{
		{"no userns options is the host's user namespace", nil, func(err error) bool { return err == nil }},
		{"mode NODE is the host's user namespace", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, func(err error) bool { return err == nil }},
		{"mode NODE with mappings is invalid", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: one(0, 100000, 65536)}, errdefs.IsInvalidArgument},
		{"mode CONTAINER is invalid", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, errdefs.IsInvalidArgument},
		{"mode TARGET is invalid", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, errdefs.IsInvalidArgument},
		{"two uid mappings are invalid", pod(append(one(0, 100000, 1), one(1, 200000, 1)...), one(0, 100000, 65536)), errdefs.IsInvalidArgument},
		{"no gid mapping is invalid", pod(one(0, 100000, 65536), nil), errdefs.IsInvalidArgument},
		{"an unmapped uid 0 is invalid", pod(one(1, 100000, 65536), one(0, 100000, 65536)), errdefs.IsInvalidArgument},
		{"an unmapped gid 0 is invalid", pod(one(0, 100000, 65536), one(1000, 100000, 65536)), errdefs.IsInvalidArgument},
		{"an empty mapping is invalid", pod(one(0, 100000, 0), one(0, 100000, 65536)), errdefs.IsInvalidArgument},
		{"a mapping past the last host ID is invalid", pod(one(0, 1<<32-10, 65536), one(0, 100000, 65536)), errdefs.IsInvalidArgument},
		{"a valid mode POD is valid", pod(one(0, 100000, 65536), one(0, 100000, 65536)), func(err error) bool { return err == nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkUserns(&runtimeapi.NamespaceOption{UsernsOptions: tc.in}); !tc.want(err) {
				t.Errorf("checkUserns: %v", err)
			}
		})
	}
}

func TestOnlyModePODHasMappings(t *testing.T) {
	cfg := func(opts *runtimeapi.UserNamespace) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: opts}}}}
	}
	m := []*runtimeapi.IDMapping{{HostId: 100000, Length: 65536}}
	for _, tc := range []struct {
		name string
		cfg  *runtimeapi.PodSandboxConfig
		want bool
	}{
		{"no config", &runtimeapi.PodSandboxConfig{}, false},
		{"no userns options (whose zero mode would be POD)", cfg(nil), false},
		{"mode NODE", cfg(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}), false},
		{"mode POD", cfg(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if uid, gid := usernsMappings(tc.cfg); (uid != nil && gid != nil) != tc.want {
				t.Errorf("usernsMappings: %v, %v", uid, gid)
			}
		})
	}
}

func TestModePODWithAHostNamespaceIsInvalid(t *testing.T) {
	userns := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
		Uids: []*runtimeapi.IDMapping{{HostId: 100000, Length: 65536}},
		Gids: []*runtimeapi.IDMapping{{HostId: 100000, Length: 65536}}}
	for _, tc := range []struct {
		name string
		opts *runtimeapi.NamespaceOption
	}{
		{"the host's network", &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, UsernsOptions: userns}},
		{"the host's IPC", &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE, UsernsOptions: userns}},
		{"the host's PID namespace", &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE, UsernsOptions: userns}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkUserns(tc.opts); !errdefs.IsInvalidArgument(err) {
				t.Errorf("checkUserns: %v, want InvalidArgument", err)
			}
		})
	}
}

func TestIDMappedMountsMustUseThePodsMappingsAndPrivatePropagation(t *testing.T) {
	pm := &runtimeapi.IDMapping{HostId: 100000, Length: 65536}
	pod := podView{UserNS: "/pins/user", UIDMap: pm, GIDMap: pm}
	same := []*runtimeapi.IDMapping{{HostId: 100000, Length: 65536}}
	other := []*runtimeapi.IDMapping{{HostId: 200000, Length: 65536}}
	for _, tc := range []struct {
		name string
		m    *runtimeapi.Mount
		pod  podView
		ok   bool
	}{
		{"the pod's mappings, private, are made", &runtimeapi.Mount{UidMappings: same, GidMappings: same}, pod, true},
		{"in a pod in the host's user namespace they are invalid", &runtimeapi.Mount{UidMappings: same, GidMappings: same}, podView{}, false},
		{"a uid mapping other than the pod's is invalid", &runtimeapi.Mount{UidMappings: other, GidMappings: same}, pod, false},
		{"a missing gid mapping is invalid", &runtimeapi.Mount{UidMappings: same}, pod, false},
		{"host-to-container propagation is invalid", &runtimeapi.Mount{UidMappings: same, GidMappings: same,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, pod, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkMountMappings(tc.m, tc.pod)
			if tc.ok && err != nil || !tc.ok && !errdefs.IsInvalidArgument(err) {
				t.Errorf("checkMountMappings: %v", err)
			}
		})
	}
}
