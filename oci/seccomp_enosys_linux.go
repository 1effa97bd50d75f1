package oci

// The ENOSYS stub: a profile names syscalls this libseccomp may not know
// (moby's default profile allows mseal, listmount, statmount and the
// *xattrat calls, which Debian 12's libseccomp 2.5.4 cannot resolve).
// Those names are skipped, so the filter alone would give them the
// default action, EPERM, and a C library that tries a new syscall and
// falls back to an older one only on ENOSYS (glibc does this for
// fchmodat2, for example) breaks. runc and crun put a few instructions in
// front of libseccomp's program: for each architecture of the profile, a
// syscall numbered above the highest one the profile names and this
// libseccomp knows gets ENOSYS, as if the kernel were older; everything
// else goes on to the filter. Berth does the same, with the same
// decisions, so a profile behaves alike under the built-in runtime and
// under runc (runc's libcontainer/seccomp/patchbpf):
//
//   - no stub when the default action lets calls through (ALLOW, LOG,
//     TRACE: a tracer handles new syscalls itself), nor when it already
//     is ERRNO(ENOSYS);
//   - the highest number counts every name of every rule, whatever its
//     action;
//   - x86_64 and x32 share one AUDIT_ARCH: x32 calls carry bit 30 of the
//     number, so each ABI is compared with its own highest number;
//   - on s390 and s390x, syscall 0 is the multiplexer unknown numbers end
//     up as: ENOSYS too;
//   - numbers at or below the highest are left to the filter: a hole in
//     the table (a syscall the profile does not name) keeps the default
//     action.
//
// The stub is at most a few dozen instructions, so every jump is short
// and the program that follows it needs no change: classic BPF jumps are
// relative and only go forward.

import (
	"encoding/binary"
	"fmt"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

const (
	seccompDataNr   = 0 // offsetof(struct seccomp_data, nr)
	seccompDataArch = 4 // offsetof(struct seccomp_data, arch)
	x32SyscallBit   = 0x40000000
	retErrnoENOSYS  = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// stubArch is one AUDIT_ARCH of the profile and the highest syscall
// number it names for each ABI on it (0: the ABI is not in the profile).
type stubArch struct {
	audit    uint32
	max, x32 uint32
	s390     bool
}

// enosysStub is the instructions to put in front of the profile's
// program (none when the profile needs no stub).
func enosysStub(s *specs.LinuxSeccomp) ([]byte, error) {
	switch s.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
		return nil, nil
	case specs.ActErrno:
		if s.DefaultErrnoRet != nil && *s.DefaultErrnoRet == uint(unix.ENOSYS) {
			return nil, nil
		}
	}
	arches, err := stubArches(s)
	if err != nil {
		return nil, err
	}
	if len(arches) == 0 {
		return nil, nil
	}
	return assembleStub(arches)
}

// stubArches finds, for each architecture of s, the highest syscall
// number s names that this libseccomp knows.
func stubArches(s *specs.LinuxSeccomp) ([]stubArch, error) {
	byAudit := map[uint32]*stubArch{}
	for _, a := range s.Architectures {
		arch, err := seccompArch(a)
		if err != nil {
			return nil, err
		}
		var max uint32
		for _, call := range s.Syscalls {
			for _, name := range call.Names {
				nr, err := libseccomp.GetSyscallFromNameByArch(name, arch)
				if err == nil && nr > 0 && uint32(nr) > max {
					max = uint32(nr)
				}
			}
		}
		if max == 0 {
			continue // the profile names nothing for it: the filter decides
		}
		audit := seccompArches[a].audit
		sa := byAudit[audit]
		if sa == nil {
			sa = &stubArch{audit: audit, s390: a == specs.ArchS390 || a == specs.ArchS390X}
			byAudit[audit] = sa
		}
		if arch == libseccomp.ArchX32 {
			sa.x32 = max
		} else {
			sa.max = max
		}
	}
	arches := make([]stubArch, 0, len(byAudit))
	for _, sa := range byAudit {
		arches = append(arches, *sa)
	}
	sort.Slice(arches, func(i, j int) bool { return arches[i].audit < arches[j].audit })
	return arches, nil
}

// Jump targets in the stub being assembled: an instruction index, or one
// of these.
const (
	toNext   = -1 // the following instruction
	toENOSYS = -2 // the stub's last instruction, ret ERRNO(ENOSYS)
	toFilter = -3 // the first instruction after the stub
)

type stubInsn struct {
	code   uint16
	k      uint32
	jt, jf int
}

func assembleStub(arches []stubArch) ([]byte, error) {
	// The dispatch on the architecture: one jeq each, whose target is
	// patched once the section's place is known, then on to the filter.
	insns := []stubInsn{{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: seccompDataArch}}
	dispatch := make([]int, len(arches))
	for i, a := range arches {
		dispatch[i] = len(insns)
		insns = append(insns, stubInsn{code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, k: a.audit, jf: toNext})
	}
	insns = append(insns, stubInsn{code: unix.BPF_JMP | unix.BPF_JA, jt: toFilter})
	jgt := func(max uint32) stubInsn {
		return stubInsn{code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, k: max, jt: toENOSYS, jf: toFilter}
	}
	for i, a := range arches {
		insns[dispatch[i]].jt = len(insns)
		insns = append(insns, stubInsn{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: seccompDataNr})
		if a.s390 {
			insns = append(insns, stubInsn{code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, k: 0, jt: toENOSYS, jf: toNext})
		}
		jset := stubInsn{code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, k: x32SyscallBit}
		switch {
		case a.audit != unix.AUDIT_ARCH_X86_64:
			insns = append(insns, jgt(a.max))
		case a.x32 == 0: // x86_64 only: x32 calls go to the filter
			jset.jt, jset.jf = toFilter, toNext
			insns = append(insns, jset, jgt(a.max))
		case a.max == 0: // x32 only
			jset.jt, jset.jf = toNext, toFilter
			insns = append(insns, jset, jgt(a.x32))
		default:
			jset.jt, jset.jf = len(insns)+2, toNext
			insns = append(insns, jset, jgt(a.max), jgt(a.x32))
		}
	}
	insns = append(insns, stubInsn{code: unix.BPF_RET | unix.BPF_K, k: retErrnoENOSYS})
	return encodeStub(insns)
}

// encodeStub resolves the jumps and writes struct sock_filter in the
// host's byte order, as libseccomp exports its program.
func encodeStub(insns []stubInsn) ([]byte, error) {
	n := len(insns)
	target := func(pc, t int) int {
		switch t {
		case toNext:
			return pc + 1
		case toENOSYS:
			return n - 1
		case toFilter:
			return n
		}
		return t
	}
	b := make([]byte, 0, 8*n)
	for pc, in := range insns {
		var jt, jf uint8
		k := in.k
		if in.code&0x07 == unix.BPF_JMP {
			t := target(pc, in.jt) - pc - 1
			if in.code == unix.BPF_JMP|unix.BPF_JA {
				k = uint32(t)
			} else {
				f := target(pc, in.jf) - pc - 1
				if t < 0 || t > 255 || f < 0 || f > 255 {
					return nil, fmt.Errorf("seccomp ENOSYS stub: jump of %d/%d instructions at %d", t, f, pc)
				}
				jt, jf = uint8(t), uint8(f)
			}
		}
		b = binary.NativeEndian.AppendUint16(b, in.code)
		b = append(b, jt, jf)
		b = binary.NativeEndian.AppendUint32(b, k)
	}
	return b, nil
}
