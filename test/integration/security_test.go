package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/test/harness"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/registry"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Security tests: what a container's processes get, read from inside
// (/proc/self/status) and tried with real system calls (the Probe image's
// static program), for the built-in runtime and runc alike: one expected
// value serves both, so they must agree.

// probeEnv is a handler's env with the Probe image pulled.
func probeEnv(t *testing.T, e *ctrEnv, reg *registry.Registry) *ctrEnv {
	t.Helper()
	ref := reg.Push(t, "library/probe:latest", images.Probe())
	if _, err := e.d.Images.PullImage(ctxFor(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	pe := *e
	pe.image = ref
	return &pe
}

// privilegedPod is e with a privileged pod of its own (privileged
// containers need one), removed when the test ends.
func privilegedPod(t *testing.T, e *ctrEnv) *ctrEnv {
	t.Helper()
	cfg := podConfig(e.d, "priv-"+handlerOf(t))
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.Linux.SecurityContext.Privileged = true
	cfg.LogDirectory = t.TempDir()
	resp, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handlerOf(t)})
	if err != nil {
		t.Fatalf("RunPodSandbox (privileged): %v", err)
	}
	t.Cleanup(func() {
		if _, err := e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	pe := *e
	pe.pod, pe.podCfg, pe.logDir = resp.PodSandboxId, cfg, cfg.LogDirectory
	return &pe
}

// procStatus is the security lines of /proc/self/status, as the script
// prints them.
const procStatusScript = `grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status`

func parseStatus(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	if len(m) < 7 {
		t.Fatalf("status lines %q: want the seven security fields", out)
	}
	return m
}

// capMask is the /proc/<pid>/status hex of the named capabilities.
func capMask(names ...string) string {
	var m uint64
	for _, n := range names {
		m |= 1 << capNumber[n]
	}
	return fmt.Sprintf("%016x", m)
}

var capNumber = map[string]uint{
	"CHOWN": unix.CAP_CHOWN, "DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "FOWNER": unix.CAP_FOWNER,
	"FSETID": unix.CAP_FSETID, "KILL": unix.CAP_KILL, "SETGID": unix.CAP_SETGID, "SETUID": unix.CAP_SETUID,
	"SETPCAP": unix.CAP_SETPCAP, "NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "NET_RAW": unix.CAP_NET_RAW,
	"SYS_CHROOT": unix.CAP_SYS_CHROOT, "MKNOD": unix.CAP_MKNOD, "AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"SETFCAP": unix.CAP_SETFCAP, "NET_ADMIN": unix.CAP_NET_ADMIN, "SYS_TIME": unix.CAP_SYS_TIME,
}

// defaultCaps is containerd's default set, by short name.
var defaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

func without(list []string, drop ...string) []string {
	var out []string
	for _, n := range list {
		keep := true
		for _, d := range drop {
			keep = keep && n != d
		}
		if keep {
			out = append(out, n)
		}
	}
	return out
}

// hostBounding is this test's (root's, as berthd's) bounding set.
func hostBounding(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return ""
}

func TestCapabilitiesNoNewPrivsAndSeccompInProcStatus(t *testing.T) {
	all := hostBounding(t)
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		def := capMask(defaultCaps...)
		priv := privilegedPod(t, e)
		for _, tc := range []struct {
			name string
			set  func(sc *runtimeapi.LinuxContainerSecurityContext)
			want map[string]string
		}{
			{"the default set", func(sc *runtimeapi.LinuxContainerSecurityContext) {},
				map[string]string{"CapInh": capMask(), "CapPrm": def, "CapEff": def, "CapBnd": def, "CapAmb": capMask(), "NoNewPrivs": "0", "Seccomp": "0"}},
			{"added capabilities with and without CAP_", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN", "cap_sys_time"}}
			}, map[string]string{"CapInh": capMask(), "CapEff": capMask(append(defaultCaps, "NET_ADMIN", "SYS_TIME")...),
				"CapBnd": capMask(append(defaultCaps, "NET_ADMIN", "SYS_TIME")...), "CapAmb": capMask()}},
			{"dropped capabilities", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"CHOWN", "CAP_KILL"}}
			}, map[string]string{"CapEff": capMask(without(defaultCaps, "CHOWN", "KILL")...), "CapBnd": capMask(without(defaultCaps, "CHOWN", "KILL")...)}},
			{"drop ALL", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
			}, map[string]string{"CapPrm": capMask(), "CapEff": capMask(), "CapBnd": capMask(), "CapAmb": capMask()}},
			{"drop ALL and add one back", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"KILL"}}
			}, map[string]string{"CapEff": capMask("KILL"), "CapBnd": capMask("KILL")}},
			{"a non-root user keeps no capability across execve", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.RunAsUser = &runtimeapi.Int64Value{Value: images.UserBerth}
			}, map[string]string{"CapPrm": capMask(), "CapEff": capMask(), "CapBnd": def, "CapAmb": capMask()}},
			{"a non-root user keeps its ambient capabilities", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.RunAsUser = &runtimeapi.Int64Value{Value: images.UserBerth}
				sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddAmbientCapabilities: []string{"NET_BIND_SERVICE"}}
			}, map[string]string{"CapInh": capMask("NET_BIND_SERVICE"), "CapPrm": capMask("NET_BIND_SERVICE"), "CapEff": capMask("NET_BIND_SERVICE"),
				"CapBnd": capMask("NET_BIND_SERVICE"), "CapAmb": capMask("NET_BIND_SERVICE")}},
			{"no_new_privs", func(sc *runtimeapi.LinuxContainerSecurityContext) { sc.NoNewPrivs = true },
				map[string]string{"NoNewPrivs": "1", "Seccomp": "0"}},
			{"privileged", func(sc *runtimeapi.LinuxContainerSecurityContext) { sc.Privileged = true },
				map[string]string{"CapPrm": all, "CapEff": all, "CapBnd": all, "CapAmb": capMask(), "NoNewPrivs": "0", "Seccomp": "0"}},
			{"RuntimeDefault", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			}, map[string]string{"CapEff": def, "NoNewPrivs": "0", "Seccomp": "2"}},
			{"RuntimeDefault with no_new_privs", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
				sc.NoNewPrivs = true
			}, map[string]string{"NoNewPrivs": "1", "Seccomp": "2"}},
			{"privileged asking for RuntimeDefault", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Privileged = true
				sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			}, map[string]string{"CapEff": all, "Seccomp": "2"}},
			{"the deprecated profile path", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.SeccompProfilePath = "runtime/default"
			}, map[string]string{"Seccomp": "2"}},
			{"Unconfined", func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
			}, map[string]string{"Seccomp": "0"}},
		} {
			name := strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), "_", "-")
			cfg := e.config(name, procStatusScript)
			tc.set(cfg.Linux.SecurityContext)
			env := e
			if cfg.Linux.SecurityContext.Privileged {
				env = priv
			}
			st, out := env.runToExit(t, cfg)
			if st.ExitCode != 0 {
				t.Errorf("%s: exit %d: %s", tc.name, st.ExitCode, out)
				continue
			}
			got := parseStatus(t, out)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %s %s, want %s", tc.name, k, got[k], v)
				}
			}
		}
	})
}

// probe runs the probe program with the given calls in a container made
// by cfg and returns each call's errno.
func probeResults(t *testing.T, out string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("probe line %q", l)
		}
		m[f[0]] = n
	}
	return m
}

func checkProbe(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: no result for %s (output %v)", what, k, got)
			continue
		}
		if g != v {
			t.Errorf("%s: %s errno %d (%v), want %d (%v)", what, k, g, unix.Errno(g), v, unix.Errno(v))
		}
	}
}

var probeCalls = []string{"unshare_user", "unshare_user_i386", "unshare_user_x32", "mount", "keyctl", "add_key", "kexec_load", "ptrace", "mkdir",
	"mseal", "listmount", "listmount_i386", "listmount_x32", "fchmodat2", "getpid"}

// The default profile's answers on this kernel: EPERM for what it leaves
// out (the compat ABIs included), and ptrace allowed, as moby's and
// containerd's profile allows it on kernels from 4.8. Syscalls numbered
// above the highest the profile names and libseccomp knows (futex_requeue,
// 456, with Debian 12's) are ENOSYS, as runc's stub makes them: mseal and
// listmount, on x86_64 and i386; x32 numbers are compared with x32's
// highest (547), so x32 listmount keeps EPERM. fchmodat2 is the profile's
// own (allowed: EBADF from the kernel for fd -1).
var runtimeDefaultWant = map[string]int{
	"unshare_user": int(unix.EPERM), "unshare_user_i386": int(unix.EPERM), "unshare_user_x32": int(unix.EPERM),
	"mount": int(unix.EPERM), "keyctl": int(unix.EPERM), "add_key": int(unix.EPERM), "kexec_load": int(unix.EPERM),
	"ptrace": 0, "mkdir": 0, "getpid": 0,
	"mseal": int(unix.ENOSYS), "listmount": int(unix.ENOSYS), "listmount_i386": int(unix.ENOSYS), "listmount_x32": int(unix.EPERM),
	"fchmodat2": int(unix.EBADF),
}

func TestSeccompProfilesAreEnforcedInContainersAndExecs(t *testing.T) {
	reg := registry.Start(t)
	profiles := t.TempDir()
	// Deny mkdir with EACCES; unshare of a user namespace (argument
	// condition) with EOPNOTSUPP; log getpid.
	localhost := filepath.Join(profiles, "deny-mkdir.json")
	if err := os.WriteFile(localhost, []byte(`{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
    {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95,
     "args": [{"index": 0, "value": 268435456, "valueTwo": 268435456, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["getpid"], "action": "SCMP_ACT_LOG"}
  ]
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		pe := probeEnv(t, e, reg)
		script := images.ProbePath + " " + strings.Join(probeCalls, " ")
		for _, tc := range []struct {
			name string
			sp   *runtimeapi.SecurityProfile
			want map[string]int
		}{
			{"RuntimeDefault", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, runtimeDefaultWant},
			// Unconfined gets as far as the capabilities let it (kexec_load is
			// EPERM without CAP_SYS_BOOT or ENOSYS on a kernel without kexec).
			{"Unconfined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
				map[string]int{"unshare_user": 0, "keyctl": 0, "add_key": 0, "mount": int(unix.EPERM), "mkdir": 0, "mseal": int(unix.EINVAL), "fchmodat2": int(unix.EBADF)}},
			// Allow by default: no ENOSYS stub, the kernel answers mseal.
			{"Localhost", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: localhost},
				map[string]int{"mkdir": int(unix.EACCES), "unshare_user": int(unix.EOPNOTSUPP), "getpid": 0, "keyctl": 0, "mseal": int(unix.EINVAL)}},
		} {
			cfg := pe.config(strings.ToLower(tc.name), script)
			cfg.Linux.SecurityContext.Seccomp = tc.sp
			st, out := pe.runToExit(t, cfg)
			if st.ExitCode != 0 {
				t.Fatalf("%s: exit %d: %s", tc.name, st.ExitCode, out)
			}
			checkProbe(t, tc.name, probeResults(t, out), tc.want)
		}

		// Execs get the container's filter, loaded early (no_new_privs
		// off) or last (on), on the C exec path and on the Go one (taken
		// for more than 4000 arguments).
		var ids []string
		for _, nnp := range []bool{false, true} {
			name := fmt.Sprintf("exec-nnp-%v", nnp)
			cfg := pe.config(name, "sleep 3600")
			cfg.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			cfg.Linux.SecurityContext.NoNewPrivs = nnp
			id := pe.mustRun(t, cfg)
			fast := pe.mustExec(t, id, append([]string{images.ProbePath}, probeCalls...)...)
			checkProbe(t, name+" (C exec path)", probeResults(t, fast), runtimeDefaultWant)
			long := []string{"/bin/sh", "-c", "grep ^Seccomp: /proc/self/status; " + images.ProbePath + " unshare_user keyctl", "sh"}
			for range 4001 {
				long = append(long, "x")
			}
			slow := pe.mustExec(t, id, long...)
			if !strings.Contains(slow, "Seccomp:\t2") {
				t.Errorf("%s (Go exec path): %q, want Seccomp: 2", name, slow)
			}
			checkProbe(t, name+" (Go exec path)", probeResults(t, slow), map[string]int{"unshare_user": int(unix.EPERM), "keyctl": int(unix.EPERM)})
			ids = append(ids, id)
		}
		// A berthd killed and restarted still confines execs: the filter is part of
		// the container's state, not of the daemon's memory.
		e.d.Kill(t)
		e.d.Restart(t)
		for _, id := range ids {
			out := pe.mustExec(t, id, images.ProbePath, "unshare_user", "keyctl")
			checkProbe(t, "exec after a restart", probeResults(t, out), map[string]int{"unshare_user": int(unix.EPERM), "keyctl": int(unix.EPERM)})
		}
	})
}

// checkNoContainerLeft fails t when e's daemon lists a container or
// keeps a container's state directory: what refused creates must leave.
func checkNoContainerLeft(t *testing.T, e *ctrEnv) {
	t.Helper()
	resp, err := e.d.Runtime.ListContainers(ctxFor(t), &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Containers) != 0 {
		t.Errorf("%d containers listed after refused creates, want none", len(resp.Containers))
	}
	if entries, _ := os.ReadDir(filepath.Join(e.d.State, "containers")); len(entries) != 0 {
		t.Errorf("state dirs of refused creates are left: %d", len(entries))
	}
}

func TestBadSeccompProfilesAreInvalidArgumentAndLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("malformed.json", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [`)
	notify := write("notify.json", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}`)
	badAction := write("bad-action.json", `{"defaultAction": "SCMP_ACT_PERHAPS"}`)
	badOp := write("bad-op.json", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}`)
	unreadable := write("dir.json", "")
	os.Remove(unreadable)
	os.Mkdir(unreadable, 0o755)
	missing := filepath.Join(dir, "missing.json")
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		localhost := func(p string) *runtimeapi.SecurityProfile {
			return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: p}
		}
		for _, tc := range []struct {
			name    string
			sp      *runtimeapi.SecurityProfile
			path    string
			mention string
		}{
			{"malformed JSON", localhost(malformed), "", malformed},
			{"a missing file", localhost(missing), "", missing},
			{"a directory", localhost(unreadable), "", unreadable},
			{"a relative path", localhost("profiles/x.json"), "", "profiles/x.json"},
			{"SCMP_ACT_NOTIFY", localhost(notify), "", "SCMP_ACT_NOTIFY"},
			{"an unknown action", localhost(badAction), "", "SCMP_ACT_PERHAPS"},
			{"an unknown operator", localhost(badOp), "", "SCMP_CMP_ABOUT"},
			{"a LocalhostRef on RuntimeDefault", &runtimeapi.SecurityProfile{LocalhostRef: notify}, "", "localhost_ref"},
			{"a malformed deprecated path", nil, "localhost/" + malformed, malformed},
			{"an unknown deprecated path", nil, "tight", "tight"},
		} {
			cfg := e.config("bad", "true")
			cfg.Linux.SecurityContext.Seccomp = tc.sp
			cfg.Linux.SecurityContext.SeccompProfilePath = tc.path
			_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, err, tc.mention)
			}
		}
		checkNoContainerLeft(t, e)
	})
}

func TestVerboseStatusReportsThatSeccompIsEnforced(t *testing.T) {
	d := harness.Start(t)
	st, err := d.Runtime.Status(ctxFor(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var sec struct {
		Enforced bool     `json:"seccomp_enforced"`
		Notify   bool     `json:"seccomp_notify"`
		Caps     []string `json:"default_capabilities"`
	}
	if err := json.Unmarshal([]byte(st.Info["security"]), &sec); err != nil {
		t.Fatalf("info[security] %q: %v", st.Info["security"], err)
	}
	if !sec.Enforced || sec.Notify || len(sec.Caps) != len(defaultCaps) {
		t.Errorf("info[security] %q: want seccomp enforced, no notify, the %d default capabilities", st.Info["security"], len(defaultCaps))
	}
}

// Kubelet's lists for procMount Default (k8s.io/kubernetes
// pkg/securitycontext); for Unmasked it sends empty ones.
var (
	kubeletMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	kubeletReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

func TestPrivilegedAndUnmaskedContainersSeeWhatOthersDoNot(t *testing.T) {
	hostDev := ""
	for _, p := range []string{"/dev/kmsg", "/dev/loop-control", "/dev/fuse"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			hostDev = p
			break
		}
	}
	if hostDev == "" {
		t.Fatal("the host has none of /dev/kmsg, /dev/loop-control, /dev/fuse to look for")
	}
	script := `echo keys=$(stat -c %F /proc/keys)
echo procsys=$(awk '$5=="/proc/sys"{print substr($6,1,2)}' /proc/self/mountinfo)
echo sys=$(awk '$5=="/sys"{print substr($6,1,2)}' /proc/self/mountinfo)
echo dev=$([ -c ` + hostDev + ` ] && echo yes || echo no)`
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		priv := privilegedPod(t, e)
		for _, tc := range []struct {
			name string
			env  *ctrEnv
			set  func(sc *runtimeapi.LinuxContainerSecurityContext)
			want string
		}{
			{"kubelets default lists", e, func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.MaskedPaths, sc.ReadonlyPaths = kubeletMaskedPaths, kubeletReadonlyPaths
			}, "keys=character special file procsys=ro sys=ro dev=no"},
			{"procmount unmasked", e, func(sc *runtimeapi.LinuxContainerSecurityContext) {},
				"keys=regular empty file procsys= sys=ro dev=no"},
			{"privileged", priv, func(sc *runtimeapi.LinuxContainerSecurityContext) {
				sc.Privileged = true
				sc.MaskedPaths, sc.ReadonlyPaths = kubeletMaskedPaths, kubeletReadonlyPaths
			}, "keys=regular empty file procsys= sys=rw dev=yes"},
		} {
			cfg := tc.env.config(strings.ReplaceAll(tc.name, " ", "-"), script)
			tc.set(cfg.Linux.SecurityContext)
			st, out := tc.env.runToExit(t, cfg)
			if got := strings.Join(strings.Fields(strings.ReplaceAll(out, "\n", " ")), " "); st.ExitCode != 0 || got != tc.want {
				t.Errorf("%s: exit %d, %q, want %q", tc.name, st.ExitCode, got, tc.want)
			}
		}
		cfg := e.config("priv-in-plain-pod", "true")
		cfg.Linux.SecurityContext.Privileged = true
		_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("a privileged container in an unprivileged pod: %v, want InvalidArgument", err)
		}
	})
}

// apparmorOnHost is what Berth checks before refusing a Localhost
// AppArmor profile.
func apparmorOnHost() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}

func TestRequestsBerthCannotEnforceAreRefusedAndLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	// A Localhost AppArmor profile is FailedPrecondition on a host
	// without AppArmor (this one), Unimplemented on one with it.
	apparmorCode := codes.FailedPrecondition
	if apparmorOnHost() {
		apparmorCode = codes.Unimplemented
	}
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		t.Skip("SELinux is enabled on this host: selinux_options would be refused")
	}
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		for _, tc := range []struct {
			name    string
			edit    func(*runtimeapi.ContainerConfig)
			code    codes.Code
			mention string
		}{
			{"an idmapped mount (uid_mappings)", func(c *runtimeapi.ContainerConfig) {
				c.Mounts = []*runtimeapi.Mount{{HostPath: dir, ContainerPath: "/data",
					UidMappings: []*runtimeapi.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}}}}
			}, codes.InvalidArgument, "/data"},
			{"an idmapped mount (gid_mappings)", func(c *runtimeapi.ContainerConfig) {
				c.Mounts = []*runtimeapi.Mount{{HostPath: dir, ContainerPath: "/gdata",
					GidMappings: []*runtimeapi.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}}}}
			}, codes.InvalidArgument, "/gdata"},
			{"a Localhost AppArmor profile", func(c *runtimeapi.ContainerConfig) {
				c.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "berth-test-profile"}
			}, apparmorCode, "berth-test-profile"},
			{"a deprecated localhost/ AppArmor profile", func(c *runtimeapi.ContainerConfig) {
				c.Linux.SecurityContext.ApparmorProfile = "localhost/berth-old-profile"
			}, apparmorCode, "berth-old-profile"},
		} {
			cfg := e.config("refused", "true")
			tc.edit(cfg)
			_, err := e.d.Runtime.CreateContainer(ctxFor(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("%s: %v, want %v naming %s", tc.name, err, tc.code, tc.mention)
			}
		}
		checkNoContainerLeft(t, e)

		// A pod asking for a Localhost AppArmor profile is refused too.
		pcfg := podConfig(e.d, "apparmor-"+handlerOf(t))
		pcfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		pcfg.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "berth-pod-profile"}
		if _, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: pcfg, RuntimeHandler: handlerOf(t)}); status.Code(err) != apparmorCode || !strings.Contains(fmt.Sprint(err), "berth-pod-profile") {
			t.Errorf("RunPodSandbox with a Localhost AppArmor profile: %v, want %v naming it", err, apparmorCode)
		}

		// What kubelet sends by default, and SELinux options on a host
		// without SELinux (ignored as containerd and CRI-O ignore them),
		// run.
		cfg := e.config("allowed", "echo ran")
		cfg.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		cfg.Linux.SecurityContext.ApparmorProfile = "runtime/default"
		cfg.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{Type: "container_t", Level: "s0:c1,c2"}
		if st, out := e.runToExit(t, cfg); st.ExitCode != 0 || out != "ran\n" {
			t.Errorf("AppArmor RuntimeDefault with SELinux options: exit %d, %q", st.ExitCode, out)
		}
		cfg = e.config("unconfined", "echo ran")
		cfg.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
		if st, out := e.runToExit(t, cfg); st.ExitCode != 0 || out != "ran\n" {
			t.Errorf("AppArmor Unconfined: exit %d, %q", st.ExitCode, out)
		}
	})
}

func TestStreamingExecRunsUnderTheContainersSeccompFilter(t *testing.T) {
	reg := registry.Start(t)
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		pe := probeEnv(t, e, reg)
		cfg := pe.config("stream-seccomp", "sleep 3600")
		cfg.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		id := pe.mustRun(t, cfg)
		// Without a terminal and with one (the Go exec path), over the
		// Exec RPC's streaming server, as kubectl exec.
		for _, tty := range []bool{false, true} {
			out, errOut, code := pe.streamExec(t, "spdy", id, tty, nil, nil,
				"/bin/sh", "-c", "grep ^Seccomp: /proc/self/status; "+images.ProbePath+" unshare_user keyctl mseal getpid")
			if code != 0 || !strings.Contains(out, "Seccomp:\t2") {
				t.Errorf("tty %v: exit %d, %q (stderr %q), want Seccomp: 2", tty, code, out, errOut)
			}
			checkProbe(t, fmt.Sprintf("streaming exec, tty %v", tty), probeResults(t, out),
				map[string]int{"unshare_user": int(unix.EPERM), "keyctl": int(unix.EPERM), "mseal": int(unix.ENOSYS), "getpid": 0})
		}
	})
}
