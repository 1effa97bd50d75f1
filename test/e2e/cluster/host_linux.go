package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/hostclean"
)

const (
	x509ServerAuth = x509.ExtKeyUsageServerAuth
	x509ClientAuth = x509.ExtKeyUsageClientAuth
)

var ioCopy = io.Copy

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// setUpNetwork gives the node its address on an interface of the cluster's
// own: a bridge with no ports (the kernel here has no dummy links, and a
// bridge is what berthd needs anyway).
func (c *Cluster) setUpNetwork() error {
	if err := c.saveState(func(s *state) { s.Links = append(s.Links, nodeLink) }); err != nil {
		return err
	}
	if err := ip("link", "add", nodeLink, "type", "bridge"); err != nil {
		return fmt.Errorf("%w (is another e2e cluster running? make e2e-down stops it)", err)
	}
	if err := ip("addr", "add", NodeIP+"/32", "dev", nodeLink); err != nil {
		return err
	}
	return ip("link", "set", nodeLink, "up")
}

// makeCgroupRoot makes kubelet's cgroup root in every hierarchy (kubelet
// refuses a root that does not exist) and records it for Teardown.
func (c *Cluster) makeCgroupRoot(root string) error {
	if err := c.saveState(func(s *state) { s.CgroupRoots = append(s.CgroupRoots, root) }); err != nil {
		return err
	}
	dirs, err := hostclean.CgroupPaths(root)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) transport() (*http.Transport, error) {
	ca, err := os.ReadFile(c.pki.path("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, nil
}

// Teardown stops and removes everything the cluster in dir made, reading
// what to undo from dir/state.json: kubelet first (so nothing restarts
// pods), then every pod through berthd's CRI socket (so berthd removes
// containers, mounts, network namespaces and veths itself), berthd,
// kube-proxy's rules (kube-proxy --cleanup), the control plane, then what
// is left on the host: mounts under dir, the kubelet cgroup root, the
// interfaces, kubelet's log links, and dir itself. It is safe to run twice
// and on a half-started cluster.
func Teardown(dir string) error {
	s, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	} else if err != nil {
		return fmt.Errorf("read %s/state.json: %w", dir, err)
	}
	var errs []error
	stop := func(name string) {
		if pid, ok := s.Pids[name]; ok {
			if err := stopPid(dir, pid, 20*time.Second); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			}
		}
	}
	stop("kubelet-2")
	stop("kubelet")
	for _, socket := range append([]string{s.BerthSocket}, s.Sockets2...) {
		if socket == "" {
			continue
		}
		if err := removeAllPods(socket); err != nil {
			errs = append(errs, err)
		}
	}
	stop("berthd-2")
	stop("berthd")
	if s.KubeProxy != "" && s.Pids["kube-proxy"] != 0 {
		stop("kube-proxy")
		if out, err := exec.Command(s.KubeProxy, "--cleanup").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %v: %s", err, out))
		}
	}
	for _, name := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		stop(name)
	}
	for _, root := range s.CgroupRoots {
		if err := hostclean.RemoveCgroupTree(root); err != nil {
			errs = append(errs, err)
		}
	}
	if err := hostclean.Unmount(dir); err != nil {
		errs = append(errs, err)
	}
	if len(s.Netns) > 0 || len(s.Sockets2) > 0 {
		errs = append(errs, removeNode2Host(dir)...)
	}
	for _, l := range s.Links {
		if err := exec.Command("ip", "link", "show", l).Run(); err == nil {
			if err := ip("link", "del", l); err != nil {
				errs = append(errs, err)
			}
		}
	}
	removeLogLinks(dir)
	if s.VarLibKubelet {
		os.Remove(filepath.Join(varLibKubelet, "device-plugins", "kubelet.sock"))
		os.Remove(filepath.Join(varLibKubelet, "device-plugins"))
		os.Remove(varLibKubelet)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopPid sends SIGTERM to pid if it is still the process started from
// dir (its command line names dir), then SIGKILL after limit.
func stopPid(dir string, pid int, limit time.Duration) error {
	if !ownProcess(dir, pid) {
		return nil
	}
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(limit)
	for ownProcess(dir, pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// ownProcess reports whether pid is alive (not a zombie) and its command
// line names dir, so a recycled pid is never signalled.
func ownProcess(dir string, pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		// A zombie of ours: reap it if it is our child.
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(cmdline), dir)
}

// removeAllPods stops and removes every pod berthd at socket knows.
func removeAllPods(socket string) error {
	if _, err := os.Stat(socket); err != nil {
		return nil
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") {
			return nil
		}
		return fmt.Errorf("list pods at %s: %w", socket, err)
	}
	var errs []error
	for _, p := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod %s: %w", p.Id, err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod %s: %w", p.Id, err))
		}
	}
	return errors.Join(errs...)
}

// removeLogLinks removes kubelet's /var/log/containers links into dir
// (kubelet makes them there whatever its root directory).
func removeLogLinks(dir string) {
	const logLinks = "/var/log/containers"
	entries, err := os.ReadDir(logLinks)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(logLinks, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			os.Remove(p)
		}
	}
}
