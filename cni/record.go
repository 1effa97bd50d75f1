package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"go.uber.org/zap"
)

// recordVersion is the schema of pod records; bump it with a migration in
// loadRecord when a field changes meaning.
const recordVersion = 1

// record is what Teardown needs of an attached pod, written before the
// first plugin runs so that a berthd killed halfway still tears it down.
type record struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	NetNS   string `json:"netns"`
	IfName  string `json:"ifname"`
	// The network exactly as ADD ran it, so DEL does not depend on the
	// conf dir still holding it.
	File         string            `json:"file"`
	Network      string            `json:"network"`
	CNIVersion   string            `json:"cni_version"`
	DisableCheck bool              `json:"disable_check,omitempty"`
	Plugins      []json.RawMessage `json:"plugins"`
	Args         [][2]string       `json:"args,omitempty"`
	Capabilities map[string]any    `json:"capabilities,omitempty"`
	// Attached is set once ADD succeeded; IPs are what it gave.
	Attached bool     `json:"attached"`
	IPs      []string `json:"ips,omitempty"`
	// TeardownFailures counts failed DELs (see maxTeardownAttempts).
	TeardownFailures int    `json:"teardown_failures,omitempty"`
	LastError        string `json:"last_error,omitempty"`
}

// podIDPattern is libcni's container ID rule; it also keeps IDs safe as
// file names.
var podIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

func validPodID(id string) error {
	if !podIDPattern.MatchString(id) || len(id) > 200 {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("pod ID %q is not usable as a CNI container ID", id))
	}
	return nil
}

func (m *Manager) recordPath(id string) string {
	return filepath.Join(m.stateDir, "pods", id+".json")
}

// loadRecord returns the pod's record, or nil when it has none.
func (m *Manager) loadRecord(id string) (*record, error) {
	data, err := os.ReadFile(m.recordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read network record: %w", err)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("network record %s: %w: %w", m.recordPath(id), errBadRecord, err)
	}
	if r.Version != recordVersion || r.ID != id {
		return nil, fmt.Errorf("network record %s: %w: version %d, pod %q", m.recordPath(id), errBadRecord, r.Version, r.ID)
	}
	return &r, nil
}

// errBadRecord is a record that cannot be read back: a damaged file, or
// one of a schema this berthd does not know.
var errBadRecord = errors.New("unusable record")

// podRecord is loadRecord for a pod being set up or torn down. An
// unusable record is replaced by one for the network in use now, with a
// single DEL left before Teardown gives up: that is the best guess at
// what the pod holds, and no broken file blocks the pod's removal.
func (m *Manager) podRecord(pod Pod) (*record, error) {
	rec, err := m.loadRecord(pod.ID)
	if !errors.Is(err, errBadRecord) {
		return rec, err
	}
	m.log.Error("network record unusable; tearing down with the current network", zap.String("sandbox", pod.ID), zap.Error(err))
	n, nerr := m.current()
	var rt *libcni.RuntimeConf
	if nerr == nil {
		rt, nerr = m.runtimeConf(pod, pod.NetNS)
	}
	if nerr != nil {
		m.log.Error("forgetting the pod's network; addresses or rules of it may remain", zap.String("sandbox", pod.ID), zap.Error(nerr))
		return nil, m.removeRecord(pod.ID)
	}
	rec = newRecord(pod.ID, pod.NetNS, n, rt)
	rec.TeardownFailures = maxTeardownAttempts - 1
	return rec, nil
}

// records reads every pod record.
func (m *Manager) records() ([]*record, error) {
	entries, err := os.ReadDir(filepath.Join(m.stateDir, "pods"))
	if err != nil {
		return nil, fmt.Errorf("list network records: %w", err)
	}
	var recs []*record
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || validPodID(id) != nil {
			continue // a temporary file of writeFileAtomic
		}
		rec, err := m.loadRecord(id)
		if errors.Is(err, errBadRecord) {
			rec, err = &record{ID: id}, nil // owed a teardown, network unknown
		}
		if err != nil {
			return nil, err
		}
		if rec != nil {
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

// Attached lists the pods the network holds something for: attached, or
// owed a teardown. After a restart the sandbox tears down those it no
// longer knows (Teardown needs only the ID).
func (m *Manager) Attached() ([]string, error) {
	recs, err := m.records()
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.ID
	}
	return ids, nil
}

func (m *Manager) saveRecord(r *record) error {
	r.Version = recordVersion
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.recordPath(r.ID), data, 0o600); err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	return nil
}

func (m *Manager) removeRecord(id string) error {
	if err := os.Remove(m.recordPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network record: %w", err)
	}
	return nil
}

// newRecord captures list for pod.
func newRecord(id, netns string, n *network, rt *libcni.RuntimeConf) *record {
	r := &record{
		ID:           id,
		NetNS:        netns,
		IfName:       rt.IfName,
		File:         n.file,
		Network:      n.list.Name,
		CNIVersion:   n.list.CNIVersion,
		DisableCheck: n.list.DisableCheck,
		Args:         rt.Args,
		Capabilities: rt.CapabilityArgs,
	}
	for _, p := range n.list.Plugins {
		r.Plugins = append(r.Plugins, json.RawMessage(p.Bytes))
	}
	return r
}

// list rebuilds the network the record was attached with.
func (r *record) list() (*libcni.NetworkConfigList, error) {
	l := &libcni.NetworkConfigList{Name: r.Network, CNIVersion: r.CNIVersion, DisableCheck: r.DisableCheck}
	for i, raw := range r.Plugins {
		p, err := libcni.NetworkPluginConfFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("network record %s: plugin %d: %w", r.ID, i, err)
		}
		l.Plugins = append(l.Plugins, p)
	}
	data, err := json.Marshal(map[string]any{"name": r.Network, "cniVersion": r.CNIVersion, "plugins": r.Plugins})
	if err != nil {
		return nil, err
	}
	l.Bytes = data
	return l, nil
}

// runtimeConf is the invocation the record was attached with; netns is
// what the plugins get now (empty when the namespace is gone).
func (r *record) runtimeConf(netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID:    r.ID,
		NetNS:          netns,
		IfName:         r.IfName,
		Args:           r.Args,
		CapabilityArgs: r.Capabilities,
	}
}
