package main

// A null CRI server: the benchmark binary run again with nullCRIEnv set to
// a directory holding one response per list call (<call>.pb). It answers
// every ListPodSandbox, ListContainers and ListContainerStats with that
// response and does nothing else, so that the list calls made to it cost
// what any runtime's answer costs on this machine: the gRPC transport, the
// encoding and decoding of the same bytes, and the two processes sharing
// the CPUs. The list workload reports its figures as the calls' floor.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// nullCRIEnv names the variable that makes the benchmark binary a null
// CRI server on the directory it names.
const nullCRIEnv = "BERTH_BENCH_NULL_CRI"

// nullCRI is a running null CRI server and a connection to it.
type nullCRI struct {
	cmd  *exec.Cmd
	conn interface{ Close() error }
	rt   runtimeapi.RuntimeServiceClient
}

// startNullCRI starts a null CRI server answering the responses in last
// (by list call name), under dir, and connects to it.
func startNullCRI(dir string, last map[string]proto.Message) (_ *nullCRI, err error) {
	dir = filepath.Join(dir, "null-cri")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
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
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	n := &nullCRI{cmd: exec.Command(exe)}
	n.cmd.Env = append(os.Environ(), nullCRIEnv+"="+dir)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the null CRI server: %w", err)
	}
	defer func() {
		if err != nil {
			_ = n.close()
		}
	}()
	conn, err := dial(filepath.Join(dir, "cri.sock"))
	if err != nil {
		return nil, err
	}
	n.conn, n.rt = conn, runtimeapi.NewRuntimeServiceClient(conn)
	if _, err := waitReady(context.Background(), n.rt, 30*time.Second); err != nil {
		return nil, fmt.Errorf("null CRI server (log %s): %w", log.Name(), err)
	}
	return n, nil
}

// close stops the server and waits for it.
func (n *nullCRI) close() error {
	if n.conn != nil {
		n.conn.Close()
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := n.cmd.Wait(); err != nil {
		return fmt.Errorf("null CRI server: %w", err)
	}
	return nil
}

// nullRuntime answers the list calls with fixed responses, and Version and
// Status so that the benchmark's client sees it ready.
type nullRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	pods   *runtimeapi.ListPodSandboxResponse
	ctrs   *runtimeapi.ListContainersResponse
	stats  *runtimeapi.ListContainerStatsResponse
	status *runtimeapi.StatusResponse
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
	l, err := net.Listen("unix", filepath.Join(dir, "cri.sock"))
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
