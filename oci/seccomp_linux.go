package oci

// Seccomp for the built-in runtime: the spec's Linux.Seccomp is compiled
// once, with libseccomp (the library runc and crun use, so a spec gives the
// same BPF program whichever of them runs it), into a classic BPF program:
// an array of struct sock_filter, 8 bytes an instruction. Create compiles
// it in the monitor, hands the bytes to the init in its config and keeps
// them as <state>/seccomp.bpf for execs. Loading it is one seccomp(2) call
// (loadSeccomp, and load_seccomp in nsenter/exec.c for the C exec path), so
// the Go init, the Go exec path and the C exec path all load the same
// program bytes.
//
// Semantics follow runc's libcontainer/seccomp for the same spec: the
// default action and errno (EPERM when none is given), one rule per
// syscall name (names this libseccomp does not know are skipped, as runc
// does: a profile may name syscalls newer than the library; enosysStub
// then answers them ENOSYS, as runc does), argument
// conditions ANDed, except that several conditions on the same argument
// become one rule each (ORed: libseccomp cannot AND two comparisons of one
// argument), rules whose action is the default action skipped. SCMP_ACT_LOG
// is kept; SCMP_ACT_NOTIFY and a listener path are refused, Berth having no
// agent to answer notifications.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// SeccompEnforced says the built-in runtime can enforce seccomp filters.
const SeccompEnforced = true

// seccompProgram is a compiled filter: Insns is the raw struct sock_filter
// array, Flags the seccomp(2) flags from the spec.
type seccompProgram struct {
	Insns []byte `json:"insns"`
	Flags uint   `json:"flags,omitempty"`
}

var seccompFlags = map[specs.LinuxSeccompFlag]uint{
	specs.LinuxSeccompFlagLog:       unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow: unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}

// seccompArches names each OCI architecture for libseccomp and gives the
// AUDIT_ARCH value the kernel puts in seccomp_data.arch (x32 shares
// x86_64's and sets bit 30 of the syscall number instead).
var seccompArches = map[specs.Arch]struct {
	name  string
	audit uint32
}{
	specs.ArchX86: {"x86", unix.AUDIT_ARCH_I386}, specs.ArchX86_64: {"amd64", unix.AUDIT_ARCH_X86_64}, specs.ArchX32: {"x32", unix.AUDIT_ARCH_X86_64},
	specs.ArchARM: {"arm", unix.AUDIT_ARCH_ARM}, specs.ArchAARCH64: {"arm64", unix.AUDIT_ARCH_AARCH64},
	specs.ArchMIPS: {"mips", unix.AUDIT_ARCH_MIPS}, specs.ArchMIPS64: {"mips64", unix.AUDIT_ARCH_MIPS64}, specs.ArchMIPS64N32: {"mips64n32", unix.AUDIT_ARCH_MIPS64N32},
	specs.ArchMIPSEL: {"mipsel", unix.AUDIT_ARCH_MIPSEL}, specs.ArchMIPSEL64: {"mipsel64", unix.AUDIT_ARCH_MIPSEL64}, specs.ArchMIPSEL64N32: {"mipsel64n32", unix.AUDIT_ARCH_MIPSEL64N32},
	specs.ArchPPC: {"ppc", unix.AUDIT_ARCH_PPC}, specs.ArchPPC64: {"ppc64", unix.AUDIT_ARCH_PPC64}, specs.ArchPPC64LE: {"ppc64le", unix.AUDIT_ARCH_PPC64LE},
	specs.ArchS390: {"s390", unix.AUDIT_ARCH_S390}, specs.ArchS390X: {"s390x", unix.AUDIT_ARCH_S390X}, specs.ArchPARISC: {"parisc", unix.AUDIT_ARCH_PARISC},
	specs.ArchPARISC64: {"parisc64", unix.AUDIT_ARCH_PARISC64}, specs.ArchRISCV64: {"riscv64", unix.AUDIT_ARCH_RISCV64}, specs.ArchLOONGARCH64: {"loong64", unix.AUDIT_ARCH_LOONGARCH64},
}

var seccompOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// seccompAction translates an action; errno is the rule's errnoRet (nil:
// EPERM, as runc uses).
func seccompAction(a specs.LinuxSeccompAction, errno *uint) (libseccomp.ScmpAction, error) {
	code := int16(unix.EPERM)
	if errno != nil {
		code = int16(*errno)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(code), nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(code), nil
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	case specs.ActNotify:
		return 0, fmt.Errorf("seccomp action %s: user notification needs an agent Berth does not run: %w", a, errdefs.ErrInvalidArgument)
	}
	return 0, fmt.Errorf("unknown seccomp action %q: %w", a, errdefs.ErrInvalidArgument)
}

// ValidateSeccomp compiles s and reports what makes it unusable, as
// ErrInvalidArgument, so a bad profile fails CreateContainer whichever
// runtime would run it. The program is cached for WriteSeccompProgram.
func ValidateSeccomp(s *specs.LinuxSeccomp) error {
	_, _, err := compileSeccompCached(s)
	return err
}

// Compiling is not cheap: libseccomp 2.5 takes about 20 ms of CPU to
// generate the default profile's program. Most containers of a node share a
// handful of profiles (RuntimeDefault for the same capabilities), so
// berthd keeps the last programs it compiled, keyed by the SHA-256 of the
// profile's JSON, and hands the program to the monitor in the bundle
// (seccomp.bpf: the key, the flags as a little-endian uint32, the
// instructions). The monitor uses it when the key is that of the spec's
// profile and compiles the profile itself otherwise.
const (
	bundleSeccompFile = "seccomp.bpf"
	seccompCacheSize  = 16
)

var seccompCache struct {
	sync.Mutex
	progs map[[32]byte]*seccompProgram
	order [][32]byte
}

func seccompKey(s *specs.LinuxSeccomp) ([32]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return [32]byte{}, fmt.Errorf("encode seccomp profile: %w", err)
	}
	return sha256.Sum256(b), nil
}

func compileSeccompCached(s *specs.LinuxSeccomp) (*seccompProgram, [32]byte, error) {
	if s == nil {
		return nil, [32]byte{}, nil
	}
	key, err := seccompKey(s)
	if err != nil {
		return nil, key, err
	}
	c := &seccompCache
	c.Lock()
	prog := c.progs[key]
	c.Unlock()
	if prog != nil {
		return prog, key, nil
	}
	if prog, err = compileSeccomp(s); err != nil {
		return nil, key, err
	}
	c.Lock()
	defer c.Unlock()
	if c.progs == nil {
		c.progs = map[[32]byte]*seccompProgram{}
	}
	if _, ok := c.progs[key]; !ok {
		if len(c.order) == seccompCacheSize {
			delete(c.progs, c.order[0])
			c.order = c.order[1:]
		}
		c.progs[key] = prog
		c.order = append(c.order, key)
	}
	return prog, key, nil
}

// WriteSeccompProgram writes the compiled filter of s (nil: none) into
// the bundle for the built-in runtime's Create.
func WriteSeccompProgram(bundle string, s *specs.LinuxSeccomp) error {
	if s == nil {
		return nil
	}
	prog, key, err := compileSeccompCached(s)
	if err != nil {
		return err
	}
	b := make([]byte, 0, 36+len(prog.Insns))
	b = append(b, key[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(prog.Flags))
	b = append(b, prog.Insns...)
	return WriteFileAtomic(filepath.Join(bundle, bundleSeccompFile), b, 0o600)
}

// bundleSeccomp is the program of s: the bundle's when it was compiled
// from s, else compiled now.
func bundleSeccomp(bundle string, s *specs.LinuxSeccomp) (*seccompProgram, error) {
	if s == nil {
		return nil, nil
	}
	key, err := seccompKey(s)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(bundle, bundleSeccompFile))
	if err == nil && len(b) > 36 && (len(b)-36)%8 == 0 && bytes.Equal(b[:32], key[:]) {
		return &seccompProgram{Flags: uint(binary.LittleEndian.Uint32(b[32:36])), Insns: b[36:]}, nil
	}
	return compileSeccomp(s)
}

// compileSeccomp builds the BPF program of s (nil for nil).
func compileSeccomp(s *specs.LinuxSeccomp) (*seccompProgram, error) {
	if s == nil {
		return nil, nil
	}
	if s.ListenerPath != "" || s.ListenerMetadata != "" {
		return nil, fmt.Errorf("seccomp listener %q: user notification is not supported: %w", s.ListenerPath, errdefs.ErrInvalidArgument)
	}
	prog := &seccompProgram{}
	for _, f := range s.Flags {
		v, ok := seccompFlags[f]
		if !ok {
			return nil, fmt.Errorf("unknown seccomp flag %q: %w", f, errdefs.ErrInvalidArgument)
		}
		prog.Flags |= v
	}
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("default action: %w", err)
	}
	filter, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	defer filter.Release()
	// Loading is ours (seccomp(2) with the exported program), and
	// no_new_privs is the spec's to set.
	if err := filter.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	// A binary tree of syscall numbers: fewer comparisons per syscall for
	// long allow-lists such as the default profile, same decisions.
	_ = filter.SetOptimize(2)
	for _, a := range s.Architectures {
		arch, err := seccompArch(a)
		if err != nil {
			return nil, err
		}
		if err := filter.AddArch(arch); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("seccomp architecture %s: %w", a, err)
		}
	}
	for _, call := range s.Syscalls {
		act, err := seccompAction(call.Action, call.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls %v: %w", call.Names, err)
		}
		if act == def {
			continue // no-op; libseccomp refuses it
		}
		conds, perArg, err := seccompConditions(call.Args)
		if err != nil {
			return nil, fmt.Errorf("syscalls %v: %w", call.Names, err)
		}
		for _, name := range call.Names {
			nr, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown to this libseccomp, as runc skips it
			}
			switch {
			case len(conds) == 0:
				err = filter.AddRule(nr, act)
			case perArg:
				for _, c := range conds {
					if err = filter.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
						break
					}
				}
			default:
				err = filter.AddRuleConditional(nr, act, conds)
			}
			if err != nil {
				return nil, fmt.Errorf("seccomp rule for %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
			}
		}
	}
	if prog.Insns, err = exportBPF(filter); err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	stub, err := enosysStub(s)
	if err != nil {
		return nil, err
	}
	prog.Insns = append(stub, prog.Insns...)
	if n := len(prog.Insns) / 8; n == 0 || n > 0xffff {
		return nil, fmt.Errorf("seccomp filter of %d instructions: %w", n, errdefs.ErrInvalidArgument)
	}
	return prog, nil
}

// seccompArch is libseccomp's architecture for a.
func seccompArch(a specs.Arch) (libseccomp.ScmpArch, error) {
	sa, ok := seccompArches[a]
	if !ok {
		return 0, fmt.Errorf("unknown seccomp architecture %q: %w", a, errdefs.ErrInvalidArgument)
	}
	arch, err := libseccomp.GetArchFromString(sa.name)
	if err != nil {
		return 0, fmt.Errorf("seccomp architecture %s: %v: %w", a, err, errdefs.ErrInvalidArgument)
	}
	return arch, nil
}

// seccompConditions translates a rule's argument conditions; perArg says
// two of them test the same argument, so each becomes its own rule.
func seccompConditions(args []specs.LinuxSeccompArg) ([]libseccomp.ScmpCondition, bool, error) {
	var conds []libseccomp.ScmpCondition
	seen := map[uint]bool{}
	perArg := false
	for _, a := range args {
		if a.Index > 5 {
			return nil, false, fmt.Errorf("argument index %d: syscalls have 6 arguments: %w", a.Index, errdefs.ErrInvalidArgument)
		}
		op, ok := seccompOps[a.Op]
		if !ok {
			return nil, false, fmt.Errorf("unknown seccomp operator %q: %w", a.Op, errdefs.ErrInvalidArgument)
		}
		values := []uint64{a.Value}
		if op == libseccomp.CompareMaskedEqual {
			// The OCI spec's value is the mask, valueTwo the datum.
			values = []uint64{a.Value, a.ValueTwo}
		}
		c, err := libseccomp.MakeCondition(a.Index, op, values...)
		if err != nil {
			return nil, false, fmt.Errorf("condition on argument %d: %v: %w", a.Index, err, errdefs.ErrInvalidArgument)
		}
		if seen[a.Index] {
			perArg = true
		}
		seen[a.Index] = true
		conds = append(conds, c)
	}
	return conds, perArg, nil
}

// exportBPF writes the program to a memfd and reads it back
// (seccomp_export_bpf_mem needs libseccomp 2.6; Debian 12 has 2.5).
func exportBPF(filter *libseccomp.ScmpFilter) ([]byte, error) {
	fd, err := unix.MemfdCreate("berth-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "berth-seccomp")
	defer f.Close()
	if err := filter.ExportBPF(f); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}
