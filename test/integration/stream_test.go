package integration

// Exec, Attach and PortForward through the URLs berthd returns, driven by
// the client libraries kubectl uses (client-go's remotecommand, with the
// SPDY and the WebSocket executor, and portforward).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	clientexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// protocols are the two ways a client streams to a CRI streaming server:
// SPDY, and WebSocket (remotecommand v4, what k8s.io/cri-streaming serves;
// kubectl's v5 and its SPDY-over-WebSocket port-forward end at the API
// server, which speaks SPDY to kubelet).
var protocols = []string{"spdy", "websocket"}

// executor connects to a streaming URL as kubectl does.
func executor(t *testing.T, protocol, rawURL string) remotecommand.Executor {
	t.Helper()
	return executorWith(t, &rest.Config{}, protocol, rawURL)
}

// executorWith is executor with the client's TLS settings in cfg.
func executorWith(t *testing.T, cfg *rest.Config, protocol, rawURL string) remotecommand.Executor {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	var ex remotecommand.Executor
	switch protocol {
	case "spdy":
		ex, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
	case "websocket":
		ex, err = remotecommand.NewWebSocketExecutorForProtocols(cfg, "GET", rawURL, "v4.channel.k8s.io")
	}
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// execURL asks berthd for an exec URL.
func (e *ctrEnv) execURL(t *testing.T, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := e.d.Runtime.Exec(ctxFor(t), req)
	if err != nil {
		t.Fatalf("Exec %q: %v", req.Cmd, err)
	}
	return resp.Url
}

// streamExec runs cmd through an exec URL and returns its output and the
// exit code the client got.
func (e *ctrEnv) streamExec(t *testing.T, protocol, id string, tty bool, stdin io.Reader, sizes remotecommand.TerminalSizeQueue, cmd ...string) (stdout, stderr string, code int) {
	t.Helper()
	u := e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Tty: tty, Stdin: stdin != nil, Stdout: true, Stderr: !tty})
	var out, errb bytes.Buffer
	opts := remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Tty: tty, TerminalSizeQueue: sizes}
	if !tty {
		opts.Stderr = &errb
	}
	err := executor(t, protocol, u).StreamWithContext(ctxFor(t), opts)
	var exit clientexec.CodeExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.Code
	default:
		t.Fatalf("exec %q over %s: %v", cmd, protocol, err)
	}
	return out.String(), errb.String(), code
}

// sizeQueue hands out one terminal size, then blocks until closed.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	sz, ok := <-q.sizes
	if !ok {
		return nil
	}
	return &sz
}

func TestExecStreamsTTYStdinResizeAndExitCodes(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("exec", "sleep 3600")
		cfg.Envs = []*runtimeapi.KeyValue{{Key: "FROM_CONFIG", Value: []byte("yes")}}
		id := e.mustRun(t, cfg)
		for _, proto := range protocols {
			t.Run(proto, func(t *testing.T) {
				out, errOut, code := e.streamExec(t, proto, id, false, nil, nil, "sh", "-c", "echo out $FROM_CONFIG; echo err >&2")
				if out != "out yes\n" || errOut != "err\n" || code != 0 {
					t.Errorf("non-TTY exec: stdout %q stderr %q exit %d", out, errOut, code)
				}
				for _, want := range []int{1, 137} {
					if _, _, code := e.streamExec(t, proto, id, false, nil, nil, "sh", "-c", fmt.Sprintf("test %d = 137 && kill -9 $$; exit %d", want, want)); code != want {
						t.Errorf("exit code %d, want %d", code, want)
					}
				}
				// WebSocket v4 cannot tell the end of stdin (v5's CLOSE
				// signal can): there the command stops after two lines.
				echo := []string{"cat"}
				if proto == "websocket" {
					echo = []string{"head", "-n", "2"}
				}
				out, _, code = e.streamExec(t, proto, id, false, strings.NewReader("hello\nworld\n"), nil, echo...)
				if out != "hello\nworld\n" || code != 0 {
					t.Errorf("stdin echo: %q, exit %d", out, code)
				}
				out, _, code = e.streamExec(t, proto, id, true, nil, nil, "sh", "-c", "tty; test -t 0 && echo is-a-tty")
				if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "is-a-tty") || code != 0 {
					t.Errorf("TTY exec: %q, exit %d", out, code)
				}
				// The size arrives on its own stream, so the shell
				// answers each line with the size it sees until it is
				// the client's. It reads the size once a line and
				// prints what it matched: reading it twice let the
				// resize land between the printed and the matched one.
				q := &sizeQueue{sizes: make(chan remotecommand.TerminalSize, 1)}
				q.sizes <- remotecommand.TerminalSize{Width: 123, Height: 45}
				in, inW := io.Pipe()
				go func() {
					defer close(q.sizes)
					for range 50 {
						if _, err := inW.Write([]byte("x\n")); err != nil {
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
					inW.Write([]byte("exit 3\n"))
				}()
				out, _, code = e.streamExec(t, proto, id, true, in, q, "sh", "-c", "while read x; do s=$(stty size 2>&1); echo \"$s\"; test \"$x\" = x || exit 9; case $s in '45 123') exit 3;; esac; done")
				inW.Close()
				if !strings.Contains(out, "45 123") || code != 3 {
					t.Errorf("resize: stty size said %q, exit %d", out, code)
				}
			})
		}
	})
}

// processes lists the container's processes as ps shows them (zombies
// too), without ps itself.
func (e *ctrEnv) processes(t *testing.T, id string) string {
	t.Helper()
	return e.mustExec(t, id, "sh", "-c", "ps -o pid,stat,args | grep -v -e 'ps -o' -e grep")
}

func TestExecClientThatGoesAwayLeavesNoProcessBehind(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// The container's init reaps (as a shell waiting for its
		// foreground job does): the exec's orphans are reparented to it,
		// as any orphan in the container is, and must not stay zombies.
		id := e.mustRun(t, e.config("exec", "while :; do sleep 1; done"))
		for _, proto := range protocols {
			for _, tty := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s-tty-%v", proto, tty), func(t *testing.T) {
					u := e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "sleep 4321 & sleep 4322 & echo started; sleep 4323"},
						Tty: tty, Stdout: true, Stderr: !tty, Stdin: true})
					ctx, cancel := context.WithCancel(ctxFor(t))
					started := make(chan struct{})
					out := &signalWriter{want: "started", seen: started}
					inR, inW := io.Pipe()
					defer inW.Close()
					done := make(chan error, 1)
					go func() {
						opts := remotecommand.StreamOptions{Stdin: inR, Stdout: out, Tty: tty}
						if !tty {
							opts.Stderr = io.Discard
						}
						done <- executor(t, proto, u).StreamWithContext(ctx, opts)
					}()
					select {
					case <-started:
					case err := <-done:
						t.Fatalf("exec ended before it started its processes: %v", err)
					case <-time.After(30 * time.Second):
						t.Fatal("exec printed nothing in 30 s")
					}
					if ps := e.processes(t, id); !strings.Contains(ps, "sleep 4323") {
						t.Fatalf("the exec's processes are not running: %s", ps)
					}
					cancel()
					<-done
					deadline := time.Now().Add(10 * time.Second)
					for {
						ps := e.processes(t, id)
						if !strings.Contains(ps, "432") && !strings.Contains(ps, " Z ") {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("processes left after the client went away:\n%s", ps)
						}
						time.Sleep(50 * time.Millisecond)
					}
				})
			}
		}
	})
}

// signalWriter closes seen once want has been written to it.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func TestExecAndPortForwardRefuseBadRequestsAndStaleTokens(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("exec", "sleep 3600"))
		stopped := e.mustRun(t, e.config("stopped", "true"))
		e.waitExited(t, stopped)
		for _, c := range []struct {
			name string
			req  *runtimeapi.ExecRequest
			want codes.Code
		}{
			{"an unknown container is not found", &runtimeapi.ExecRequest{ContainerId: "0123456789abcdef", Cmd: []string{"true"}, Stdout: true}, codes.NotFound},
			{"a stopped container cannot exec", &runtimeapi.ExecRequest{ContainerId: stopped, Cmd: []string{"true"}, Stdout: true}, codes.FailedPrecondition},
			{"an empty command is invalid", &runtimeapi.ExecRequest{ContainerId: id, Stdout: true}, codes.InvalidArgument},
			{"no stream at all is invalid", &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}}, codes.InvalidArgument},
			{"a TTY with stderr is invalid", &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Tty: true, Stdout: true, Stderr: true}, codes.InvalidArgument},
		} {
			if _, err := e.d.Runtime.Exec(ctxFor(t), c.req); status.Code(err) != c.want {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
		if _, err := e.d.Runtime.PortForward(ctxFor(t), &runtimeapi.PortForwardRequest{PodSandboxId: "0123456789abcdef", Port: []int32{80}}); status.Code(err) != codes.NotFound {
			t.Errorf("PortForward of an unknown pod: %v, want NotFound", err)
		}
		if _, err := e.d.Runtime.PortForward(ctxFor(t), &runtimeapi.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{70000}}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("PortForward of port 70000: %v, want InvalidArgument", err)
		}

		// A token is good once: the second use and a made-up one are 404,
		// and the command does not run again.
		u := e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo ran >> /tmp/runs"}, Stdout: true})
		if err := executor(t, "spdy", u).StreamWithContext(ctxFor(t), remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
			t.Fatalf("first use of the URL: %v", err)
		}
		for _, bad := range []string{u, u[:strings.LastIndex(u, "/")+1] + "AAAAAAAA"} {
			checkNotFound(t, bad)
			if err := executor(t, "spdy", bad).StreamWithContext(ctxFor(t), remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
				t.Errorf("exec through a used or unknown token %s succeeded", bad)
			}
		}
		if got := e.mustExec(t, id, "cat", "/tmp/runs"); got != "ran" {
			t.Errorf("the command ran again through a used token: %q", got)
		}

		// A pod that is stopped cannot forward.
		if _, err := e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.Runtime.PortForward(ctxFor(t), &runtimeapi.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{80}}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("PortForward of a stopped pod: %v, want FailedPrecondition", err)
		}
	})
}

// checkNotFound checks that the streaming server answers a POST of u
// with 404, as it does for an unknown, used or expired token.
func checkNotFound(t *testing.T, u string) {
	t.Helper()
	resp, err := http.Post(u, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST %s: %s, want 404", u, resp.Status)
	}
}

// forward starts a port-forward of berthd's URL for pod to a local port
// over SPDY, as kubelet and kubectl do, and returns that port; errors the
// server sends are collected in logs. (kubectl's SPDY-over-WebSocket
// tunnel ends at the API server; the streaming server's own WebSocket
// port-forward protocol is tested by checkWebSocketPortForward.)
func forward(t *testing.T, d runtimeapi.RuntimeServiceClient, pod string, port int, logs *syncBuffer) (local uint16, forwarded <-chan error) {
	t.Helper()
	resp, err := d.PortForward(ctxFor(t), &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{int32(port)}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := funcr.New(func(prefix, args string) { logs.WriteString(prefix + " " + args + "\n") }, funcr.Options{})
	ready := make(chan struct{})
	fw, err := portforward.NewOnAddressesWithContext(klog.NewContext(ctx, logger), dialer, []string{"127.0.0.1"},
		[]string{fmt.Sprintf("0:%d", port)}, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward: %v", err)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("forwarded ports: %v %v", ports, err)
	}
	return ports[0].Local, done
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// httpGet fetches path from a local port, retrying while the server in
// the pod starts.
func httpGet(t *testing.T, port uint16, path string) string {
	t.Helper()
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c := http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s %v", resp.Status, err)
			continue
		}
		return string(b)
	}
	t.Fatalf("GET %s through the forwarded port: %v", path, last)
	return ""
}

// checkPortForward runs the port-forward cases against pod p, whose
// container serves index.html over HTTP on 8080 and echoes on 9000.
func checkPortForward(t *testing.T, p *ctrEnv) {
	var logs syncBuffer
	local, _ := forward(t, p.d.Runtime, p.pod, 8080, &logs)
	if got := httpGet(t, local, "/index.html"); got != "hello from the pod\n" {
		t.Errorf("HTTP through the forward: %q", got)
	}
	// Ten connections at once, each its own stream pair.
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html?%d", local, i))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if b, _ := io.ReadAll(resp.Body); string(b) != "hello from the pod\n" {
				errs <- fmt.Errorf("connection %d read %q", i, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent connection: %v", err)
	}

	// 100 MiB each way through the echo server arrive intact.
	echoPort, _ := forward(t, p.d.Runtime, p.pod, 9000, &logs)
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", echoPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 100 << 20
	sent, got := sha256.New(), sha256.New()
	go func() {
		_, _ = io.Copy(conn, io.TeeReader(io.LimitReader(rand.Reader, size), sent))
		conn.(*net.TCPConn).CloseWrite()
	}()
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	start := time.Now()
	n, err := io.Copy(got, conn)
	t.Logf("echoed %d bytes in %s", n, time.Since(start))
	if err != nil || n != size || !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		t.Errorf("100 MiB echo: %d bytes back, %v, checksums equal %v", n, err, bytes.Equal(sent.Sum(nil), got.Sum(nil)))
	}

	// A port nothing listens on: the connection ends and the server's
	// error names the refusal.
	closedPort, done := forward(t, p.d.Runtime, p.pod, 9, &logs)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", closedPort))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from a forward of a closed port: %d bytes, %v; want the connection closed", n, err)
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("the forwarder did not stop after the server's error")
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("no connection refused error from the server; client log:\n%s", logs.String())
	}
}

// portForwardServers serves index.html over HTTP on 8080 and echoes on 9000.
const portForwardServers = "mkdir -p /www && echo 'hello from the pod' > /www/index.html && httpd -p 127.0.0.1:8080 -h /www && exec nc -ll -p 9000 -e /bin/cat"

func TestPortForwardToAHostNetworkPod(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		// A host-network pod's loopback is the host's: use a port of this test.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
		defer l.Close()
		for _, proto := range []string{"spdy"} {
			t.Run(proto, func(t *testing.T) {
				var logs syncBuffer
				local, _ := forward(t, e.d.Runtime, e.pod, port, &logs)
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", local))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write([]byte("ping\n"))
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				b := make([]byte, 5)
				if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping\n" {
					t.Errorf("echo through a host-network pod's forward: %q %v", b, err)
				}
			})
		}
		t.Run("websocket", func(t *testing.T) {
			f := openWSForward(t, e.d.Runtime, e.pod, int32(port))
			f.send(t, 0, "ping\n")
			f.waitFor(t, 0, "ping\n")
		})
	})
}

func TestPortForwardToAPodsNetworkNamespace(t *testing.T) {
	e := startNetDaemon(t, 24)
	e.withBusybox(t)
	for _, h := range handlers {
		t.Run(h, func(t *testing.T) {
			cfg := podConfig(e.d, "pf-"+h)
			cfg.LogDirectory = t.TempDir()
			resp, err := e.d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: h})
			if err != nil {
				t.Fatalf("RunPodSandbox: %v", err)
			}
			p := &ctrEnv{d: e.d, image: e.image, pod: resp.PodSandboxId, podCfg: cfg, logDir: cfg.LogDirectory}
			t.Cleanup(func() {
				e.d.Runtime.StopPodSandbox(ctxFor(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.pod})
				e.d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.pod})
			})
			srv := p.mustRun(t, container(p, "servers", portForwardServers))
			// A refused connection ends a client's forward (as kubectl's
			// does): wait until both servers listen.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				resp, err := e.d.Runtime.ExecSync(ctxFor(t), &runtimeapi.ExecSyncRequest{ContainerId: srv, Timeout: 10,
					Cmd: []string{"sh", "-c", "netstat -ltn | grep -q :8080 && netstat -ltn | grep -q :9000"}})
				if err == nil && resp.ExitCode == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the servers in the pod do not listen: %v %s", err, resp.GetStderr())
				}
			}
			checkPortForward(t, p)
			checkWebSocketPortForward(t, p)
		})
	}
}

// attach streams the container's stdio to out (and its stdin from in)
// through an attach URL until ctx ends or the container's output does.
func (e *ctrEnv) attach(ctx context.Context, t *testing.T, protocol, id string, tty bool, in io.Reader, out io.Writer, sizes remotecommand.TerminalSizeQueue) error {
	t.Helper()
	resp, err := e.d.Runtime.Attach(ctxFor(t), &runtimeapi.AttachRequest{ContainerId: id, Stdin: in != nil, Stdout: true, Stderr: !tty, Tty: tty})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	opts := remotecommand.StreamOptions{Stdin: in, Stdout: out, Tty: tty, TerminalSizeQueue: sizes}
	if !tty {
		opts.Stderr = out
	}
	return executor(t, protocol, resp.Url).StreamWithContext(ctx, opts)
}

// waitFor waits until w has seen its string.
func waitFor(t *testing.T, w *signalWriter, what string) {
	t.Helper()
	select {
	case <-w.seen:
	case <-time.After(30 * time.Second):
		w.mu.Lock()
		defer w.mu.Unlock()
		t.Fatalf("%s: no %q in 30 s; got %q", what, w.want, w.buf.String())
	}
}

func newSignalWriter(want string) *signalWriter {
	return &signalWriter{want: want, seen: make(chan struct{})}
}

func TestAttachSeesLiveOutputTakesStdinAndDetaches(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("attach", "echo early; while read x; do echo got $x; echo err $x >&2; done")
		cfg.Stdin = true
		id := e.mustRun(t, cfg)
		waitLog(t, filepath.Join(e.logDir, cfg.LogPath), "early")
		for _, proto := range protocols {
			t.Run(proto, func(t *testing.T) {
				// Two attaches at once; the first one's stdin reaches the
				// container, and both see the answer on stdout and stderr.
				ctx, cancel := context.WithCancel(ctxFor(t))
				defer cancel()
				in, inW := io.Pipe()
				defer inW.Close()
				first, second := newSignalWriter("got "+proto), newSignalWriter("got "+proto)
				done := make(chan error, 2)
				go func() { done <- e.attach(ctx, t, proto, id, false, in, first, nil) }()
				go func() { done <- e.attach(ctx, t, proto, id, false, nil, second, nil) }()
				// The attaches are live once a line sent now comes back.
				go func() {
					for ctx.Err() == nil {
						if _, err := inW.Write([]byte(proto + "\n")); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				}()
				waitFor(t, first, "first attach")
				waitFor(t, second, "second attach")
				for _, w := range []*signalWriter{first, second} {
					var got string
					for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
						w.mu.Lock()
						got = w.buf.String()
						w.mu.Unlock()
						if strings.Contains(got, "err "+proto) {
							break
						}
					}
					if strings.Contains(got, "early") {
						t.Errorf("attach replayed output from before it: %q", got)
					}
					if !strings.Contains(got, "err "+proto) {
						t.Errorf("attach missed stderr: %q", got)
					}
				}
				cancel()
				<-done
				<-done
				if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
					t.Errorf("the container did not outlive its attaches: %v", st.State)
				}
			})
		}
		// An attach ends when the container does.
		short := e.config("short", "read x; echo bye $x")
		short.Stdin = true
		sid := e.mustRun(t, short)
		out := newSignalWriter("bye now")
		if err := e.attach(ctxFor(t), t, "spdy", sid, false, strings.NewReader("now\n"), out, nil); err != nil {
			t.Errorf("attach to a container that exits: %v", err)
		}
		waitFor(t, out, "attach to a container that exits")
	})
}

func TestAttachStdinOnceClosesTheContainersStdinAfterTheFirstAttach(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		for _, proto := range protocols {
			t.Run(proto, func(t *testing.T) {
				cfg := e.config("once-"+proto, "cat; echo stdin-closed; sleep 3600")
				cfg.Stdin, cfg.StdinOnce = true, true
				id := e.mustRun(t, cfg)
				// The client detaches once the container has echoed its
				// line: over SPDY its stdin has ended by then, over
				// WebSocket v4 (which cannot say so) the attach's end
				// closes the container's stdin.
				out := newSignalWriter("one line")
				ctx, cancel := context.WithCancel(ctxFor(t))
				done := make(chan error, 1)
				go func() { done <- e.attach(ctx, t, proto, id, false, strings.NewReader("one line\n"), out, nil) }()
				waitFor(t, out, "attach with stdin_once")
				cancel()
				<-done
				waitLog(t, filepath.Join(e.logDir, cfg.LogPath), "stdin-closed")
				if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
					t.Errorf("container state after stdin_once: %v", st.State)
				}
			})
		}
	})
}

func TestAttachToATTYContainerResizesItsTerminal(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("tty", "while read x; do stty size; done")
		cfg.Stdin, cfg.Tty = true, true
		id := e.mustRun(t, cfg)
		for _, proto := range protocols {
			t.Run(proto, func(t *testing.T) {
				ctx, cancel := context.WithCancel(ctxFor(t))
				defer cancel()
				q := &sizeQueue{sizes: make(chan remotecommand.TerminalSize, 1)}
				q.sizes <- remotecommand.TerminalSize{Width: 123, Height: 45}
				defer close(q.sizes)
				in, inW := io.Pipe()
				defer inW.Close()
				out := newSignalWriter("45 123")
				done := make(chan error, 1)
				go func() { done <- e.attach(ctx, t, proto, id, true, in, out, q) }()
				go func() {
					for ctx.Err() == nil {
						if _, err := inW.Write([]byte("x\r")); err != nil {
							return
						}
						time.Sleep(50 * time.Millisecond)
					}
				}()
				waitFor(t, out, "stty size in the attached TTY")
				cancel()
				<-done
			})
		}
	})
}

func TestAttachRefusesBadRequests(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		plain := e.mustRun(t, e.config("plain", "sleep 3600"))
		stopped := e.mustRun(t, e.config("stopped", "true"))
		e.waitExited(t, stopped)
		for _, c := range []struct {
			name string
			req  *runtimeapi.AttachRequest
			want codes.Code
		}{
			{"an unknown container is not found", &runtimeapi.AttachRequest{ContainerId: "0123456789abcdef", Stdout: true}, codes.NotFound},
			{"a stopped container cannot be attached to", &runtimeapi.AttachRequest{ContainerId: stopped, Stdout: true}, codes.FailedPrecondition},
			{"stdin of a container without stdin is invalid", &runtimeapi.AttachRequest{ContainerId: plain, Stdin: true, Stdout: true}, codes.InvalidArgument},
			{"a TTY on a container without one is invalid", &runtimeapi.AttachRequest{ContainerId: plain, Tty: true, Stdout: true}, codes.InvalidArgument},
			{"no stream at all is invalid", &runtimeapi.AttachRequest{ContainerId: plain}, codes.InvalidArgument},
		} {
			if _, err := e.d.Runtime.Attach(ctxFor(t), c.req); status.Code(err) != c.want {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
	})
}
