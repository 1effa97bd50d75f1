package sandbox

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestAppArmorAndSELinuxRequestsAreRefusedWhereBerthCannotHonourThem(t *testing.T) {
	defer func(a, s func() bool) { apparmorEnabled, selinuxEnabled = a, s }(apparmorEnabled, selinuxEnabled)
	profile := func(typ runtimeapi.SecurityProfile_ProfileType, ref string) *runtimeapi.SecurityProfile {
		return &runtimeapi.SecurityProfile{ProfileType: typ, LocalhostRef: ref}
	}
	label := &runtimeapi.SELinuxOption{Type: "container_t", Level: "s0:c1,c2"}
	for _, tc := range []struct {
		name       string
		apparmor   bool
		selinux    bool
		sp         *runtimeapi.SecurityProfile
		deprecated string
		label      *runtimeapi.SELinuxOption
		want       error
	}{
		{"nothing asked runs", false, false, nil, "", nil, nil},
		{"AppArmor RuntimeDefault runs without AppArmor", false, false, profile(runtimeapi.SecurityProfile_RuntimeDefault, ""), "", nil, nil},
		{"AppArmor Unconfined runs without AppArmor", false, false, profile(runtimeapi.SecurityProfile_Unconfined, ""), "", nil, nil},
		{"AppArmor Unconfined runs with AppArmor", true, false, profile(runtimeapi.SecurityProfile_Unconfined, ""), "", nil, nil},
		{"AppArmor RuntimeDefault with AppArmor is Unimplemented, not run unconfined", true, false, profile(runtimeapi.SecurityProfile_RuntimeDefault, ""), "", nil, errdefs.ErrNotImplemented},
		{"the deprecated runtime/default with AppArmor is Unimplemented", true, false, nil, "runtime/default", nil, errdefs.ErrNotImplemented},
		{"the deprecated runtime/default runs", false, false, nil, "runtime/default", nil, nil},
		{"the deprecated unconfined runs", false, false, nil, "unconfined", nil, nil},
		{"a Localhost profile without AppArmor is FailedPrecondition", false, false, profile(runtimeapi.SecurityProfile_Localhost, "my-profile"), "", nil, errdefs.ErrFailedPrecondition},
		{"a deprecated localhost/ profile without AppArmor is FailedPrecondition", false, false, nil, "localhost/my-profile", nil, errdefs.ErrFailedPrecondition},
		{"a Localhost profile with AppArmor is Unimplemented", true, false, profile(runtimeapi.SecurityProfile_Localhost, "my-profile"), "", nil, errdefs.ErrNotImplemented},
		{"the structured field wins over the deprecated one", false, false, profile(runtimeapi.SecurityProfile_RuntimeDefault, ""), "localhost/x", nil, nil},
		{"a Localhost profile without a name is InvalidArgument", false, false, profile(runtimeapi.SecurityProfile_Localhost, ""), "", nil, errdefs.ErrInvalidArgument},
		{"a LocalhostRef on RuntimeDefault is InvalidArgument", false, false, profile(runtimeapi.SecurityProfile_RuntimeDefault, "x"), "", nil, errdefs.ErrInvalidArgument},
		{"an unknown deprecated string is InvalidArgument", false, false, nil, "tight", nil, errdefs.ErrInvalidArgument},
		{"SELinux options without SELinux are ignored, as containerd and CRI-O do", false, false, nil, "", label, nil},
		{"SELinux options with SELinux are Unimplemented", false, true, nil, "", label, errdefs.ErrNotImplemented},
		{"empty SELinux options with SELinux run", false, true, nil, "", &runtimeapi.SELinuxOption{}, nil},
	} {
		apparmorEnabled = func() bool { return tc.apparmor }
		selinuxEnabled = func() bool { return tc.selinux }
		err := checkLSM(tc.sp, tc.deprecated, tc.label)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
