package oci

// Exec and terminals on every runtime (see main_linux_test.go).

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mustRunning creates and starts a container that sleeps.
func mustRunning(t testing.TB, rt Runtime) *container {
	c := newContainer(t, []string{"sleep", "100000"}, func(s *specs.Spec) { s.Hostname = "exec-box" })
	c.mustCreate(t, rt)
	if err := rt.Start(context.Background(), c.id); err != nil {
		t.Fatal(err)
	}
	return c
}

// execOut runs proc in c and returns its output and exit code.
func execOut(t *testing.T, rt Runtime, c *container, proc *specs.Process) (string, int, error) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "exec-out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p, err := rt.Exec(context.Background(), c.id, proc, IO{Stdout: out, Stderr: out})
	if err != nil {
		return "", 0, err
	}
	code, err := p.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	b, _ := os.ReadFile(out.Name())
	return string(b), code, nil
}

func execProc(args ...string) *specs.Process {
	return &specs.Process{
		Args: args,
		Env:  []string{"PATH=/bin"},
		Cwd:  "/",
		Capabilities: &specs.LinuxCapabilities{
			Bounding: DefaultCapabilities, Effective: DefaultCapabilities, Permitted: DefaultCapabilities,
		},
	}
}

func TestExecOutputAndExitCodes(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := mustRunning(t, rt)
		for _, tc := range []struct {
			name     string
			proc     *specs.Process
			wantOut  string
			wantCode int
		}{
			{"echo prints", execProc("echo", "hello"), "hello\n", 0},
			{"exit code is passed on", execProc("sh", "-c", "exit 3"), "", 3},
			{"the program is killed by a signal", execProc("sh", "-c", "kill -KILL $$"), "", 137},
			{"it is in the container's uts namespace", execProc("hostname"), "exec-box\n", 0},
			{"the container's init is pid 1", execProc("cat", "/proc/1/cmdline"), "sleep\x00100000\x00", 0},
			{"it gets the spec's user, env and cwd", func() *specs.Process {
				p := execProc("sh", "-c", "echo $(id -u) $(id -g) $FOO $(pwd)")
				p.User = specs.User{UID: 1234, GID: 99}
				p.Env = append(p.Env, "FOO=foo")
				p.Cwd = "/tmp"
				return p
			}(), "1234 99 foo /tmp\n", 0},
			{"an empty cwd is /", func() *specs.Process { p := execProc("pwd"); p.Cwd = ""; return p }(), "/\n", 0},
			{"no runtime fd reaches it", execProc("ls", "/proc/self/fd"), "0\n1\n2\n3\n", 0},
			{"it has only the spec's capabilities", func() *specs.Process {
				p := execProc("grep", "CapEff", "/proc/self/status")
				p.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}}
				return p
			}(), "CapEff:\t0000000000000020\n", 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, code, err := execOut(t, rt, c, tc.proc)
				if err != nil {
					t.Fatalf("Exec: %v", err)
				}
				if out != tc.wantOut || code != tc.wantCode {
					t.Errorf("got %q exit %d, want %q exit %d", out, code, tc.wantOut, tc.wantCode)
				}
			})
		}
	})
}

func TestExecJoinsTheContainersPidNamespaceAndCgroup(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := mustRunning(t, rt)
		wantNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.pid))
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := execOut(t, rt, c, execProc("sh", "-c", "readlink /proc/self/ns/pid; cat /proc/self/cgroup"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(out, "\n")
		if lines[0] != wantNS {
			t.Errorf("pid ns %q, want %q", lines[0], wantNS)
		}
		if !strings.Contains(out, "memory:"+c.spec.Linux.CgroupsPath+"\n") {
			t.Errorf("exec not in the container's memory cgroup:\n%s", out)
		}
	})
}

// TestExecJoinsTheContainersUTSNamespaceWhateverTheMainThreadIsIn: a
// goroutine that moves its locked thread into a pod's namespaces and
// exits can leave the main thread parked there for good (Go cannot end
// the main thread), so /proc/self/ns names the pod's. An exec must still
// join the container's namespaces rather than take them for its own.
func TestExecJoinsTheContainersUTSNamespaceWhateverTheMainThreadIsIn(t *testing.T) {
	rt := newRuntime(t, handlers()[0])
	ns := newNamespace(t, "uts", func() error { return unix.Sethostname([]byte("pod-host")) })
	c := newContainer(t, []string{"sleep", "100000"}, func(s *specs.Spec) {
		s.Hostname = ""
		joinNamespace(s, specs.UTSNamespace, ns)
	})
	c.mustCreate(t, rt)
	if err := rt.Start(context.Background(), c.id); err != nil {
		t.Fatal(err)
	}

	host, err := os.Open("/proc/thread-self/ns/uts")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	pod, err := os.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()
	var joinErr error
	onMainThread(func() { joinErr = unix.Setns(int(pod.Fd()), unix.CLONE_NEWUTS) })
	if joinErr != nil {
		t.Fatalf("move the main thread into the pod's uts namespace: %v", joinErr)
	}
	defer onMainThread(func() {
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWUTS); err != nil {
			panic(fmt.Sprintf("the main thread cannot return to the host's uts namespace: %v", err))
		}
	})

	out, code, err := execOut(t, rt, c, execProc("hostname"))
	if err != nil || code != 0 {
		t.Fatalf("Exec: %v (exit %d, %q)", err, code, out)
	}
	if out != "pod-host\n" {
		t.Errorf("hostname in the exec: %q, want pod-host", out)
	}
}

func TestExecOfAMissingBinaryFails(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := mustRunning(t, rt)
		_, _, err := execOut(t, rt, c, execProc("nosuch"))
		if err == nil || !strings.Contains(err.Error(), `exec: "nosuch": executable file not found in $PATH`) {
			t.Errorf("Exec of a missing binary: %v", err)
		}
	})
}

func TestExecSignal(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := mustRunning(t, rt)
		for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGKILL} {
			p, err := rt.Exec(context.Background(), c.id, execProc("sleep", "1000"), IO{})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code, err := p.Wait(); err != nil || code != 128+int(sig) {
				t.Errorf("after %v: exit %d %v, want %d", sig, code, err, 128+int(sig))
			}
		}
		// Nothing of the execs stays in the container.
		pids, _ := os.ReadFile("/sys/fs/cgroup/pids" + c.spec.Linux.CgroupsPath + "/cgroup.procs")
		if n := len(strings.Fields(string(pids))); n != 1 {
			t.Errorf("%d processes in the container after the execs, want 1: %s", n, pids)
		}
	})
}

func TestExecInAStoppedContainerFails(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"true"}, nil)
		c.mustRun(t, rt)
		if _, _, err := execOut(t, rt, c, execProc("true")); err == nil {
			t.Error("Exec in a stopped container succeeded")
		}
	})
}

func BenchmarkExec(b *testing.B) {
	for _, h := range handlers() {
		b.Run(h.name, func(b *testing.B) {
			rt := newRuntime(b, h)
			c := mustRunning(b, rt).id
			b.ResetTimer()
			for range b.N {
				p, err := rt.Exec(context.Background(), c, execProc("true"), IO{})
				if err != nil {
					b.Fatal(err)
				}
				if code, err := p.Wait(); err != nil || code != 0 {
					b.Fatalf("exit %d %v", code, err)
				}
			}
		})
	}
}

// consoleSocket listens on a unix socket for a pty master sent with
// SCM_RIGHTS and returns the socket path and a channel of the master.
func consoleSocket(t *testing.T) (string, <-chan *os.File) {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-cs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "c.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan *os.File, 1)
	go func() {
		defer close(ch)
		conn, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 4096), make([]byte, 1024)
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) == 0 {
			return
		}
		ch <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return path, ch
}

// readUntil reads f until it has seen want (or EOF/EIO).
func readUntil(f *os.File, want string) string {
	var got []byte
	buf := make([]byte, 1024)
	for !bytes.Contains(got, []byte(want)) {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	return string(got)
}

func TestTerminalGoesToTheConsoleSocket(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		sock, masters := consoleSocket(t)
		c := newContainer(t, sh(`[ -t 0 ] && [ -t 1 ] && echo on-a-tty; sleep 1000`), func(s *specs.Spec) { s.Process.Terminal = true })
		pid, err := rt.Create(context.Background(), c.id, c.bundle, IO{ConsoleSocket: sock})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		c.pid = pid
		t.Cleanup(func() { rt.Delete(context.Background(), c.id, true); c.reap() })
		master := <-masters
		if master == nil {
			t.Fatal("no pty master on the console socket")
		}
		defer master.Close()
		if err := rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		if out := readUntil(master, "on-a-tty"); !strings.Contains(out, "on-a-tty") {
			t.Errorf("console output %q", out)
		}

		// An exec with a terminal gets its own pty.
		esock, emasters := consoleSocket(t)
		p := execProc("sh", "-c", "[ -t 0 ] && echo exec-tty")
		p.Terminal = true
		ep, err := rt.Exec(context.Background(), c.id, p, IO{ConsoleSocket: esock})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		em := <-emasters
		if em == nil {
			t.Fatal("no pty master for the exec")
		}
		defer em.Close()
		if out := readUntil(em, "exec-tty"); !strings.Contains(out, "exec-tty") {
			t.Errorf("exec console output %q", out)
		}
		if code, err := ep.Wait(); code != 0 || err != nil {
			t.Errorf("exec exit %d %v", code, err)
		}
	})
}

func TestExecInAContainerOnTheHostsPidNamespace(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt Runtime) {
		c := newContainer(t, []string{"sleep", "100000"}, func(s *specs.Spec) {
			var ns []specs.LinuxNamespace
			for _, n := range s.Linux.Namespaces {
				if n.Type != specs.PIDNamespace {
					ns = append(ns, n)
				}
			}
			s.Linux.Namespaces = ns
		})
		c.mustCreate(t, rt)
		if err := rt.Start(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
		out, code, err := execOut(t, rt, c, execProc("sh", "-c", "echo $$; exit 5"))
		if err != nil {
			t.Fatal(err)
		}
		if code != 5 || strings.TrimSpace(out) == "1" {
			t.Errorf("got %q exit %d, want a host pid and exit 5", out, code)
		}
	})
}
