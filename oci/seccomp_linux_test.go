package oci

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCompileSeccompRefusesWhatNoFilterCanDo(t *testing.T) {
	errno := uint(13)
	allowAll := func(calls ...specs.LinuxSyscall) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}, Syscalls: calls}
	}
	for _, tc := range []struct {
		name string
		s    *specs.LinuxSeccomp
		ok   bool
	}{
		{"no filter compiles to nothing", nil, true},
		{"an errno rule with arguments compiles", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &errno,
			Args: []specs.LinuxSeccompArg{{Index: 1, Value: 0o700, Op: specs.OpEqualTo}}}), true},
		{"two conditions on one argument compile", allowAll(specs.LinuxSyscall{Names: []string{"personality"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}, {Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo}}}), true},
		{"SCMP_ACT_LOG compiles", allowAll(specs.LinuxSyscall{Names: []string{"getpid"}, Action: specs.ActLog}), true},
		{"a rule with the default action is skipped", allowAll(specs.LinuxSyscall{Names: []string{"getpid"}, Action: specs.ActAllow}), true},
		{"an unknown syscall name is skipped", allowAll(specs.LinuxSyscall{Names: []string{"no_such_call"}, Action: specs.ActErrno}), true},
		{"SCMP_ACT_NOTIFY is refused", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActNotify}), false},
		{"a listener path is refused", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock"}, false},
		{"an unknown action is refused", &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"}, false},
		{"an unknown operator is refused", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_ABOUT"}}}), false},
		{"an argument index past 5 is refused", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}), false},
		{"an unknown architecture is refused", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}}, false},
		{"an unknown flag is refused", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NOPE"}}, false},
	} {
		prog, err := compileSeccomp(tc.s)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.ok && tc.s != nil && (prog == nil || len(prog.Insns) == 0 || len(prog.Insns)%8 != 0):
			t.Errorf("%s: program %v, want whole sock_filter instructions", tc.name, prog)
		case !tc.ok && !errors.Is(err, errdefs.ErrInvalidArgument):
			t.Errorf("%s: %v, want InvalidArgument", tc.name, err)
		}
	}
}

// BenchmarkCompileSeccompDefaultProfile is what a RuntimeDefault
// container's create pays for its filter (once in berthd's validation,
// once in the monitor).
func BenchmarkCompileSeccompDefaultProfile(b *testing.B) {
	s := DefaultSpec("bench")
	prof, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := compileSeccomp(prof); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTheBundlesSeccompProgramServesOnlyItsOwnProfile(t *testing.T) {
	bundle := t.TempDir()
	errno := uint(13)
	a := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &errno}}}
	b := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "rmdir"}, Action: specs.ActErrno}}}
	if err := WriteSeccompProgram(bundle, a); err != nil {
		t.Fatal(err)
	}
	want, err := compileSeccomp(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bundleSeccomp(bundle, a)
	if err != nil || string(got.Insns) != string(want.Insns) || got.Flags != want.Flags {
		t.Errorf("the bundle's program for its own profile: %v, %v; want the compiled one", got, err)
	}
	other, err := bundleSeccomp(bundle, b)
	if err != nil || string(other.Insns) == string(want.Insns) || other.Flags == 0 {
		t.Errorf("another profile got the bundle's program (%v, %v); want its own, with its flags", other, err)
	}
}
