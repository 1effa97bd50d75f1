package oci

// Container lifecycle and isolation on every runtime (see main_linux_test.go).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestContainerSeesOnlyItsOwnProcesses(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, sh(`echo pid=$$; ls /proc | grep -c '^[0-9]'`), nil)
		out, ws := c.mustRun(t, rt)
		if ws.ExitStatus() != 0 {
			t.Fatalf("exit %v: %s", ws, out)
		}
		lines := strings.Fields(out)
		if len(lines) != 2 || lines[0] != "pid=1" {
			t.Fatalf("want pid=1 and a count, got %q", out)
		}
		// sh, ls and grep at most.
		if lines[1] > "3" || len(lines[1]) > 1 {
			t.Errorf("container sees %s processes, want at most 3", lines[1])
		}
	})
}

func TestHostnameIsTheSpecs(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"hostname"}, func(s *specs.Spec) { s.Hostname = "berth-box" })
		out, _ := c.mustRun(t, rt)
		if strings.TrimSpace(out) != "berth-box" {
			t.Errorf("hostname %q, want berth-box", out)
		}
	})
}

func TestJoinedNetworkNamespaceIsTheOneInside(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		ns := newNamespace(t, "net", nil)
		var st unix.Stat_t
		if err := unix.Stat(ns, &st); err != nil {
			t.Fatal(err)
		}
		c := newContainer(t, []string{"readlink", "/proc/self/ns/net"}, func(s *specs.Spec) {
			joinNamespace(s, specs.NetworkNamespace, ns)
		})
		out, _ := c.mustRun(t, rt)
		if want := fmt.Sprintf("net:[%d]", st.Ino); strings.TrimSpace(out) != want {
			t.Errorf("netns inside %q, want %q", out, want)
		}
	})
}

func TestAJoinedUTSNamespaceKeepsItsHostname(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		ns := newNamespace(t, "uts", func() error { return unix.Sethostname([]byte("pod-host")) })
		c := newContainer(t, []string{"hostname"}, func(s *specs.Spec) {
			s.Hostname = ""
			joinNamespace(s, specs.UTSNamespace, ns)
		})
		if out, _ := c.mustRun(t, rt); out != "pod-host\n" {
			t.Errorf("hostname in the pod's uts namespace: %q, want pod-host", out)
		}
	})
}

func TestBuiltinSetsNoHostnameInAJoinedUTSNamespace(t *testing.T) {
	rt := newRuntime(t, handlers()[0])
	ns := newNamespace(t, "uts", func() error { return unix.Sethostname([]byte("pod-host")) })
	c := newContainer(t, []string{"hostname"}, func(s *specs.Spec) {
		s.Hostname = "not-the-pods"
		joinNamespace(s, specs.UTSNamespace, ns)
	})
	if out, _ := c.mustRun(t, rt); out != "pod-host\n" {
		t.Errorf("hostname: %q, want the pod's", out)
	}
}

func TestBindMountsReadOnlyAndPropagation(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		ro := t.TempDir()
		os.WriteFile(filepath.Join(ro, "f"), []byte("hello"), 0o644)
		os.WriteFile(filepath.Join(ro, "file"), []byte("a file\n"), 0o644)
		// A shared mount, as kubelet requires for HostToContainer.
		prop := t.TempDir()
		if err := unix.Mount(prop, prop, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(prop, unix.MNT_DETACH)
		if err := unix.Mount("", prop, "", unix.MS_SHARED, ""); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(filepath.Join(prop, "sub"), 0o755)
		// The host mounts a tmpfs under prop after the container started;
		// with rslave propagation the container sees it.
		script := `cat /ro/f; echo; if touch /ro/x 2>/dev/null; then echo ro-writable; fi
cat /etc/bound; if { echo x >> /etc/bound; } 2>/dev/null; then echo file-writable; fi
for i in $(seq 1 200); do if [ -e /prop/sub/marker ]; then echo seen; exit 0; fi; sleep 0.05; done; echo not-seen`
		c := newContainer(t, sh(script), func(s *specs.Spec) {
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/ro", Type: "bind", Source: ro, Options: []string{"rbind", "ro"}},
				specs.Mount{Destination: "/etc/bound", Type: "bind", Source: filepath.Join(ro, "file"), Options: []string{"bind", "ro"}},
				specs.Mount{Destination: "/prop", Type: "bind", Source: prop, Options: []string{"rbind", "rslave"}},
			)
		})
		c.mustCreate(t, rt)
		if err := rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(prop, "sub")
		if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(sub, unix.MNT_DETACH)
		os.WriteFile(filepath.Join(sub, "marker"), nil, 0o644)
		c.wait(t)
		out := c.output(t)
		if want := "hello\na file\nseen\n"; out != want {
			t.Errorf("output %q, want %q", out, want)
		}
	})
}

func TestBidirectionalMountPropagatesToTheHost(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		// kubelet's Bidirectional: a shared host mount, bound rshared,
		// and an rshared rootfs (what containerd's CRI sets).
		dir := t.TempDir()
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(dir, unix.MNT_DETACH)
		if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
		c := newContainer(t, sh(`mount -t tmpfs tmpfs /bidir/sub && touch /bidir/sub/from-container && echo mounted`), func(s *specs.Spec) {
			s.Linux.RootfsPropagation = "rshared"
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/bidir", Type: "bind", Source: dir, Options: []string{"rbind", "rshared"}})
			caps := append([]string{"CAP_SYS_ADMIN"}, DefaultCapabilities...)
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
		})
		out, _ := c.mustRun(t, rt)
		defer unix.Unmount(filepath.Join(dir, "sub"), unix.MNT_DETACH)
		if out != "mounted\n" {
			t.Fatalf("output %q", out)
		}
		if !exists(filepath.Join(dir, "sub", "from-container")) {
			t.Error("the container's mount did not reach the host")
		}
	})
}

func TestReadonlyRootfs(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		for _, ro := range []bool{true, false} {
			c := newContainer(t, sh(`touch /x && echo wrote`), func(s *specs.Spec) { s.Root.Readonly = ro })
			out, _ := c.mustRun(t, rt)
			if wrote := strings.Contains(out, "wrote"); wrote == ro {
				t.Errorf("readonly=%v: output %q", ro, out)
			}
		}
	})
}

func TestUserGroupsEnvAndCwd(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, sh(`id -u; id -g; id -G; pwd; echo $FOO; umask`), func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{10, 20}}
			s.Process.Env = append(s.Process.Env, "FOO=bar baz")
			s.Process.Cwd = "/tmp"
			um := uint32(0o027)
			s.Process.User.Umask = &um
		})
		out, _ := c.mustRun(t, rt)
		f := strings.Split(strings.TrimSpace(out), "\n")
		want := []string{"1000", "1001", "", "/tmp", "bar baz", "0027"}
		if len(f) != len(want) {
			t.Fatalf("output %q", out)
		}
		for i, w := range want {
			if i == 2 {
				// id -G: primary then supplementary groups.
				if g := strings.Fields(f[2]); !contains(g, "10") || !contains(g, "20") {
					t.Errorf("groups %q, want 10 and 20", f[2])
				}
				continue
			}
			if f[i] != w {
				t.Errorf("line %d: %q, want %q", i, f[i], w)
			}
		}
	})
}

func TestAMissingWorkingDirectoryIsCreated(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"pwd"}, func(s *specs.Spec) {
			s.Process.Cwd = "/work/dir"
			s.Root.Readonly = true
		})
		if out, _ := c.mustRun(t, rt); out != "/work/dir\n" {
			t.Errorf("pwd %q", out)
		}
	})
}

func TestCgroupLimitsAreVisibleInside(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		mem := int64(64 << 20)
		shares := uint64(512)
		pids := int64(50)
		c := newContainer(t, sh(`cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/pids/pids.max`), func(s *specs.Spec) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
			s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares}
			s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
		})
		c.mustCreate(t, rt)
		host, err := os.ReadFile("/sys/fs/cgroup/memory" + c.spec.Linux.CgroupsPath + "/memory.limit_in_bytes")
		if err != nil || strings.TrimSpace(string(host)) != "67108864" {
			t.Errorf("host memory.limit_in_bytes %q (%v)", host, err)
		}
		if err := rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		c.wait(t)
		if out, want := c.output(t), "67108864\n512\n50\n"; out != want {
			t.Errorf("inside: %q, want %q", out, want)
		}
	})
}

func TestMemoryLimitOOMKillsAHog(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		mem := int64(32 << 20)
		c := newContainer(t, []string{"tail", "/dev/zero"}, func(s *specs.Spec) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem, Swap: &mem}
		})
		_, ws := c.mustRun(t, rt)
		if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
			t.Errorf("hog ended with %v, want SIGKILL", ws)
		}
	})
}

func TestPidsLimitStopsAForkBomb(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		pids := int64(8)
		c := newContainer(t, sh(`(for i in $(seq 1 30); do sleep 1000 & done) 2>&1; echo spawned; exec sleep 1000`), func(s *specs.Spec) {
			s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
		})
		c.mustCreate(t, rt)
		if err := rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Contains(c.output(t), "spawned") })
		if out := c.output(t); !strings.Contains(out, "can't fork") {
			t.Errorf("no fork failed: %q", out)
		}
		procs, err := os.ReadFile("/sys/fs/cgroup/pids" + c.spec.Linux.CgroupsPath + "/cgroup.procs")
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(string(procs))); n == 0 || n > 8 {
			t.Errorf("%d processes in the container, want 1..8", n)
		}
		if err := rt.Kill(context.Background(), c.id, unix.SIGKILL, true); err != nil {
			t.Fatal(err)
		}
		c.wait(t)
	})
}

func TestNothingRunsBeforeStart(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"touch", "/started"}, nil)
		c.mustCreate(t, rt)
		st, err := rt.State(context.Background(), c.id)
		if err != nil || st.Status != StatusCreated || st.Pid != c.pid {
			t.Fatalf("State after Create: %+v %v", st, err)
		}
		// The init is still the runtime's, not the program.
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.pid)); err != nil || strings.HasPrefix(string(cmd), "touch") {
			t.Fatalf("init after Create runs %q (%v)", cmd, err)
		}
		if exists(filepath.Join(c.rootfs, "started")) {
			t.Fatal("the program ran before Start")
		}
		if err := rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		c.wait(t)
		if !exists(filepath.Join(c.rootfs, "started")) {
			t.Fatal("the program did not run after Start")
		}
		st, err = rt.State(context.Background(), c.id)
		if err != nil || st.Status != StatusStopped {
			t.Errorf("State after exit: %+v %v", st, err)
		}
		if err := rt.Start(context.Background(), c.id); !errdefs.IsFailedPrecondition(err) && err == nil {
			t.Errorf("second Start: %v, want an error", err)
		}
	})
}

func TestKill(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		for _, tc := range []struct {
			name string
			sig  syscall.Signal
			all  bool
			want func(unix.WaitStatus) bool
		}{
			{"SIGTERM runs the trap", unix.SIGTERM, false, func(ws unix.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 42 }},
			{"SIGKILL kills", unix.SIGKILL, false, func(ws unix.WaitStatus) bool { return ws.Signaled() && ws.Signal() == unix.SIGKILL }},
			{"SIGKILL to all kills", unix.SIGKILL, true, func(ws unix.WaitStatus) bool { return ws.Signaled() && ws.Signal() == unix.SIGKILL }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newContainer(t, sh(`trap "exit 42" TERM; sleep 1000 & echo ready; while true; do sleep 0.05; done`), nil)
				c.mustCreate(t, rt)
				if err := rt.Start(context.Background(), c.id); err != nil {
					t.Fatal(err)
				}
				waitFor(t, func() bool { return strings.Contains(c.output(t), "ready") })
				st, err := rt.State(context.Background(), c.id)
				if err != nil || st.Status != StatusRunning {
					t.Fatalf("State: %+v %v", st, err)
				}
				if err := rt.Kill(context.Background(), c.id, tc.sig, tc.all); err != nil {
					t.Fatalf("Kill: %v", err)
				}
				if ws := c.wait(t); !tc.want(ws) {
					t.Errorf("init ended with %v", ws)
				}
			})
		}
	})
}

func TestDeleteRemovesCgroupAndState(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"sleep", "1000"}, nil)
		c.mustCreate(t, rt)
		if err := rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		cg := "/sys/fs/cgroup/memory" + c.spec.Linux.CgroupsPath
		if !exists(cg) {
			t.Fatalf("no cgroup at %s", cg)
		}
		if err := rt.Delete(context.Background(), c.id, false); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("Delete of a running container without force: %v, want FailedPrecondition", err)
		}
		pid := c.pid
		go func() { var ws unix.WaitStatus; unix.Wait4(pid, &ws, 0, nil) }()
		if err := rt.Delete(context.Background(), c.id, true); err != nil {
			t.Fatalf("Delete force: %v", err)
		}
		if exists(cg) {
			t.Errorf("cgroup %s left", cg)
		}
		if _, err := rt.State(context.Background(), c.id); !errdefs.IsNotFound(err) {
			t.Errorf("State after Delete: %v, want NotFound", err)
		}
		if err := rt.Delete(context.Background(), c.id, false); err != nil {
			t.Errorf("Delete of an unknown container: %v", err)
		}
	})
}

func TestNoHostFdLeaksIntoTheContainer(t *testing.T) {
	// An fd without close-on-exec in the runtime's process: the classic
	// way host files reach a container.
	fd, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"ls", "/proc/self/fd"}, nil)
		out, _ := c.mustRun(t, rt)
		// 0-2 and the directory ls is reading.
		if f := strings.Fields(out); strings.Join(f, " ") != "0 1 2 3" {
			t.Errorf("fds inside: %q, want 0 1 2 and ls's own", out)
		}
	})
}

func TestTheInitsBinaryCannotBeOverwritten(t *testing.T) {
	rt := newRuntime(t, handlers()[0])
	c := newContainer(t, []string{"true"}, nil)
	c.mustCreate(t, rt)
	// What CVE-2019-5736 does: hold the init's exe, let it exec the user
	// program and exit, then write through the held reference.
	exe, err := os.OpenFile(fmt.Sprintf("/proc/%d/exe", c.pid), unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	if err := rt.Start(context.Background(), c.id); err != nil {
		t.Fatal(err)
	}
	c.wait(t)
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", exe.Fd()), os.O_RDWR, 0)
	if err != nil {
		return // refused: read-only mount (EROFS)
	}
	defer f.Close()
	// A sealed memfd opens but refuses the write. Write back the byte
	// that is there, so a failing test corrupts nothing.
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err == nil {
		t.Fatal("wrote to the binary the container's init ran")
	}
}

func TestMissingExecutableFailsCreate(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"nosuch"}, nil)
		_, err := rt.Create(context.Background(), c.id, c.bundle, IO{Stdout: c.out, Stderr: c.out})
		if err == nil {
			rt.Delete(context.Background(), c.id, true)
			t.Fatal("Create of a missing executable succeeded")
		}
		if !strings.Contains(err.Error(), `exec: "nosuch": executable file not found in $PATH`) {
			t.Errorf("error %q does not name the missing executable", err)
		}
		if _, err := rt.State(context.Background(), c.id); !errdefs.IsNotFound(err) {
			t.Errorf("State after failed Create: %v, want NotFound", err)
		}
		if cg := "/sys/fs/cgroup/memory" + c.spec.Linux.CgroupsPath; exists(cg) {
			t.Errorf("cgroup %s left after failed Create", cg)
		}
	})
}

func TestBadRequests(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		ctx := context.Background()
		if _, err := rt.Create(ctx, "nobundle", t.TempDir(), IO{}); err == nil {
			t.Error("Create without config.json succeeded")
		}
		if _, err := rt.State(ctx, "unknown"); !errdefs.IsNotFound(err) {
			t.Errorf("State of unknown: %v, want NotFound", err)
		}
		if err := rt.Start(ctx, "unknown"); !errdefs.IsNotFound(err) {
			t.Errorf("Start of unknown: %v, want NotFound", err)
		}
		if err := rt.Kill(ctx, "unknown", unix.SIGTERM, false); !errdefs.IsNotFound(err) {
			t.Errorf("Kill of unknown: %v, want NotFound", err)
		}
		c := newContainer(t, []string{"sleep", "1000"}, nil)
		c.mustCreate(t, rt)
		_, err := rt.Create(ctx, c.id, c.bundle, IO{})
		if !errdefs.IsAlreadyExists(err) {
			t.Errorf("second Create: %v, want AlreadyExists", err)
		}
	})
}

// capMask is the /proc/<pid>/status hex mask of the named capabilities.
func capMask(names []string) string {
	var m uint64
	for _, n := range names {
		m |= 1 << capNames[n]
	}
	return fmt.Sprintf("%016x", m)
}

func TestProcessSetupFollowsTheSpec(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		script := `grep -E '^(CapBnd|CapEff|CapPrm|CapInh|CapAmb|NoNewPrivs):' /proc/self/status
echo oom=$(cat /proc/self/oom_score_adj) nofile=$(ulimit -n)
echo forward=$(cat /proc/sys/net/ipv4/ip_forward)
[ -c /dev/null ] && [ -c /dev/urandom ] && [ -c /dev/tty ] && echo devices
[ -L /dev/ptmx ] && [ -L /dev/fd ] && echo links
echo timer_list=$(wc -c < /proc/timer_list)
{ echo x > /proc/sys/kernel/domainname; } 2>/dev/null || echo proc-sys-ro
[ -z "$(ls /sys/firmware)" ] && echo firmware-masked`
		caps := []string{"CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"}
		c := newContainer(t, sh(script), func(s *specs.Spec) {
			adj := 500
			s.Process.OOMScoreAdj = &adj
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 512}}
			s.Process.NoNewPrivileges = true
			s.Process.Capabilities = &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps, Inheritable: caps, Ambient: []string{"CAP_KILL"},
			}
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		})
		out, ws := c.mustRun(t, rt)
		mask := capMask(caps)
		want := fmt.Sprintf(`CapInh:	%s
CapPrm:	%s
CapEff:	%s
CapBnd:	%s
CapAmb:	%s
NoNewPrivs:	1
oom=500 nofile=512
forward=1
devices
links
timer_list=0
proc-sys-ro
firmware-masked
`, mask, mask, mask, mask, capMask([]string{"CAP_KILL"}))
		if out != want || ws.ExitStatus() != 0 {
			t.Errorf("got (exit %d)\n%s\nwant\n%s", ws.ExitStatus(), out, want)
		}
	})
}

func TestKillOfAStoppedContainerIsNotFound(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"true"}, nil)
		c.mustRun(t, rt)
		if err := rt.Kill(context.Background(), c.id, unix.SIGTERM, false); !errdefs.IsNotFound(err) {
			t.Errorf("Kill after exit: %v, want NotFound", err)
		}
	})
}

func TestDeleteOfACreatedContainer(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"touch", "/started"}, nil)
		c.mustCreate(t, rt)
		pid := c.pid
		go func() { var ws unix.WaitStatus; unix.Wait4(pid, &ws, 0, nil) }()
		if err := rt.Delete(context.Background(), c.id, true); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		c.pid = 0
		if exists(filepath.Join(c.rootfs, "started")) {
			t.Error("the program ran")
		}
		if _, err := rt.State(context.Background(), c.id); !errdefs.IsNotFound(err) {
			t.Errorf("State after Delete: %v", err)
		}
	})
}

func TestJoiningAnotherContainersPidNamespace(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		a := mustRunning(t, rt)
		b := newContainer(t, sh(`cat /proc/1/cmdline; echo; echo $$`), func(s *specs.Spec) {
			for i := range s.Linux.Namespaces {
				if s.Linux.Namespaces[i].Type == specs.PIDNamespace {
					s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/pid", a.pid)
				}
			}
		})
		out, _ := b.mustRun(t, rt)
		if f := strings.Split(out, "\n"); len(f) < 2 || f[0] != "sleep\x00100000\x00" || f[1] == "1" {
			t.Errorf("in a shared pid namespace: %q, want the first container's sleep as pid 1", out)
		}
	})
}

// BenchmarkCreateStart measures a container's way from bundle to running
// program and back: Create, Start, its exit, Delete.
func BenchmarkCreateStart(b *testing.B) {
	for _, h := range handlers() {
		b.Run(h.name, func(b *testing.B) {
			rt := newRuntime(b, h)
			c := newContainer(b, []string{"true"}, nil)
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("%s-%d", c.id, i)
				pid, err := rt.Create(context.Background(), id, c.bundle, IO{})
				if err != nil {
					b.Fatal(err)
				}
				if err := rt.Start(context.Background(), id); err != nil {
					b.Fatal(err)
				}
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, 0, nil)
				if err := rt.Delete(context.Background(), id, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestKillAllReachesEveryProcessOfTheContainer(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		// In a shared PID namespace the init's death does not take its
		// other processes along; only the cgroup knows them.
		a := mustRunning(t, rt)
		b := newContainer(t, sh(`sleep 1000 & echo started; exec sleep 1001`), func(s *specs.Spec) {
			for i := range s.Linux.Namespaces {
				if s.Linux.Namespaces[i].Type == specs.PIDNamespace {
					s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/pid", a.pid)
				}
			}
		})
		b.mustCreate(t, rt)
		if err := rt.Start(context.Background(), b.id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Contains(b.output(t), "started") })
		procs := "/sys/fs/cgroup/pids" + b.spec.Linux.CgroupsPath + "/cgroup.procs"
		if n := len(strings.Fields(readFile(t, procs))); n != 2 {
			t.Fatalf("%d processes in b, want 2", n)
		}
		if err := rt.Kill(context.Background(), b.id, unix.SIGKILL, true); err != nil {
			t.Fatal(err)
		}
		b.wait(t)
		waitFor(t, func() bool { return strings.TrimSpace(readFile(t, procs)) == "" })
		if st, err := rt.State(context.Background(), a.id); err != nil || st.Status != StatusRunning {
			t.Errorf("the other container: %+v %v", st, err)
		}
	})
}

func TestSystemdDriverWithoutSystemdFailsCreateCleanly(t *testing.T) {
	// This machine runs no systemd: Create must say so and leave nothing.
	rts, err := New(Options{
		StateDir: t.TempDir(), Handlers: map[string]Handler{"berth": {Type: "builtin"}},
		CgroupDriver: "systemd", BinaryPath: testBinary,
	})
	if err != nil {
		t.Fatal(err)
	}
	rt := rts["berth"]
	c := newContainer(t, []string{"true"}, func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:berth:" + "x" })
	_, err = rt.Create(context.Background(), c.id, c.bundle, IO{})
	if err == nil || !strings.Contains(err.Error(), "systemd") {
		t.Errorf("Create with the systemd driver: %v, want an error about systemd", err)
	}
	if _, err := rt.State(context.Background(), c.id); !errdefs.IsNotFound(err) {
		t.Errorf("State after failed Create: %v", err)
	}
}

func TestDeviceNodesAndTheDeviceCgroup(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		// The built-in runtime lets no block device nor /dev/mem (c 1:1)
		// be made; runc always appends "mknod of any node" to the rules,
		// so there the node is made but cannot be opened. The host's
		// /dev/mem bound in cannot be opened; a spec device allowed by a
		// rule works.
		script := `mknod /tmp/sda b 7 0 2>/dev/null && echo made-block && head -c1 /tmp/sda 2>&1 | grep -o 'Operation not permitted'
mknod /tmp/mem c 1 1 2>/dev/null && echo made-mem
head -c1 /host-mem 2>&1 | grep -o 'Operation not permitted'
echo hi > /dev/extra-null && echo extra-works
ls -l /dev/extra-null | cut -c1-10`
		// The host may have no /dev/mem: a node of its own (opened on the
		// host, ENXIO without the driver) stands for it.
		mem := filepath.Join(t.TempDir(), "mem")
		if err := unix.Mknod(mem, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
			t.Fatal(err)
		}
		c := newContainer(t, sh(script), func(s *specs.Spec) {
			mode := os.FileMode(0o640)
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/extra-null", Type: "c", Major: 1, Minor: 3, FileMode: &mode})
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rw"})
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/host-mem", Type: "bind", Source: mem, Options: []string{"rbind", "ro"}})
		})
		out, _ := c.mustRun(t, rt)
		want := "Operation not permitted\nextra-works\ncrw-r-----\n"
		if strings.HasSuffix(t.Name(), "/runc") {
			want = "made-block\nOperation not permitted\nmade-mem\n" + want
		}
		if out != want {
			t.Errorf("got %q, want %q", out, want)
		}
	})
}

func TestBuiltinIgnoresHugepageLimitsWithoutHugetlb(t *testing.T) {
	// kubelet sends a limit per page size the node has; on this machine
	// hugetlb is no v1 hierarchy, and that must not fail the container.
	// (runc fails here; spec generators check HugetlbAvailable.)
	if HugetlbAvailable() {
		t.Fatal("this test expects the project machine's hybrid cgroups, where hugetlb is unusable")
	}
	rt := newRuntime(t, handlers()[0])
	c := newContainer(t, []string{"true"}, func(s *specs.Spec) {
		s.Linux.Resources.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 0}}
	})
	if _, ws := c.mustRun(t, rt); ws.ExitStatus() != 0 {
		t.Errorf("exit %v", ws)
	}
}
