package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"cmd1", "cmd2"}}
	for _, tc := range []struct {
		name          string
		command, args []string
		img           ocispec.ImageConfig
		want          []string
		wantErr       bool
	}{
		{name: "no command or args keeps entrypoint and cmd", img: img, want: []string{"/ep", "cmd1", "cmd2"}},
		{name: "args alone replace cmd", args: []string{"a"}, img: img, want: []string{"/ep", "a"}},
		{name: "command replaces entrypoint and cmd", command: []string{"/c"}, img: img, want: []string{"/c"}},
		{name: "command and args replace both", command: []string{"/c"}, args: []string{"a", "b"}, img: img, want: []string{"/c", "a", "b"}},
		{name: "empty-string entrypoint is ignored", img: ocispec.ImageConfig{Entrypoint: []string{""}, Cmd: []string{"sh"}}, want: []string{"sh"}},
		{name: "cmd alone runs", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, want: []string{"sh"}},
		{name: "nothing at all is an error", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerArgs(tc.command, tc.args, tc.img)
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestContainerEnv(t *testing.T) {
	got := containerEnv([]string{"PATH=/img", "A=image", "B=image"},
		[]*runtimeapi.KeyValue{{Key: "B", Value: []byte("config")}, {Key: "C", Value: []byte("x=y")}}, "pod-host")
	want := []string{"PATH=/img", "HOSTNAME=pod-host", "A=image", "B=config", "C=x=y"}
	if !slices.Equal(got, want) {
		t.Fatalf("env = %q, want %q", got, want)
	}
}

// rootfsWithUsers makes a rootfs holding /etc/passwd and /etc/group.
func rootfsWithUsers(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1002::/:/bin/sh\n"
	group := "root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\nstaff:x:50:bob\nbobgrp:x:1002:\n"
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(passwd), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte(group), 0o644)
	return dir
}

func TestResolveUser(t *testing.T) {
	root := rootfsWithUsers(t)
	for _, tc := range []struct {
		name      string
		sc        *runtimeapi.LinuxContainerSecurityContext
		imageUser string
		want      specs.User
		wantErr   bool
	}{
		{name: "no user is root with root's groups", want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "image user name resolves uid, gid and groups", imageUser: "alice", want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10}}},
		{name: "image user:group by name", imageUser: "bob:staff", want: specs.User{UID: 1001, GID: 50, AdditionalGids: []uint32{50, 10}}},
		{name: "image uid:gid numeric not in passwd", imageUser: "4242:4343", want: specs.User{UID: 4242, GID: 4343, AdditionalGids: []uint32{4343}}},
		{name: "run_as_user overrides the image user", imageUser: "alice",
			sc:   &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64v(1001)},
			want: specs.User{UID: 1001, GID: 1002, AdditionalGids: []uint32{1002, 10, 50}}},
		{name: "run_as_username resolves through passwd",
			sc:   &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "alice", RunAsGroup: i64v(7), SupplementalGroups: []int64{99}},
			want: specs.User{UID: 1000, GID: 7, AdditionalGids: []uint32{7, 10, 99}}},
		{name: "strict policy keeps only the given groups",
			sc: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64v(1001), SupplementalGroups: []int64{5},
				SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict},
			want: specs.User{UID: 1001, GID: 1002, AdditionalGids: []uint32{1002, 5}}},
		{name: "unknown run_as_username is an error", sc: &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "mallory"}, wantErr: true},
		{name: "unknown image user is an error", imageUser: "mallory", wantErr: true},
		{name: "unknown image group is an error", imageUser: "alice:nogroup", wantErr: true},
		{name: "run_as_group alone is an error", sc: &runtimeapi.LinuxContainerSecurityContext{RunAsGroup: i64v(1)}, wantErr: true},
		{name: "user and username together are an error",
			sc: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64v(1), RunAsUsername: "alice"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveUser(root, tc.sc, tc.imageUser)
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil || got.UID != tc.want.UID || got.GID != tc.want.GID || !slices.Equal(got.AdditionalGids, tc.want.AdditionalGids) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestResolveUserStaysInsideRootfs(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	// An absolute symlink must resolve inside the rootfs, not on the host.
	os.Symlink("/etc/shadow-host", filepath.Join(root, "etc/passwd"))
	os.WriteFile(filepath.Join(root, "etc/shadow-host"), []byte("evil:x:77:77::/:/bin/sh\n"), 0o644)
	u, err := resolveUser(root, nil, "evil")
	if err != nil || u.UID != 77 {
		t.Fatalf("got %+v, %v; want uid 77 from the rootfs's own file", u, err)
	}
}

func baseInput(t *testing.T) specInput {
	return specInput{
		ID: "c1",
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
			Command:  []string{"/bin/sh"},
		},
		Pod: podView{ID: "p1", NetNS: "/run/p/net", IPCNS: "/run/p/ipc", UTSNS: "/run/p/uts",
			CgroupParent: "/kubepods/podX", HostsPath: "/p/hosts", ResolvPath: "/p/resolv.conf",
			HostnamePath: "/p/hostname", ShmPath: "/run/p/shm"},
		Rootfs: rootfsWithUsers(t),
	}
}

func TestBuildSpecNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    *runtimeapi.NamespaceOption
		podPID  string
		target  string
		wantPID *specs.LinuxNamespace // nil: host's
		wantErr bool
	}{
		{name: "no options means a new pid namespace", wantPID: &specs.LinuxNamespace{Type: specs.PIDNamespace}},
		{name: "CONTAINER mode gets a new pid namespace", opts: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			wantPID: &specs.LinuxNamespace{Type: specs.PIDNamespace}},
		{name: "POD mode joins the pod's", opts: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}, podPID: "/run/p/pid",
			wantPID: &specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/run/p/pid"}},
		{name: "NODE mode uses the host's", opts: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_NODE}},
		{name: "TARGET mode joins the target's", opts: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "t"},
			target: "/proc/42/ns/pid", wantPID: &specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"}},
		{name: "TARGET mode without a target fails", opts: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Pod.PIDNS, in.TargetPIDNS = tc.podPID, tc.target
			in.Config.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: tc.opts}}
			s, err := buildSpec(in)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var pid *specs.LinuxNamespace
			got := map[specs.LinuxNamespaceType]string{}
			for i, n := range s.Linux.Namespaces {
				got[n.Type] = n.Path
				if n.Type == specs.PIDNamespace {
					pid = &s.Linux.Namespaces[i]
				}
			}
			if got[specs.NetworkNamespace] != "/run/p/net" || got[specs.IPCNamespace] != "/run/p/ipc" || got[specs.UTSNamespace] != "/run/p/uts" {
				t.Errorf("pod namespaces not joined: %v", s.Linux.Namespaces)
			}
			if p, ok := got[specs.MountNamespace]; !ok || p != "" {
				t.Errorf("no new mount namespace: %v", s.Linux.Namespaces)
			}
			if (pid == nil) != (tc.wantPID == nil) || pid != nil && *pid != *tc.wantPID {
				t.Errorf("pid namespace = %v, want %v", pid, tc.wantPID)
			}
			if s.Hostname != "" {
				t.Errorf("hostname %q set: it would rename the pod", s.Hostname)
			}
			if s.Linux.CgroupsPath != "/kubepods/podX/c1" {
				t.Errorf("cgroups path = %q", s.Linux.CgroupsPath)
			}
		})
	}
}

func TestBuildSpecJoinsThePodsUserNamespaceWithItsMappingsAndPointsIDMappedMountsAtTheirClones(t *testing.T) {
	in := baseInput(t)
	m := &runtimeapi.IDMapping{HostId: 196608, Length: 65536}
	in.Pod.UserNS, in.Pod.UIDMap, in.Pod.GIDMap = "/run/p/user", m, m
	in.IDMapDir, in.IDMapped = "/run/c1/idmap", map[string]string{}
	vol := t.TempDir()
	in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: vol,
		UidMappings: []*runtimeapi.IDMapping{m}, GidMappings: []*runtimeapi.IDMapping{m}}}
	s, err := buildSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/p/user"}) {
		t.Errorf("the pod's user namespace is not joined: %v", s.Linux.Namespaces)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 196608, Size: 65536}}
	if !slices.Equal(s.Linux.UIDMappings, want) || !slices.Equal(s.Linux.GIDMappings, want) {
		t.Errorf("mappings %v, %v; want %v", s.Linux.UIDMappings, s.Linux.GIDMappings, want)
	}
	for _, mnt := range s.Mounts {
		if mnt.Destination == "/v" && (mnt.Source != "/run/c1/idmap/0" || in.IDMapped["/run/c1/idmap/0"] != vol) {
			t.Errorf("the idmapped volume is bound from %s (clones to make: %v), want its clone /run/c1/idmap/0 of %s", mnt.Source, in.IDMapped, vol)
		}
	}
}

func TestBuildSpecMounts(t *testing.T) {
	host := t.TempDir()
	orig := mountPropagation
	t.Cleanup(func() { mountPropagation = orig })
	for _, tc := range []struct {
		name          string
		mount         *runtimeapi.Mount
		shared, slave bool
		wantOpts      []string
		wantRootProp  string
		wantErr       bool
	}{
		{name: "private bind is rprivate and rw", mount: &runtimeapi.Mount{ContainerPath: "/data", HostPath: host},
			wantOpts: []string{"rbind", "rprivate", "rw"}},
		{name: "readonly bind is ro", mount: &runtimeapi.Mount{ContainerPath: "/data", HostPath: host, Readonly: true},
			wantOpts: []string{"rbind", "rprivate", "ro"}},
		{name: "host-to-container on a shared mount is rslave", shared: true,
			mount:    &runtimeapi.Mount{ContainerPath: "/data", HostPath: host, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			wantOpts: []string{"rbind", "rslave", "rw"}, wantRootProp: "rslave"},
		{name: "host-to-container on a private mount fails",
			mount: &runtimeapi.Mount{ContainerPath: "/data", HostPath: host, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, wantErr: true},
		{name: "bidirectional on a shared mount is rshared", shared: true,
			mount:    &runtimeapi.Mount{ContainerPath: "/data", HostPath: host, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			wantOpts: []string{"rbind", "rshared", "rw"}, wantRootProp: "rshared"},
		{name: "bidirectional on a slave mount fails", slave: true,
			mount: &runtimeapi.Mount{ContainerPath: "/data", HostPath: host, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}, wantErr: true},
		{name: "a missing host path fails", mount: &runtimeapi.Mount{ContainerPath: "/data", HostPath: filepath.Join(host, "nope")}, wantErr: true},
		{name: "a relative container path fails", mount: &runtimeapi.Mount{ContainerPath: "data", HostPath: host}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mountPropagation = func(string) (bool, bool, error) { return tc.shared, tc.slave, nil }
			in := baseInput(t)
			in.Config.Mounts = []*runtimeapi.Mount{tc.mount}
			s, err := buildSpec(in)
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			byDst := map[string]specs.Mount{}
			for _, m := range s.Mounts {
				byDst[m.Destination] = m
			}
			if m := byDst["/data"]; m.Source != host || !slices.Equal(m.Options, tc.wantOpts) {
				t.Errorf("/data = %+v, want source %s options %q", m, host, tc.wantOpts)
			}
			if s.Linux.RootfsPropagation != tc.wantRootProp {
				t.Errorf("rootfs propagation = %q, want %q", s.Linux.RootfsPropagation, tc.wantRootProp)
			}
			for dst, src := range map[string]string{"/etc/hosts": "/p/hosts", "/etc/resolv.conf": "/p/resolv.conf",
				"/etc/hostname": "/p/hostname", "/dev/shm": "/run/p/shm"} {
				if byDst[dst].Source != src {
					t.Errorf("%s = %+v, want a bind of %s", dst, byDst[dst], src)
				}
			}
		})
	}
}

func TestBuildSpecUserMountReplacesPodFile(t *testing.T) {
	host := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(host, nil, 0o644)
	in := baseInput(t)
	in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/etc/hosts", HostPath: host}}
	s, err := buildSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range s.Mounts {
		if m.Destination == "/etc/hosts" {
			n++
			if m.Source != host {
				t.Errorf("/etc/hosts from %s, want kubelet's %s", m.Source, host)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d mounts at /etc/hosts, want 1", n)
	}
}

func TestBuildSpecResources(t *testing.T) {
	res := &runtimeapi.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, CpusetCpus: "0", CpusetMems: "0",
		MemoryLimitInBytes: 64 << 20, OomScoreAdj: -500,
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
		Unified:        map[string]string{"pids.max": "20"},
	}
	for _, tc := range []struct {
		name     string
		restrict bool
		floor    int
		swap     bool
		wantAdj  int
		wantSwap int64
	}{
		{name: "unrestricted oom_score_adj passes through", wantAdj: -500},
		{name: "restricted oom_score_adj is clamped to berthd's own", restrict: true, floor: 0, wantAdj: 0},
		{name: "restricted oom_score_adj above the floor stays", restrict: true, floor: -900, wantAdj: -500},
		{name: "with swap accounting swap equals the limit", swap: true, wantAdj: -500, wantSwap: 64 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Config.Linux = &runtimeapi.LinuxContainerConfig{Resources: res}
			in.RestrictOOM, in.MinOOMScoreAdj, in.SwapAccounting = tc.restrict, tc.floor, tc.swap
			in.Hugetlb = true
			s, err := buildSpec(in)
			if err != nil {
				t.Fatal(err)
			}
			r := s.Linux.Resources
			if *s.Process.OOMScoreAdj != tc.wantAdj {
				t.Errorf("oom_score_adj = %d, want %d", *s.Process.OOMScoreAdj, tc.wantAdj)
			}
			if *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || r.CPU.Cpus != "0" || r.CPU.Mems != "0" {
				t.Errorf("cpu = %+v", r.CPU)
			}
			if *r.Memory.Limit != 64<<20 {
				t.Errorf("memory limit = %d", *r.Memory.Limit)
			}
			if got := r.Memory.Swap; (got == nil) != (tc.wantSwap == 0) || got != nil && *got != tc.wantSwap {
				t.Errorf("swap = %v, want %d", got, tc.wantSwap)
			}
			if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Pagesize != "2MB" {
				t.Errorf("hugepages = %+v", r.HugepageLimits)
			}
			if r.Pids == nil || *r.Pids.Limit != 20 {
				t.Errorf("pids.max on cgroup v1 not translated: %+v", r.Pids)
			}
		})
	}
}

// TestLinuxResourcesHugepagesAndUnifiedKeys covers the translation of
// hugepage limits and unified keys on each cgroup layout. This machine is
// hybrid (v1 controllers, an empty cgroup2), so the v2 rows run only here,
// with the layout given as input.
func TestLinuxResourcesHugepagesAndUnifiedKeys(t *testing.T) {
	kubelet := []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}, {PageSize: "1GB", Limit: 0}}
	limit := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name      string
		in        specInput
		r         *runtimeapi.LinuxContainerResources
		wantErr   bool
		hugepages []specs.LinuxHugepageLimit
		unified   map[string]string
		pids      *int64
		memory    *int64
	}{
		{name: "hugepage limits pass through where hugetlb takes them", in: specInput{Hugetlb: true},
			r:         &runtimeapi.LinuxContainerResources{HugepageLimits: kubelet},
			hugepages: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 0}}},
		{name: "hugepage limits pass through on cgroup v2 with hugetlb", in: specInput{Hugetlb: true, Unified: true},
			r:         &runtimeapi.LinuxContainerResources{HugepageLimits: kubelet},
			hugepages: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 0}}},
		{name: "hugepage limits are left out without a hugetlb controller",
			r: &runtimeapi.LinuxContainerResources{HugepageLimits: kubelet}},
		{name: "a hugepage limit without a page size is refused even without hugetlb",
			r: &runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{{Limit: 1}}}, wantErr: true},
		{name: "on cgroup v2 unified keys pass through as given", in: specInput{Unified: true},
			r:       &runtimeapi.LinuxContainerResources{Unified: map[string]string{"memory.high": "1000000", "pids.max": "20", "hugetlb.2MB.max": "0"}},
			unified: map[string]string{"memory.high": "1000000", "pids.max": "20", "hugetlb.2MB.max": "0"}},
		{name: "on cgroup v1 pids.max becomes the pids limit",
			r: &runtimeapi.LinuxContainerResources{Unified: map[string]string{"pids.max": "20"}}, pids: limit(20)},
		{name: "on cgroup v1 pids.max of max is no limit",
			r: &runtimeapi.LinuxContainerResources{Unified: map[string]string{"pids.max": "max"}}, pids: limit(-1)},
		{name: "on cgroup v1 memory.max becomes the memory limit",
			r: &runtimeapi.LinuxContainerResources{Unified: map[string]string{"memory.max": "1048576"}}, memory: limit(1 << 20)},
		{name: "on cgroup v1 a malformed pids.max is refused",
			r: &runtimeapi.LinuxContainerResources{Unified: map[string]string{"pids.max": "lots"}}, wantErr: true},
		{name: "on cgroup v1 a key without a v1 equivalent is refused",
			r: &runtimeapi.LinuxContainerResources{Unified: map[string]string{"hugetlb.2MB.max": "0"}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res specs.LinuxResources
			err := linuxResources(&res, tc.r, tc.in)
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.HugepageLimits, tc.hugepages) {
				t.Errorf("hugepage limits = %+v, want %+v", res.HugepageLimits, tc.hugepages)
			}
			if len(res.Unified) != len(tc.unified) {
				t.Errorf("unified = %v, want %v", res.Unified, tc.unified)
			}
			for k, v := range tc.unified {
				if res.Unified[k] != v {
					t.Errorf("unified[%s] = %q, want %q", k, res.Unified[k], v)
				}
			}
			if got := res.Pids; (got == nil) != (tc.pids == nil) || got != nil && *got.Limit != *tc.pids {
				t.Errorf("pids = %+v, want %v", got, tc.pids)
			}
			if got := res.Memory; (got == nil) != (tc.memory == nil) || got != nil && *got.Limit != *tc.memory {
				t.Errorf("memory = %+v, want %v", got, tc.memory)
			}
		})
	}
}

func TestBuildSpecRefusesUnifiedKeysV1CannotHonour(t *testing.T) {
	in := baseInput(t)
	in.Config.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
		Unified: map[string]string{"memory.high": "1000000"}}}
	if _, err := buildSpec(in); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("err = %v, want invalid argument", err)
	}
	in.Unified = true
	s, err := buildSpec(in)
	if err != nil || s.Linux.Resources.Unified["memory.high"] != "1000000" {
		t.Fatalf("on cgroup v2 unified keys pass through: %v", err)
	}
}

func TestBuildSpecSecurity(t *testing.T) {
	in := baseInput(t)
	in.Config.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		ReadonlyRootfs: true,
		Capabilities:   &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"CAP_KILL"}},
	}}
	in.Config.Tty = true
	in.Config.WorkingDir = "/work"
	in.Image.WorkingDir = "/img"
	s, err := buildSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Root.Readonly || !s.Process.Terminal || s.Process.Cwd != "/work" {
		t.Errorf("root %+v terminal %v cwd %q", s.Root, s.Process.Terminal, s.Process.Cwd)
	}
	caps := s.Process.Capabilities.Bounding
	if !slices.Contains(caps, "CAP_NET_ADMIN") || slices.Contains(caps, "CAP_KILL") || !slices.Contains(caps, "CAP_CHOWN") {
		t.Errorf("capabilities = %q", caps)
	}
	in.Config.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"CAP_BOGUS"}}
	if _, err := buildSpec(in); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown capability: err = %v", err)
	}
}

func i64v(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }

func TestCapsInMaskFollowsKernelNumbering(t *testing.T) {
	all := allCaps()
	if all[24] != "CAP_SYS_RESOURCE" || all[21] != "CAP_SYS_ADMIN" || all[40] != "CAP_CHECKPOINT_RESTORE" {
		t.Fatalf("capability names are out of kernel order: %q %q %q", all[24], all[21], all[40])
	}
	got := capsInMask(all, 1<<0|1<<24)
	if !slices.Equal(got, []string{"CAP_CHOWN", "CAP_SYS_RESOURCE"}) {
		t.Fatalf("caps of mask = %q", got)
	}
}
