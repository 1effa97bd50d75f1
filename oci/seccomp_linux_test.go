package oci

import (
	"encoding/binary"
	"errors"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
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

// runSeccomp runs prog, as the kernel would, on a syscall numbered nr
// made by architecture arch, with the arguments args, and returns the
// filter's verdict. golang.org/x/net/bpf's interpreter loads words
// big-endian (network order) where seccomp loads them in the host's
// order, so seccomp_data is written word by word in its order.
func runSeccomp(t *testing.T, prog []byte, arch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(prog)/8)
	for i := range raw {
		in := prog[8*i:]
		raw[i] = bpf.RawInstruction{Op: binary.NativeEndian.Uint16(in), Jt: in[2], Jf: in[3], K: binary.NativeEndian.Uint32(in[4:])}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the program does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

func TestSyscallsNewerThanTheProfileGetENOSYSAsUnderRunc(t *testing.T) {
	def, err := seccomp.GetDefaultProfile(DefaultSpec("enosys"))
	if err != nil {
		t.Fatal(err)
	}
	errno := uint(13)
	allowAll := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: def.Architectures,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &errno}}}
	amd64Only := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "write", "futex_requeue"}, Action: specs.ActAllow}}}
	const (
		x86_64 = unix.AUDIT_ARCH_X86_64
		i386   = unix.AUDIT_ARCH_I386
		x32    = x32SyscallBit
		allow  = unix.SECCOMP_RET_ALLOW
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys = retErrnoENOSYS
	)
	// The default profile's highest syscalls that Debian 12's libseccomp
	// knows are futex_requeue (456 on x86_64 and i386) and, for x32,
	// pwritev2 (547 with bit 30); a newer libseccomp only moves the line.
	for _, tc := range []struct {
		name     string
		s        *specs.LinuxSeccomp
		arch, nr uint32
		args     []uint64
		want     uint32
	}{
		{"a syscall above the default profile's highest is ENOSYS (x86_64 mseal)", def, x86_64, 462, nil, enosys},
		{"an unknown number far above is ENOSYS", def, x86_64, 9999, nil, enosys},
		{"the profile's own allow rules are untouched (x86_64 fchmodat2)", def, x86_64, 452, nil, allow},
		{"the profile's highest syscall is its rule's (futex_requeue)", def, x86_64, 456, nil, allow},
		{"a syscall the profile leaves out keeps EPERM (x86_64 keyctl)", def, x86_64, 250, nil, eperm},
		{"argument conditions are untouched (personality(0) allowed)", def, x86_64, 135, []uint64{0}, allow},
		{"argument conditions are untouched (personality(1) EPERM)", def, x86_64, 135, []uint64{1}, eperm},
		{"i386 above its highest is ENOSYS (mseal)", def, i386, 462, nil, enosys},
		{"i386 keyctl keeps EPERM", def, i386, 288, nil, eperm},
		{"i386 write is allowed", def, i386, 4, nil, allow},
		{"x32 is compared with x32's highest: mseal is below it, EPERM", def, x86_64, x32 | 462, nil, eperm},
		{"x32 above its highest is ENOSYS", def, x86_64, x32 | 600, nil, enosys},
		{"x32 write is allowed", def, x86_64, x32 | 1, nil, allow},
		{"an architecture outside the profile is not stubbed", def, unix.AUDIT_ARCH_AARCH64, 462, nil, unix.SECCOMP_RET_KILL_THREAD},
		{"an allow-by-default profile gets no stub", allowAll, x86_64, 462, nil, allow},
		{"an allow-by-default profile keeps its rules", allowAll, x86_64, 83, nil, unix.SECCOMP_RET_ERRNO | 13},
		{"an x86_64-only profile leaves x32 calls to the filter", amd64Only, x86_64, x32 | 600, nil, unix.SECCOMP_RET_KILL_THREAD},
		{"an x86_64-only profile stubs x86_64", amd64Only, x86_64, 457, nil, enosys},
	} {
		prog, err := compileSeccomp(tc.s)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := runSeccomp(t, prog.Insns, tc.arch, tc.nr, tc.args...); got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, got, tc.want)
		}
	}
}
