package main

// A null CRI server: the benchmark binary run again with nullCRIEnv set to
// a directory holding one response per list call (<call>.pb). It answers
// every ListPodSandbox, ListContainers and ListContainerStats with that
// response and does nothing else, so that the list calls made to it cost
// what any runtime's answer costs on this machine: the gRPC transport, the
// encoding and decoding of the same bytes, and the two processes sharing
// the CPUs. The list workload reports its figures as the calls' floor.
//
// It also answers Exec and Attach with URLs of a k8s.io/cri-streaming
// server of its own, the library Berth and containerd serve streams with,
// behind which an exec ends at once with status 0 (as `true` does) and an
// attach echoes its stdin: the streaming workloads' floor, what the CRI
// call, the library's server, client-go's SPDY client and the machine cost
// with no container behind them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// nullCRIEnv names the variable that makes the benchmark binary a null
// CRI server on the directory it names.
const nullCRIEnv = "BERTH_BENCH_NULL_CRI"

// nullCRI is a running null CRI server and a connection to it.
type nullCRI struct {
	cmd     *exec.Cmd
	dir     string        // its responses and socket, removed by close
	exited  chan struct{} // closed once the server's process is reaped
	waitErr error         // how it exited; set before exited is closed
	conn    interface{ Close() error }
	rt      runtimeapi.RuntimeServiceClient
}

// startNullCRI starts a null CRI server answering the responses in last
// (by list call name), logging to logDir, and connects to it.
func startNullCRI(ctx context.Context, logDir string, last map[string]proto.Message) (_ *nullCRI, err error) {
	// A directory of its own under $TMPDIR keeps the socket path short.
	dir, err := os.MkdirTemp("", "berth-bench-null-")
	if err != nil {
		return nil, err
	}
	n := &nullCRI{dir: dir, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	for name, m := range last {
		data, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode the %s response: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pb"), data, 0o644); err != nil {
			return nil, err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(logDir, "null-cri.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	n.cmd = exec.Command(exe)
	n.cmd.Env = append(os.Environ(), nullCRIEnv+"="+dir)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		n.cmd = nil
		return nil, fmt.Errorf("start the null CRI server: %w", err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()
	conn, err := dial(filepath.Join(dir, "cri.sock"))
	if err != nil {
		return nil, err
	}
	n.conn, n.rt = conn, runtimeapi.NewRuntimeServiceClient(conn)
	// Stop waiting as soon as the server exits: it failed.
	readyCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.exited:
			cancel()
		case <-readyCtx.Done():
		}
	}()
	if _, err := waitReady(readyCtx, n.rt, 30*time.Second); err != nil {
		select {
		case <-n.exited:
			return nil, fmt.Errorf("null CRI server exited (%v); its log: %s", n.waitErr, log.Name())
		default:
			return nil, fmt.Errorf("null CRI server (log %s): %w", log.Name(), err)
		}
	}
	return n, nil
}

// close stops the server, killing it if SIGTERM has not ended it within
// 5 s, reaps it and removes its directory.
func (n *nullCRI) close() error {
	if n.conn != nil {
		n.conn.Close()
	}
	var err error
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
		if n.waitErr != nil {
			err = fmt.Errorf("null CRI server: %w", n.waitErr)
		}
	}
	return errors.Join(err, os.RemoveAll(n.dir))
}

// nullRuntime answers the list calls with fixed responses, and Version and
// Status so that the benchmark's client sees it ready.
type nullRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	pods   *runtimeapi.ListPodSandboxResponse
	ctrs   *runtimeapi.ListContainersResponse
	stats  *runtimeapi.ListContainerStatsResponse
	status *runtimeapi.StatusResponse
	stream streaming.Server
}

func (n *nullRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "null", RuntimeVersion: "0", RuntimeApiVersion: "v1"}, nil
}

func (n *nullRuntime) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return n.status, nil
}

func (n *nullRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return n.pods, nil
}

func (n *nullRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return n.ctrs, nil
}

func (n *nullRuntime) ListContainerStats(context.Context, *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	return n.stats, nil
}

func (n *nullRuntime) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return n.stream.GetExec(req)
}

func (n *nullRuntime) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return n.stream.GetAttach(req)
}

// nullStreams is the streaming runtime behind the null CRI server.
type nullStreams struct{}

// Exec ends at once with status 0.
func (nullStreams) Exec(context.Context, string, []string, io.Reader, io.WriteCloser, io.WriteCloser, bool, <-chan remotecommand.TerminalSize) error {
	return nil
}

// Attach echoes stdin to stdout until the client goes.
func (nullStreams) Attach(_ context.Context, _ string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	if in != nil {
		_, _ = io.Copy(out, in)
	}
	return nil
}

func (nullStreams) PortForward(context.Context, string, int32, io.ReadWriteCloser) error {
	return errors.New("the null CRI server forwards no port")
}

// serveNullStreams serves a streaming server on a free loopback port.
func serveNullStreams() (streaming.Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	s, err := streaming.NewServer(cfg, nullStreams{})
	if err != nil {
		l.Close()
		return nil, err
	}
	go http.Serve(l, s) // until the process ends
	return s, nil
}

// serveNullCRI serves a null CRI server on dir/cri.sock until SIGTERM.
func serveNullCRI(dir string) error {
	n := &nullRuntime{
		pods:  &runtimeapi.ListPodSandboxResponse{},
		ctrs:  &runtimeapi.ListContainersResponse{},
		stats: &runtimeapi.ListContainerStatsResponse{},
		status: &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true}, {Type: runtimeapi.NetworkReady, Status: true},
		}}},
	}
	for name, m := range map[string]proto.Message{listCallNames[0]: n.pods, listCallNames[1]: n.ctrs, listCallNames[2]: n.stats} {
		data, err := os.ReadFile(filepath.Join(dir, name+".pb"))
		if err != nil {
			return err
		}
		if err := proto.Unmarshal(data, m); err != nil {
			return fmt.Errorf("%s response: %w", name, err)
		}
	}
	var err error
	if n.stream, err = serveNullStreams(); err != nil {
		return fmt.Errorf("streaming server: %w", err)
	}
	sock := filepath.Join(dir, "cri.sock")
	_ = os.Remove(sock) // left by a server that was killed
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(g, n)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-term
		g.Stop()
	}()
	if err := g.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
