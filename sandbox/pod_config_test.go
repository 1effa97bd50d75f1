package sandbox

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups/systemd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func validPodConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

func TestCheckPodConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig
		is   func(error) bool // nil: valid
	}{
		{name: "a config with metadata and namespace options is valid"},
		{name: "a config with no security context is valid", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Linux = nil
			return c
		}},
		{name: "a missing config is an invalid argument", edit: func(*runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig { return nil }, is: errdefs.IsInvalidArgument},
		{name: "missing metadata is an invalid argument", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Metadata = nil
			return c
		}, is: errdefs.IsInvalidArgument},
		{name: "a missing uid is an invalid argument", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Metadata.Uid = ""
			return c
		}, is: errdefs.IsInvalidArgument},
		{name: "a relative log directory is an invalid argument", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.LogDirectory = "var/log/pods/x"
			return c
		}, is: errdefs.IsInvalidArgument},
		{name: "PID mode TARGET is an invalid argument for a pod", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
			return c
		}, is: errdefs.IsInvalidArgument},
		{name: "network mode CONTAINER is an invalid argument", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_CONTAINER
			return c
		}, is: errdefs.IsInvalidArgument},
		{name: "a pod user namespace without mappings is invalid", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}
			return c
		}, is: errdefs.IsInvalidArgument},
		{name: "a pod user namespace with the host's network is invalid", edit: func(c *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
			m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
			c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			return c
		}, is: errdefs.IsInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validPodConfig()
			if tt.edit != nil {
				cfg = tt.edit(cfg)
			}
			err := checkPodConfig(cfg)
			if tt.is == nil && err != nil {
				t.Fatalf("checkPodConfig: %v, want nil", err)
			}
			if tt.is != nil && !tt.is(err) {
				t.Fatalf("checkPodConfig: %v, want its class", err)
			}
		})
	}
}

func TestCheckSysctls(t *testing.T) {
	all := map[string]bool{"net": true, "ipc": true, "uts": true}
	hostNet := map[string]bool{"ipc": true}
	tests := []struct {
		name    string
		sysctls map[string]string
		own     map[string]bool
		wantErr bool
	}{
		{name: "a net sysctl in the pod's network namespace is allowed", sysctls: map[string]string{"net.ipv4.ip_forward": "1"}, own: all},
		{name: "a sysctl written with slashes is allowed", sysctls: map[string]string{"net/ipv4/ping_group_range": "0 1"}, own: all},
		{name: "IPC sysctls are allowed", sysctls: map[string]string{"kernel.shmmax": "1", "kernel.msgmax": "1", "kernel.sem": "1 2 3 4", "fs.mqueue.msg_max": "5"}, own: all},
		{name: "a host-wide sysctl is refused", sysctls: map[string]string{"kernel.panic": "1"}, own: all, wantErr: true},
		{name: "vm sysctls are refused", sysctls: map[string]string{"vm.swappiness": "1"}, own: all, wantErr: true},
		{name: "a net sysctl on the host network is refused", sysctls: map[string]string{"net.ipv4.ip_forward": "1"}, own: hostNet, wantErr: true},
		{name: "a path that climbs out of /proc/sys is refused", sysctls: map[string]string{"net/../../etc": "1"}, own: all, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSysctls(tt.sysctls, tt.own)
			if tt.wantErr != (err != nil) {
				t.Fatalf("checkSysctls = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errdefs.IsInvalidArgument(err) {
				t.Fatalf("checkSysctls error %v is not an invalid argument", err)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name    string
		dns     *runtimeapi.DNSConfig
		want    string
		wantErr bool
	}{
		{
			name: "servers, searches and options render in resolv.conf order",
			dns:  &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"a.svc", "svc"}, Options: []string{"ndots:5", "edns0"}},
			want: "search a.svc svc\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:5 edns0\n",
		},
		{name: "servers alone render alone", dns: &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}}, want: "nameserver 1.1.1.1\n"},
		{name: "a value with a newline is refused", dns: &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolvConf(tt.dns)
			if tt.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("resolvConf error = %v, want an invalid argument", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("resolvConf = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPodResources(t *testing.T) {
	tests := []struct {
		name      string
		linux     *runtimeapi.LinuxPodSandboxConfig
		wantNil   bool
		memory    int64
		cpuShares uint64
		cpuQuota  int64
	}{
		{name: "no resources set no limits", linux: &runtimeapi.LinuxPodSandboxConfig{}, wantNil: true},
		{name: "overhead alone sets no limits", linux: &runtimeapi.LinuxPodSandboxConfig{
			Overhead: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20},
		}, wantNil: true},
		{name: "resources without overhead are the limits", linux: &runtimeapi.LinuxPodSandboxConfig{
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000},
		}, memory: 64 << 20, cpuShares: 512, cpuQuota: 50000},
		{name: "overhead adds to the resources", linux: &runtimeapi.LinuxPodSandboxConfig{
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000},
			Overhead:  &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20, CpuShares: 128, CpuPeriod: 100000, CpuQuota: 10000},
		}, memory: 80 << 20, cpuShares: 640, cpuQuota: 60000},
		{name: "overhead does not turn an unlimited memory into a limit", linux: &runtimeapi.LinuxPodSandboxConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2},
			Overhead:  &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20},
		}, cpuShares: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := podResources(tt.linux, true)
			if tt.wantNil {
				if r != nil {
					t.Fatalf("podResources = %+v, want nil", r)
				}
				return
			}
			if r == nil || r.Memory != tt.memory || r.CpuShares != tt.cpuShares || r.CpuQuota != tt.cpuQuota {
				t.Fatalf("podResources = %+v, want memory %d, shares %d, quota %d", r, tt.memory, tt.cpuShares, tt.cpuQuota)
			}
		})
	}
}

func TestPodResourcesKeepHugepagesOnlyWhereHugetlbTakesThem(t *testing.T) {
	linux := &runtimeapi.LinuxPodSandboxConfig{Resources: &runtimeapi.LinuxContainerResources{
		MemoryLimitInBytes: 64 << 20, HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}}}}
	if r := podResources(linux, true); len(r.HugetlbLimit) != 1 || r.HugetlbLimit[0].Pagesize != "2MB" || r.HugetlbLimit[0].Limit != 2<<20 {
		t.Errorf("with hugetlb: %+v", r.HugetlbLimit)
	}
	if r := podResources(linux, false); len(r.HugetlbLimit) != 0 || r.Memory != 64<<20 {
		t.Errorf("without hugetlb: hugepages %+v, memory %d", r.HugetlbLimit, r.Memory)
	}
}

func TestPodCgroupPath(t *testing.T) {
	tests := []struct {
		name, driver, parent, want string
		wantErr                    bool
	}{
		{name: "a cgroupfs parent is the pod cgroup", driver: "cgroupfs", parent: "/kubepods/burstable/pod1", want: "/kubepods/burstable/pod1"},
		{name: "a relative cgroupfs parent is made absolute and clean", driver: "cgroupfs", parent: "kubepods/../kubepods/pod1", want: "/kubepods/pod1"},
		{name: "no cgroupfs parent puts the pod under /berth", driver: "cgroupfs", parent: "", want: "/berth/abc"},
		{name: "the root cgroup is refused", driver: "cgroupfs", parent: "/", wantErr: true},
		{name: "a slice under cgroupfs is refused", driver: "cgroupfs", parent: "kubepods-pod1.slice", wantErr: true},
		{name: "a systemd slice is the pod cgroup", driver: "systemd", parent: "kubepods-burstable-pod1.slice", want: "kubepods-burstable-pod1.slice"},
		{name: "no systemd parent makes a berth slice", driver: "systemd", parent: "", want: "berth-podabc.slice"},
		{name: "a path under systemd is refused", driver: "systemd", parent: "/kubepods/pod1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manager{cfg: Config{CgroupDriver: tt.driver}}
			got, err := m.podCgroupPath("abc", tt.parent)
			if tt.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("podCgroupPath(%q) error = %v, want an invalid argument", tt.parent, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("podCgroupPath(%q) = %q, %v; want %q", tt.parent, got, err, tt.want)
			}
		})
	}
}

func TestPodNameTellsAttemptsApart(t *testing.T) {
	md := &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 1}
	next := &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 2}
	if podName(md) == podName(next) {
		t.Fatalf("attempts 1 and 2 of a pod have the same name %q", podName(md))
	}
}

func TestSystemdDriverNeedsARunningSystemd(t *testing.T) {
	err := checkCgroupDriver("systemd")
	if systemd.IsRunningSystemd() {
		if err != nil {
			t.Fatalf("checkCgroupDriver(systemd) with systemd running = %v", err)
		}
		return
	}
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("checkCgroupDriver(systemd) without systemd = %v, want a failed precondition", err)
	}
}

func TestUnknownCgroupDriverIsRefused(t *testing.T) {
	if err := checkCgroupDriver("bogus"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("checkCgroupDriver(bogus) = %v, want an invalid argument", err)
	}
}
