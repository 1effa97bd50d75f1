package integration

// The CRI stats calls, seen from the user's side: a container that holds
// memory, burns CPU and writes into its root filesystem shows it in
// ContainerStats; ListContainerStats filters as ListContainers does; a
// pod's stats carry its cgroup, its eth0 counters and its containers.

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-runtime/berth/test/hostnet"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const mib = 1 << 20

// statsContainer is a container in the pod's network and IPC namespaces
// running sh -c script, labelled role=role.
func statsContainer(p *ctrEnv, name, role, script string) *runtimeapi.ContainerConfig {
	cfg := container(p, name, script)
	cfg.Labels = map[string]string{"role": role}
	cfg.Linux = &runtimeapi.LinuxContainerConfig{
		SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		},
	}
	return cfg
}

func mustContainerStats(t *testing.T, p *ctrEnv, id string) *runtimeapi.ContainerStats {
	t.Helper()
	resp, err := p.d.Runtime.ContainerStats(ctxFor(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStats %s: %v", id, err)
	}
	return resp.Stats
}

func mustPodSandboxStats(t *testing.T, p *ctrEnv, id string) *runtimeapi.PodSandboxStats {
	t.Helper()
	resp, err := p.d.Runtime.PodSandboxStats(ctxFor(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStats %s: %v", id, err)
	}
	return resp.Stats
}

// eventuallyStats polls ContainerStats until ok accepts it (a minute at
// most: a writable layer's walk is reused for a while) and returns it.
func eventuallyStats(t *testing.T, p *ctrEnv, id, what string, ok func(*runtimeapi.ContainerStats) bool) *runtimeapi.ContainerStats {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := mustContainerStats(t, p, id)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: %s: not seen within a minute; last stats %v", id, what, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func statsIDs(sts []*runtimeapi.ContainerStats) []string {
	var ids []string
	for _, s := range sts {
		ids = append(ids, s.GetAttributes().GetId())
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func TestStatsReportContainersAndPodsCgroupsLayersAndNetwork(t *testing.T) {
	e := startNetDaemon(t, 24)
	e.withBusybox(t)
	for _, h := range handlers {
		t.Run(h, func(t *testing.T) { testStats(t, e, h) })
	}
}

func testStats(t *testing.T, e *netEnv, handler string) {
	cfg := podConfig(e.d, "stats-"+handler)
	cfg.LogDirectory = t.TempDir()
	p := &ctrEnv{d: e.d, image: e.image, podCfg: cfg, logDir: cfg.LogDirectory}
	p.pod = mustRunPodWith(t, e.d, cfg, handler)

	// The hog fills 20 MiB of the pod's /dev/shm (memory charged to its
	// cgroup), then spins at most half a core.
	hogCfg := statsContainer(p, "hog", "hog",
		"dd if=/dev/zero of=/dev/shm/hog bs=1M count=20 2>/dev/null; while :; do :; done")
	hogCfg.Linux.Resources = &runtimeapi.LinuxContainerResources{
		MemoryLimitInBytes: 256 * mib, CpuPeriod: 100000, CpuQuota: 50000,
	}
	hog := p.mustRun(t, hogCfg)
	idle := p.mustRun(t, statsContainer(p, "idle", "idle", "exec sleep 3600"))
	created := p.mustCreate(t, statsContainer(p, "created", "idle", "true"))

	t.Run("ContainerStats reports the memory a container holds", func(t *testing.T) {
		st := eventuallyStats(t, p, hog, "a working set of 20 MiB", func(st *runtimeapi.ContainerStats) bool {
			return st.GetMemory().GetWorkingSetBytes().GetValue() >= 20*mib
		})
		m := st.GetMemory()
		if st.GetAttributes().GetId() != hog || st.GetAttributes().GetLabels()["role"] != "hog" ||
			st.GetAttributes().GetMetadata().GetName() != "hog" {
			t.Errorf("attributes %v, want the hog's ID, name and labels", st.GetAttributes())
		}
		if m.GetTimestamp() <= 0 {
			t.Errorf("memory timestamp %d", m.GetTimestamp())
		}
		if m.GetUsageBytes().GetValue() < m.GetWorkingSetBytes().GetValue() {
			t.Errorf("usage %d below the working set %d", m.GetUsageBytes().GetValue(), m.GetWorkingSetBytes().GetValue())
		}
		if got, want := m.GetAvailableBytes().GetValue(), 256*mib-m.GetWorkingSetBytes().GetValue(); got != want {
			t.Errorf("available %d, want the 256 MiB limit less the working set, %d", got, want)
		}
		if m.GetPageFaults().GetValue() == 0 {
			t.Error("no page faults counted for a container that touched 20 MiB")
		}
	})

	t.Run("ContainerStats reports CPU time growing and a rate once the sample is renewed", func(t *testing.T) {
		first := mustContainerStats(t, p, hog).GetCpu()
		// Calls within the collection period (1 s) answer the same
		// sample; wait for one taken half a second later at least.
		second := eventuallyStats(t, p, hog, "a CPU sample half a second newer", func(st *runtimeapi.ContainerStats) bool {
			return st.GetCpu().GetTimestamp() >= first.GetTimestamp()+int64(500*time.Millisecond)
		}).GetCpu()
		if second.GetUsageCoreNanoSeconds().GetValue() <= first.GetUsageCoreNanoSeconds().GetValue() {
			t.Errorf("CPU time %d then %d, want it growing", first.GetUsageCoreNanoSeconds().GetValue(), second.GetUsageCoreNanoSeconds().GetValue())
		}
		// The hog spins at most half a core (its quota).
		if n := second.GetUsageNanoCores().GetValue(); n == 0 || n > 600_000_000 {
			t.Errorf("usage_nano_cores %v, want above 0 and about half a core at most", second.GetUsageNanoCores())
		}
	})

	t.Run("stats calls answer a sample read in the background, at most two periods old", func(t *testing.T) {
		mustContainerStats(t, p, hog) // asks: the sampler refreshes the hog each second
		time.Sleep(2500 * time.Millisecond)
		before := time.Now()
		cpu := mustContainerStats(t, p, hog).GetCpu()
		at := time.Unix(0, cpu.GetTimestamp())
		if !at.Before(before) {
			t.Errorf("CPU sampled at %v, after the call began (%v): the call read the cgroup itself", at, before)
		}
		if age := before.Sub(at); age > 2*time.Second {
			t.Errorf("CPU sample %v old after 2.5 s without calls: the sampler did not refresh it", age)
		}
	})

	t.Run("the writable layer grows by what the container writes into its rootfs", func(t *testing.T) {
		before := mustContainerStats(t, p, hog).GetWritableLayer()
		fs, err := e.d.Images.ImageFsInfo(ctxFor(t), &runtimeapi.ImageFsInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs.ContainerFilesystems) != 1 || before.GetFsId().GetMountpoint() != fs.ContainerFilesystems[0].GetFsId().GetMountpoint() {
			t.Errorf("writable layer on %q, want ImageFsInfo's container filesystem %v", before.GetFsId().GetMountpoint(), fs.ContainerFilesystems)
		}
		p.mustExec(t, hog, "dd", "if=/dev/urandom", "of=/five-mib", "bs=1M", "count=5")
		after := eventuallyStats(t, p, hog, "5 MiB more in the writable layer", func(st *runtimeapi.ContainerStats) bool {
			return st.GetWritableLayer().GetUsedBytes().GetValue() >= before.GetUsedBytes().GetValue()+5*mib
		}).GetWritableLayer()
		if after.GetInodesUsed().GetValue() <= before.GetInodesUsed().GetValue() {
			t.Errorf("inodes %d then %d after a new file", before.GetInodesUsed().GetValue(), after.GetInodesUsed().GetValue())
		}
	})

	t.Run("ListContainerStats filters by ID, ID prefix, pod and label", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    *runtimeapi.ContainerStatsFilter
			want []string
		}{
			{"no filter lists the pod's containers among all", nil, nil},
			{"by ID", &runtimeapi.ContainerStatsFilter{Id: hog}, []string{hog}},
			{"by ID prefix", &runtimeapi.ContainerStatsFilter{Id: idle[:8]}, []string{idle}},
			{"by pod", &runtimeapi.ContainerStatsFilter{PodSandboxId: p.pod}, sorted(hog, idle, created)},
			{"by pod prefix and label", &runtimeapi.ContainerStatsFilter{PodSandboxId: p.pod[:8], LabelSelector: map[string]string{"role": "idle"}}, sorted(idle, created)},
			{"by a label no container has", &runtimeapi.ContainerStatsFilter{PodSandboxId: p.pod, LabelSelector: map[string]string{"role": "none"}}, nil},
			{"by an unknown ID", &runtimeapi.ContainerStatsFilter{Id: "ffffffffffffff"}, nil},
		} {
			resp, err := e.d.Runtime.ListContainerStats(ctxFor(t), &runtimeapi.ListContainerStatsRequest{Filter: tc.f})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got := statsIDs(resp.Stats)
			if tc.f == nil {
				for _, id := range []string{hog, idle, created} {
					if !slices.Contains(got, id) {
						t.Errorf("%s: %s missing from %v", tc.name, id, got)
					}
				}
				continue
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	})

	t.Run("a container that is not running has a writable layer but no CPU or memory", func(t *testing.T) {
		st := mustContainerStats(t, p, created)
		if st.GetCpu() != nil || st.GetMemory() != nil {
			t.Errorf("created container reports cpu %v memory %v", st.GetCpu(), st.GetMemory())
		}
		if st.GetWritableLayer().GetFsId().GetMountpoint() == "" || st.GetWritableLayer().GetTimestamp() <= 0 {
			t.Errorf("created container's writable layer %v", st.GetWritableLayer())
		}
	})

	t.Run("PodSandboxStats reports the pod's cgroup, eth0 traffic, processes and containers", func(t *testing.T) {
		l, err := net.Listen("tcp", net.JoinHostPort(e.gateway.String(), "0"))
		if err != nil {
			t.Fatalf("listen on the bridge address: %v", err)
		}
		defer l.Close()
		hostnet.EchoServer(l)
		before := mustPodSandboxStats(t, p, p.pod)
		msg := strings.Repeat("x", 200)
		if got := podEcho(t, p, idle, e.gateway.String(), l.Addr().(*net.TCPAddr).Port, msg); got != msg {
			t.Fatalf("echo from the host's bridge address: %d bytes back, want %d", len(got), len(msg))
		}
		after := mustPodSandboxStats(t, p, p.pod[:10])

		if after.GetAttributes().GetId() != p.pod || after.GetAttributes().GetLabels()["app"] != cfg.Labels["app"] {
			t.Errorf("attributes %v, want the pod's ID and labels", after.GetAttributes())
		}
		b, a := before.GetLinux().GetNetwork().GetDefaultInterface(), after.GetLinux().GetNetwork().GetDefaultInterface()
		if a.GetName() != "eth0" {
			t.Errorf("default interface %q, want eth0 (all: %v)", a.GetName(), after.GetLinux().GetNetwork())
		}
		if a.GetRxBytes().GetValue() < b.GetRxBytes().GetValue()+200 || a.GetTxBytes().GetValue() < b.GetTxBytes().GetValue()+200 {
			t.Errorf("eth0 rx %d→%d tx %d→%d bytes across a 200-byte echo", b.GetRxBytes().GetValue(), a.GetRxBytes().GetValue(),
				b.GetTxBytes().GetValue(), a.GetTxBytes().GetValue())
		}
		for _, i := range after.GetLinux().GetNetwork().GetInterfaces() {
			if i.GetName() == "lo" || i.GetName() == "eth0" {
				t.Errorf("interfaces besides the default list %s", i.GetName())
			}
		}
		linux := after.GetLinux()
		if linux.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 {
			t.Errorf("pod CPU %v, want time (the hog spins)", linux.GetCpu())
		}
		// A rate needs two samples of the pod's cgroup, a period apart.
		for deadline := time.Now().Add(time.Minute); linux.GetCpu().GetUsageNanoCores().GetValue() == 0; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("pod CPU %v: no rate within a minute (the hog spins)", linux.GetCpu())
			}
			linux = mustPodSandboxStats(t, p, p.pod).GetLinux()
		}
		if linux.GetMemory().GetWorkingSetBytes().GetValue() < 20*mib {
			t.Errorf("pod working set %d, want at least the hog's 20 MiB", linux.GetMemory().GetWorkingSetBytes().GetValue())
		}
		if n := linux.GetProcess().GetProcessCount().GetValue(); n < 2 {
			t.Errorf("pod process count %d, want the hog's and the sleeper's at least", n)
		}
		if got, want := statsIDs(linux.GetContainers()), sorted(hog, idle, created); !slices.Equal(got, want) {
			t.Errorf("pod's containers %v, want %v", got, want)
		}
	})

	t.Run("ListPodSandboxStats filters by ID prefix and label", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    *runtimeapi.PodSandboxStatsFilter
			want int
		}{
			{"by ID prefix", &runtimeapi.PodSandboxStatsFilter{Id: p.pod[:8]}, 1},
			{"by label", &runtimeapi.PodSandboxStatsFilter{LabelSelector: cfg.Labels}, 1},
			{"by ID and another label", &runtimeapi.PodSandboxStatsFilter{Id: p.pod, LabelSelector: map[string]string{"app": "none"}}, 0},
		} {
			resp, err := e.d.Runtime.ListPodSandboxStats(ctxFor(t), &runtimeapi.ListPodSandboxStatsRequest{Filter: tc.f})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if len(resp.Stats) != tc.want || (tc.want == 1 && resp.Stats[0].GetAttributes().GetId() != p.pod) {
				t.Errorf("%s: %d pods, want %d (this pod)", tc.name, len(resp.Stats), tc.want)
			}
		}
	})

	t.Run("unknown, empty and ambiguous IDs are refused as elsewhere", func(t *testing.T) {
		if _, err := e.d.Runtime.ContainerStats(ctxFor(t), &runtimeapi.ContainerStatsRequest{ContainerId: "ffffffffffffff"}); status.Code(err) != codes.NotFound {
			t.Errorf("ContainerStats of an unknown ID: %v, want NotFound", err)
		}
		if _, err := e.d.Runtime.ContainerStats(ctxFor(t), &runtimeapi.ContainerStatsRequest{}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ContainerStats of no ID: %v, want InvalidArgument", err)
		}
		if _, err := e.d.Runtime.PodSandboxStats(ctxFor(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "ffffffffffffff"}); status.Code(err) != codes.NotFound {
			t.Errorf("PodSandboxStats of an unknown ID: %v, want NotFound", err)
		}
		// Create containers until two share a first hex digit (at most 17
		// in all): that digit is an ambiguous prefix.
		seen := map[byte]bool{}
		var prefix string
		for _, id := range []string{hog, idle, created} {
			if seen[id[0]] {
				prefix = id[:1]
			}
			seen[id[0]] = true
		}
		for i := 0; prefix == ""; i++ {
			id := p.mustCreate(t, statsContainer(p, "extra"+strconv.Itoa(i), "extra", "true"))
			if seen[id[0]] {
				prefix = id[:1]
			}
			seen[id[0]] = true
		}
		_, err := e.d.Runtime.ContainerStats(ctxFor(t), &runtimeapi.ContainerStatsRequest{ContainerId: prefix})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ambiguous") {
			t.Errorf("ContainerStats of ambiguous prefix %q: %v, want InvalidArgument saying so", prefix, err)
		}
	})

	t.Run("a stopped container keeps its writable layer and loses CPU and memory", func(t *testing.T) {
		if _, err := e.d.Runtime.StopContainer(ctxFor(t), &runtimeapi.StopContainerRequest{ContainerId: hog}); err != nil {
			t.Fatal(err)
		}
		st := mustContainerStats(t, p, hog)
		if st.GetCpu() != nil || st.GetMemory() != nil {
			t.Errorf("stopped container reports cpu %v memory %v", st.GetCpu(), st.GetMemory())
		}
		if st.GetWritableLayer().GetUsedBytes().GetValue() < 5*mib {
			t.Errorf("stopped container's writable layer %v, want its 5 MiB file still counted", st.GetWritableLayer())
		}
	})

	t.Run("a pod that is not ready has no stats and is not listed", func(t *testing.T) {
		mustStopPod(t, e.d, p.pod)
		if _, err := e.d.Runtime.PodSandboxStats(ctxFor(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: p.pod}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("PodSandboxStats of a stopped pod: %v, want FailedPrecondition", err)
		}
		resp, err := e.d.Runtime.ListPodSandboxStats(ctxFor(t), &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{Id: p.pod}})
		if err != nil || len(resp.Stats) != 0 {
			t.Errorf("ListPodSandboxStats of a stopped pod: %v, %v; want none", resp.GetStats(), err)
		}
		mustRemovePod(t, e.d, p.pod)
	})
}

// TestStatsLeaveNoCgroupFileOpenOnceThePodIsRemoved: stats keep a running
// container's and pod's cgroup files open between polls; removing the pod,
// running container and all, must close them, so that berthd holds nothing
// of a cgroup that is gone (or that kubelet will remove).
func TestStatsLeaveNoCgroupFileOpenOnceThePodIsRemoved(t *testing.T) {
	d := startPodDaemon(t)
	image := pullPodTestImage(t, d)
	cfg := podConfig(d, "stats-fds")
	pod := mustRunPod(t, d, cfg)
	ctr := startPodContainer(t, d, pod, cfg, "sleeper", image, runtimeapi.NamespaceMode_CONTAINER, "sleep", "3600")
	p := &ctrEnv{d: d}
	mustContainerStats(t, p, ctr)
	mustPodSandboxStats(t, p, pod)

	// Files of this pod's cgroup open in berthd, by their paths.
	cgroup := cfg.GetLinux().GetCgroupParent()
	open := func() []string {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.Pid()))
		var out []string
		for _, fd := range fds {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", d.Pid(), fd.Name()))
			if err == nil && strings.HasPrefix(target, "/sys/fs/cgroup/") && strings.Contains(target, cgroup) {
				out = append(out, target)
			}
		}
		return out
	}
	if len(open()) == 0 {
		t.Fatalf("no file of cgroup %s open in berthd after stats: the check below would prove nothing", cgroup)
	}
	mustRemovePod(t, d, pod)
	if left := open(); len(left) > 0 {
		t.Errorf("berthd still holds files of the removed pod's cgroup:\n%s", strings.Join(left, "\n"))
	}
}
