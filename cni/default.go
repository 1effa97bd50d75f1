package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
)

// DefaultConfFile and DefaultNetworkName name the default network Berth
// writes into an empty conf dir (see the package comment).
const (
	DefaultConfFile    = "10-berth.conflist"
	DefaultNetworkName = "berth"
)

// defaultNetwork renders the default conflist for subnets (IPv4 and/or IPv6).
func (m *Manager) defaultNetwork(subnets []*net.IPNet) ([]byte, error) {
	type obj = map[string]any
	var ranges, routes []any
	v4, v6 := false, false
	for _, s := range subnets {
		ranges = append(ranges, []any{obj{"subnet": s.String()}})
		if s.IP.To4() != nil && !v4 {
			v4 = true
			routes = append(routes, obj{"dst": "0.0.0.0/0"})
		} else if s.IP.To4() == nil && !v6 {
			v6 = true
			routes = append(routes, obj{"dst": "::/0"})
		}
	}
	conf := obj{
		"cniVersion": "1.0.0",
		"name":       DefaultNetworkName,
		// No loopback plugin: Setup brings lo up itself, and the plugin
		// would cost an exec on every pod's ADD and DEL (about 14 ms each).
		"plugins": []any{
			obj{
				"type":        "bridge",
				"bridge":      m.cfg.DefaultBridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"ranges":  ranges,
					"routes":  routes,
					"dataDir": filepath.Join(m.stateDir, "networks"),
				},
			},
			obj{"type": "portmap", "capabilities": obj{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// writeDefaultNetwork writes the default network for subnets into the conf
// dir when the dir holds no configuration, or, with replace, when the
// configuration in use is Berth's own default file.
func (m *Manager) writeDefaultNetwork(subnets []*net.IPNet, replace bool) error {
	files, err := confFiles(m.cfg.ConfDir)
	if err != nil {
		return err
	}
	path := filepath.Join(m.cfg.ConfDir, DefaultConfFile)
	if len(files) > 0 && !(replace && files[0] == path && m.ownsDefaultFile(path)) {
		return nil
	}
	data, err := m.defaultNetwork(subnets)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("write default network: %w", err)
	}
	m.log.Info("default network written", zap.String("file", path), zap.String("subnet", joinNets(subnets)),
		zap.String("bridge", m.cfg.DefaultBridge))
	return nil
}

// ownsDefaultFile tells Berth's default network from a file an operator
// put under the same name.
func (m *Manager) ownsDefaultFile(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var conf struct {
		Name string `json:"name"`
	}
	return json.Unmarshal(data, &conf) == nil && conf.Name == DefaultNetworkName
}

// UpdatePodCIDR sets the range of the default network (UpdateRuntimeConfig).
// cidr is kubelet's pod CIDR, or several joined by commas (dual-stack); an
// empty one changes nothing. Plugins declaring the ipRanges capability get
// the ranges on every later ADD.
//
// The bridge plugin keeps one gateway address per family on its bridge, so
// the default network moves to a new range only while no pod is attached
// to it (kubelet sends the node's range before it starts pods); until then
// the call fails with FailedPrecondition and kubelet retries it.
func (m *Manager) UpdatePodCIDR(cidr string) error {
	if strings.TrimSpace(cidr) == "" {
		return nil
	}
	subnets, err := parseCIDRs(cidr)
	if err != nil {
		return err
	}
	// No Setup runs while the range moves (see Setup).
	m.rangeMu.Lock()
	defer m.rangeMu.Unlock()
	if m.cfg.DefaultNetwork {
		if err := m.moveDefaultNetwork(subnets); err != nil {
			return err
		}
	}
	// kubelet sends its pod CIDR again only when it changes, not when
	// berthd restarts: keep it for the next Manager.
	if err := writeFileAtomic(m.podCIDRPath(), []byte(joinNets(subnets)+"\n"), 0o644); err != nil {
		return fmt.Errorf("record pod CIDR: %w", err)
	}
	m.mu.Lock()
	m.podCIDRs = subnets
	m.mu.Unlock()
	m.log.Info("pod CIDR updated", zap.String("pod_cidr", joinNets(subnets)))
	return nil
}

func (m *Manager) podCIDRPath() string { return filepath.Join(m.stateDir, "pod-cidr") }

// loadPodCIDR reads the pod CIDR an earlier berthd got from kubelet.
func (m *Manager) loadPodCIDR() error {
	data, err := os.ReadFile(m.podCIDRPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pod CIDR: %w", err)
	}
	subnets, err := parseCIDRs(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("pod CIDR in %s: %w", m.podCIDRPath(), err)
	}
	m.podCIDRs = subnets
	return nil
}

// moveDefaultNetwork rewrites Berth's default network, when it is the one
// in use, for subnets, and drops the bridge so that the plugin recreates it
// with the new gateway.
func (m *Manager) moveDefaultNetwork(subnets []*net.IPNet) error {
	path := filepath.Join(m.cfg.ConfDir, DefaultConfFile)
	files, err := confFiles(m.cfg.ConfDir)
	if err != nil {
		return err
	}
	if len(files) > 0 && (files[0] != path || !m.ownsDefaultFile(path)) {
		return nil // the operator's network: not Berth's to change
	}
	data, err := m.defaultNetwork(subnets)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	pods, err := m.attachedTo(DefaultNetworkName)
	if err != nil {
		return err
	}
	if len(pods) > 0 {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
			"default network keeps its range while %d pods are attached to it (%s)", len(pods), strings.Join(pods, ", ")))
	}
	if err := deleteIdleBridge(m.cfg.DefaultBridge); err != nil {
		return fmt.Errorf("remove bridge of the old range: %w", err)
	}
	if err := m.writeDefaultNetwork(subnets, true); err != nil {
		return err
	}
	m.reload()
	return nil
}

// attachedTo lists the pods with a record on network.
func (m *Manager) attachedTo(network string) ([]string, error) {
	recs, err := m.records()
	if err != nil {
		return nil, err
	}
	var pods []string
	for _, rec := range recs {
		if rec.Network == network {
			pods = append(pods, rec.ID)
		}
	}
	return pods, nil
}

// parseCIDRs parses a comma-separated list of at most one IPv4 and one IPv6
// range, each big enough for a gateway and pods.
func parseCIDRs(s string) ([]*net.IPNet, error) {
	var (
		out    []*net.IPNet
		v4, v6 bool
	)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("pod CIDR %q is not an address range: %v", part, err))
		}
		ones, bits := n.Mask.Size()
		if bits-ones < 2 {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("pod CIDR %q leaves no room for a gateway and pods", part))
		}
		is4 := n.IP.To4() != nil
		if (is4 && v4) || (!is4 && v6) {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("pod CIDR %q: at most one IPv4 and one IPv6 range", s))
		}
		v4, v6 = v4 || is4, v6 || !is4
		out = append(out, n)
	}
	return out, nil
}

func joinNets(nets []*net.IPNet) string {
	s := make([]string, len(nets))
	for i, n := range nets {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

// validBridgeName checks a Linux interface name.
func validBridgeName(name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n:") || name == "." || name == ".." {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%q is not a valid interface name", name))
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so readers (the conf dir watch, a restarted berthd)
// see the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (retErr error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
