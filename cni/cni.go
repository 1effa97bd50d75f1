// Package cni attaches pods to networks through CNI plugins.
package cni

import (
	"context"
	"errors"
	"net"

	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is the [cni] part of berthd's configuration.
type Config struct {
	ConfDir string   `toml:"conf_dir" comment:"directory of CNI network configurations; the first .conflist/.conf in lexical order is used"`
	BinDirs []string `toml:"bin_dirs" comment:"directories searched for CNI plugin binaries"`
}

// DefaultConfig is the configuration of a berthd started with no file.
func DefaultConfig() Config {
	return Config{ConfDir: "/etc/cni/net.d", BinDirs: []string{"/opt/cni/bin", "/usr/lib/cni"}}
}

// Options create a Manager.
type Options struct {
	Config   Config
	StateDir string // <berthd state>/cni: per-pod records for teardown
	Log      *zap.Logger
}

// Result is what a pod got from its network.
type Result struct {
	IPs []net.IP // the first is the pod's primary IP
}

// Pod is what the network needs to know of a pod.
type Pod struct {
	ID        string
	NetNS     string // path of the pinned network namespace
	Config    *runtimeapi.PodSandboxConfig
	CgroupDir string
}

// Manager runs CNI plugins for pods.
type Manager struct{}

// New creates a Manager and starts watching the conf dir.
func New(opts Options) (*Manager, error) { return &Manager{}, nil }

// Close stops watching.
func (m *Manager) Close() error { return nil }

// Ready reports nil when a usable network configuration and its plugins exist.
func (m *Manager) Ready() error { return errors.New("cni: not implemented") }

// Setup attaches pod to the network (CNI ADD).
func (m *Manager) Setup(ctx context.Context, pod Pod) (Result, error) {
	return Result{}, errors.New("cni: not implemented")
}

// Teardown detaches pod (CNI DEL). It is idempotent and works when the
// namespace is already gone.
func (m *Manager) Teardown(ctx context.Context, pod Pod) error { return nil }

// UpdatePodCIDR sets the range of the default network (UpdateRuntimeConfig).
func (m *Manager) UpdatePodCIDR(cidr string) error { return nil }
