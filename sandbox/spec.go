package sandbox

// CRI ContainerConfig → OCI runtime spec.
//
// buildSpec changes nothing, but it is not pure: besides specInput (the
// pod, the image's config, the rootfs path, the host's cgroup features) it
// reads files. It resolves the user through the container's /etc/passwd
// and /etc/group under the rootfs (spec_user.go), stats the host device
// nodes a config names and walks the host's /dev for a privileged
// container (spec_privileged.go), and reads berthd's own capability
// bounding set from /proc/self/status (heldCaps). Its unit tests give it a
// rootfs in a temporary directory. Kubernetes' rules, as containerd and
// CRI-O apply them:
//
//   - command/args: a CRI command replaces the image's ENTRYPOINT and CMD;
//     CRI args alone replace CMD; neither keeps ENTRYPOINT + CMD.
//   - env: default PATH, HOSTNAME, then the image's ENV, then the config's;
//     a later value replaces an earlier one of the same name in place.
//   - working dir: the config's, else the image's WORKDIR, else "/".
//   - user: run_as_user/run_as_username, else the image's USER, resolved
//     through the container's own /etc/passwd and /etc/group (spec_user.go).

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-runtime/berth/oci"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// specInput is everything buildSpec reads.
type specInput struct {
	ID     string
	Config *runtimeapi.ContainerConfig
	Image  ocispec.ImageConfig
	Pod    podView
	// Rootfs is the mounted root filesystem (users and groups are read
	// from it).
	Rootfs string
	// TargetPIDNS is the PID namespace of the target container for
	// NamespaceMode TARGET, resolved by the caller.
	TargetPIDNS string
	// MinOOMScoreAdj is the lowest oom_score_adj a container may get when
	// RestrictOOM is set (berthd's own).
	RestrictOOM    bool
	MinOOMScoreAdj int
	// SwapAccounting says memory+swap limits can be set (cgroup v1
	// memory.memsw.* or v2 memory.swap.max exist).
	SwapAccounting bool
	// Features are what the pod's runtime enforces; a mount asking for
	// more is refused.
	Features oci.Features
	// Unified says the memory controller sits on cgroup v2; unified keys
	// pass through only then.
	Unified bool
	// Hugetlb says container cgroups can take hugepage limits
	// (oci.HugetlbAvailable). Without it kubelet's limits, one per page
	// size of the node, are left out, as containerd does: runc refuses
	// them and nothing could enforce them.
	Hugetlb bool
	// Systemd selects "slice:prefix:name" cgroup paths.
	Systemd bool
	// IDMapDir is where CreateContainer attaches the idmapped clones of
	// the volumes kubelet gave uid/gid mappings; setMounts points those
	// mounts there and records the host path of each in IDMapped (mount
	// point -> host path) for CreateContainer to make.
	IDMapDir string
	IDMapped map[string]string
}

// buildSpec returns the OCI spec of a container. Errors are
// ErrInvalidArgument for bad input.
func buildSpec(in specInput) (*specs.Spec, error) {
	cfg := in.Config
	sc := cfg.GetLinux().GetSecurityContext()
	s := oci.DefaultSpec(in.ID)
	// The container joins the pod's UTS namespace: setting a hostname
	// would rename the pod.
	s.Hostname = ""
	s.Root = &specs.Root{Path: in.Rootfs, Readonly: sc.GetReadonlyRootfs()}
	s.Process.Terminal = cfg.GetTty()

	args, err := containerArgs(cfg.GetCommand(), cfg.GetArgs(), in.Image)
	if err != nil {
		return nil, err
	}
	s.Process.Args = args
	s.Process.Env = containerEnv(in.Image.Env, cfg.GetEnvs(), in.Pod.Hostname)
	s.Process.Cwd = "/"
	if in.Image.WorkingDir != "" {
		s.Process.Cwd = in.Image.WorkingDir
	}
	if cfg.GetWorkingDir() != "" {
		s.Process.Cwd = cfg.GetWorkingDir()
	}
	if !path.IsAbs(s.Process.Cwd) {
		return nil, fmt.Errorf("working directory %q is not absolute: %w", s.Process.Cwd, errdefs.ErrInvalidArgument)
	}
	user, err := resolveUser(in.Rootfs, sc, in.Image.User)
	if err != nil {
		return nil, err
	}
	s.Process.User = user

	if err := setNamespaces(s, in); err != nil {
		return nil, err
	}
	if err := setMounts(s, in); err != nil {
		return nil, err
	}
	if err := setDevices(s, cfg.GetDevices(), sc.GetPrivileged()); err != nil {
		return nil, err
	}
	if sc.GetPrivileged() && !in.Pod.Privileged {
		return nil, fmt.Errorf("a privileged container needs a privileged pod sandbox: %w", errdefs.ErrInvalidArgument)
	}
	if err := setSecurity(s, sc); err != nil {
		return nil, err
	}
	if err := setSeccomp(s, sc); err != nil {
		return nil, err
	}
	if err := checkLSM(sc.GetApparmor(), sc.GetApparmorProfile(), sc.GetSelinuxOptions()); err != nil {
		return nil, err
	}
	if err := setResources(s, cfg.GetLinux().GetResources(), in); err != nil {
		return nil, err
	}
	s.Linux.CgroupsPath = containerCgroupsPath(in.Pod.CgroupParent, in.ID, in.Systemd)
	s.Annotations = map[string]string{
		"io.kubernetes.cri.container-type": "container",
		"io.kubernetes.cri.sandbox-id":     in.Pod.ID,
		"io.kubernetes.cri.container-name": cfg.GetMetadata().GetName(),
	}
	return s, nil
}

// containerArgs merges the CRI command and args with the image's
// ENTRYPOINT and CMD the way Kubernetes defines it.
func containerArgs(command, args []string, img ocispec.ImageConfig) ([]string, error) {
	var out []string
	if len(command) > 0 {
		out = append(append(out, command...), args...)
	} else {
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			out = append(out, img.Entrypoint...)
		}
		if len(args) > 0 {
			out = append(out, args...)
		} else {
			out = append(out, img.Cmd...)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no command: neither the container config nor the image names one: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// containerEnv is PATH and HOSTNAME, then the image's ENV, then the
// config's envs; a later NAME replaces an earlier one where it stood.
func containerEnv(image []string, config []*runtimeapi.KeyValue, hostname string) []string {
	var env []string
	at := map[string]int{}
	set := func(kv string) {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := at[name]; ok {
			env[i] = kv
			return
		}
		at[name] = len(env)
		env = append(env, kv)
	}
	set(defaultPathEnv)
	if hostname != "" {
		set("HOSTNAME=" + hostname)
	}
	for _, kv := range image {
		set(kv)
	}
	for _, kv := range config {
		set(kv.GetKey() + "=" + string(kv.GetValue()))
	}
	return env
}

// setNamespaces joins the pod's network, IPC and UTS namespaces by path
// and gives the container its own mount namespace and the PID namespace
// its mode asks for.
func setNamespaces(s *specs.Spec, in specInput) error {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	for _, p := range []struct {
		typ  specs.LinuxNamespaceType
		path string
	}{
		{specs.NetworkNamespace, in.Pod.NetNS},
		{specs.IPCNamespace, in.Pod.IPCNS},
		{specs.UTSNamespace, in.Pod.UTSNS},
	} {
		if p.path != "" { // "" is the host's namespace
			ns = append(ns, specs.LinuxNamespace{Type: p.typ, Path: p.path})
		}
	}
	opts := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	mode := runtimeapi.NamespaceMode_CONTAINER
	if opts != nil {
		mode = opts.GetPid()
	}
	switch mode {
	case runtimeapi.NamespaceMode_CONTAINER:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case runtimeapi.NamespaceMode_POD:
		if in.Pod.HostPID {
			break
		}
		if in.Pod.PIDNS == "" {
			// The pod has no shared PID namespace: its containers each
			// get their own, as the pod's own PID mode asked.
			ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
			break
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.Pod.PIDNS})
	case runtimeapi.NamespaceMode_NODE:
	case runtimeapi.NamespaceMode_TARGET:
		if in.TargetPIDNS == "" {
			return fmt.Errorf("PID namespace mode TARGET: target container %q has no PID namespace: %w",
				opts.GetTargetId(), errdefs.ErrInvalidArgument)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.TargetPIDNS})
	default:
		return fmt.Errorf("PID namespace mode %v: %w", mode, errdefs.ErrInvalidArgument)
	}
	if in.Pod.UserNS != "" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace, Path: in.Pod.UserNS})
		// As containerd passes them: runc takes its root's host IDs from
		// them, and runc 1.2 checks they are the namespace's.
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: in.Pod.UIDMap.GetHostId(), Size: in.Pod.UIDMap.GetLength()}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: in.Pod.GIDMap.GetHostId(), Size: in.Pod.GIDMap.GetLength()}}
	}
	s.Linux.Namespaces = ns
	return nil
}

// containerCgroupsPath nests the container's cgroup under its pod's.
func containerCgroupsPath(parent, id string, systemd bool) string {
	if systemd {
		slice := filepath.Base(parent)
		if slice == "" || slice == "." || slice == "/" {
			slice = "system.slice"
		}
		return slice + ":berth:" + id
	}
	if parent == "" {
		parent = "/berth"
	}
	return filepath.Join(parent, id)
}

// setDevices adds the CRI devices (a host directory adds every device
// under it) and allows them in the device cgroup.
func setDevices(s *specs.Spec, devs []*runtimeapi.Device, privileged bool) error {
	if privileged {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, d := range devs {
		if d.GetHostPath() == "" || !path.IsAbs(d.GetContainerPath()) {
			return fmt.Errorf("device %q -> %q: host and absolute container paths are required: %w",
				d.GetHostPath(), d.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		perms := d.GetPermissions()
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return fmt.Errorf("device %s: permissions %q: only r, w and m: %w", d.GetHostPath(), perms, errdefs.ErrInvalidArgument)
		}
		fi, err := os.Stat(d.GetHostPath())
		if err != nil {
			return fmt.Errorf("device %s: %w", d.GetHostPath(), errdefs.ErrInvalidArgument)
		}
		add := func(host, ctr string) error {
			dev, err := hostDevice(host)
			if err != nil {
				return err
			}
			dev.Path = ctr
			s.Linux.Devices = append(s.Linux.Devices, dev)
			major, minor := dev.Major, dev.Minor
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms,
			})
			return nil
		}
		if !fi.IsDir() {
			if err := add(d.GetHostPath(), d.GetContainerPath()); err != nil {
				return err
			}
			continue
		}
		err = filepath.WalkDir(d.GetHostPath(), func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Type()&(os.ModeDevice|os.ModeCharDevice) == 0 {
				return err
			}
			rel, _ := filepath.Rel(d.GetHostPath(), p)
			return add(p, path.Join(d.GetContainerPath(), rel))
		})
		if err != nil {
			return fmt.Errorf("device directory %s: %w", d.GetHostPath(), err)
		}
	}
	return nil
}

// hostDevice describes the device node at p.
func hostDevice(p string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("device %s: %v: %w", p, err, errdefs.ErrInvalidArgument)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("%s is not a device: %w", p, errdefs.ErrInvalidArgument)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}

// setSecurity applies privileged mode, capabilities, no_new_privs and the
// masked and read-only paths.
//
// Capabilities follow the CRI's Capability message and containerd: the
// default set with drop_capabilities removed and add_capabilities added
// to the bounding, effective and permitted sets (not the inheritable one,
// CVE-2022-24769); add_ambient_capabilities go into all five sets, so a
// non-root process keeps them across execve. A privileged container gets
// every capability berthd holds, the host's devices (spec_privileged.go),
// writable /sys and cgroupfs, and no masked or read-only paths. It needs a
// privileged pod, as containerd requires.
//
// masked_paths and readonly_paths are taken as sent, an empty list meaning
// none, as containerd and CRI-O take them: kubelet always sends them, the
// runtime's defaults for procMount Default and empty lists for Unmasked.
func setSecurity(s *specs.Spec, sc *runtimeapi.LinuxContainerSecurityContext) error {
	s.Process.NoNewPrivileges = sc.GetNoNewPrivs()
	if sc.GetPrivileged() {
		all := heldCaps()
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		for i, m := range s.Mounts {
			if m.Type == "sysfs" || m.Type == "cgroup" {
				s.Mounts[i].Options = removeString(m.Options, "ro")
			}
		}
		if err := addHostDevices(s); err != nil {
			return fmt.Errorf("privileged: host devices: %w", err)
		}
		return nil
	}
	caps, err := capabilities(sc.GetCapabilities())
	if err != nil {
		return err
	}
	lc := &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	if amb := sc.GetCapabilities().GetAddAmbientCapabilities(); len(amb) > 0 {
		known := map[string]bool{}
		for _, n := range allCaps() {
			known[n] = true
		}
		var names []string
		for _, c := range amb {
			if !known[capName(c)] {
				return fmt.Errorf("unknown ambient capability %q: %w", c, errdefs.ErrInvalidArgument)
			}
			names = append(names, capName(c))
		}
		lc.Bounding = unionCaps(caps, names)
		lc.Effective, lc.Permitted = lc.Bounding, lc.Bounding
		lc.Inheritable = unionCaps(nil, names)
		lc.Ambient = lc.Inheritable
	}
	s.Process.Capabilities = lc
	s.Linux.MaskedPaths = sc.GetMaskedPaths()
	s.Linux.ReadonlyPaths = sc.GetReadonlyPaths()
	return nil
}

// unionCaps is a ∪ b, sorted, without duplicates.
func unionCaps(a, b []string) []string {
	set := map[string]bool{}
	for _, n := range append(append([]string(nil), a...), b...) {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// capabilities applies add and drop ("ALL" allowed in either) to the
// default set.
func capabilities(c *runtimeapi.Capability) ([]string, error) {
	set := map[string]bool{}
	for _, n := range oci.DefaultCapabilities {
		set[n] = true
	}
	known := map[string]bool{}
	for _, n := range allCaps() {
		known[n] = true
	}
	for _, n := range c.GetDropCapabilities() {
		if strings.EqualFold(n, "ALL") {
			clear(set)
			continue
		}
		delete(set, capName(n))
	}
	for _, n := range c.GetAddCapabilities() {
		if strings.EqualFold(n, "ALL") {
			for _, k := range heldCaps() {
				set[k] = true
			}
			continue
		}
		if !known[capName(n)] {
			return nil, fmt.Errorf("unknown capability %q: %w", n, errdefs.ErrInvalidArgument)
		}
		set[capName(n)] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func capName(n string) string {
	n = strings.ToUpper(n)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n
}

// allCaps is every capability Berth knows by name: a fixed list, up to
// CAP_CHECKPOINT_RESTORE (Linux 5.9), not what the running kernel
// supports (heldCaps narrows it to berthd's bounding set).
func allCaps() []string {
	names := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
		"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
		"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
		"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
		"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
		"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
		"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
	}
	return names
}

// heldCaps are the capabilities in berthd's own bounding set: a
// container cannot get more (this machine's root lacks CAP_SYS_RESOURCE),
// so "all" means these, as with containerd's privileged containers.
func heldCaps() []string {
	all := allCaps()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return all
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return all
			}
			return capsInMask(all, mask)
		}
	}
	return all
}

// capsInMask keeps the names (in kernel order) whose bit is set in mask.
func capsInMask(names []string, mask uint64) []string {
	var out []string
	for i, n := range names {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func removeString(list []string, s string) []string {
	out := list[:0:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
