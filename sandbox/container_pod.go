package sandbox

import runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

// podView is what creating a container needs from its pod, taken from the
// pod in one place so that the spec translation stays pure.
type podView struct {
	ID       string
	Handler  string
	LogDir   string
	Hostname string
	// NetNS, IPCNS and UTSNS are the pinned namespaces to join; "" means
	// the host's.
	NetNS, IPCNS, UTSNS string
	// PIDNS is the pod-wide PID namespace (POD mode); "" if none.
	PIDNS   string
	HostPID bool
	// CgroupParent is the pod cgroup the container nests in.
	CgroupParent                        string
	HostsPath, ResolvPath, HostnamePath string
	// ShmPath is the tmpfs bound at /dev/shm.
	ShmPath string
	// Privileged pods may hold privileged containers.
	Privileged bool
	// UserNS is the pod's own user namespace (mode POD), "" for the
	// host's; UIDMap and GIDMap are its mappings.
	UserNS         string
	UIDMap, GIDMap *runtimeapi.IDMapping
}

func viewOf(p *Pod) podView {
	v := podView{
		ID:           p.id,
		Handler:      p.runtimeHandler(),
		LogDir:       p.config.GetLogDirectory(),
		Hostname:     p.config.GetHostname(),
		NetNS:        p.nsPath("net"),
		IPCNS:        p.nsPath("ipc"),
		UTSNS:        p.nsPath("uts"),
		PIDNS:        p.nsPath("pid"),
		HostPID:      p.pidMode() == runtimeapi.NamespaceMode_NODE,
		CgroupParent: p.cgroupParent(),
		HostsPath:    p.hostsPath(),
		ResolvPath:   p.resolvConfPath(),
		HostnamePath: p.hostnamePath(),
		ShmPath:      p.shmPath(),
		Privileged:   p.config.GetLinux().GetSecurityContext().GetPrivileged(),
	}
	v.UIDMap, v.GIDMap = usernsMappings(p.config)
	if v.UIDMap != nil {
		v.UserNS = p.nsPath("user")
	}
	if v.ShmPath == "" {
		v.ShmPath = "/dev/shm" // host IPC: the host's /dev/shm
	}
	return v
}
