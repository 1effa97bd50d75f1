package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostNetwork reports whether pod shares the host's network namespace.
func hostNetwork(pod Pod) bool {
	return pod.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
}

// Setup attaches pod to the network (CNI ADD). A host-network pod runs no
// plugin and gets the host's addresses. Anything ADD created is undone
// before a failing Setup returns. Setting up an attached pod again returns
// what it got the first time.
func (m *Manager) Setup(ctx context.Context, pod Pod) (_ Result, retErr error) {
	if hostNetwork(pod) {
		ips, err := hostIPs()
		if err != nil {
			return Result{}, fmt.Errorf("host network addresses: %w", err)
		}
		return Result{IPs: ips}, nil
	}
	if err := validPodID(pod.ID); err != nil {
		return Result{}, err
	}
	if pod.NetNS == "" {
		return Result{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("pod %s has no network namespace to attach", pod.ID))
	}
	log := m.log.With(zap.String("sandbox", pod.ID))
	defer m.locks.lock(pod.ID)()

	rec, err := m.podRecord(pod)
	if err != nil {
		return Result{}, err
	}
	if rec != nil && rec.Attached && rec.NetNS == pod.NetNS {
		return Result{IPs: parseIPs(rec.IPs)}, nil
	}
	if rec != nil {
		// An ADD that never finished (berthd died in it) or one into an
		// older namespace: release what it holds first.
		if err := m.teardown(ctx, rec, log); err != nil {
			return Result{}, fmt.Errorf("release earlier network attachment: %w", err)
		}
	}

	m.rangeMu.RLock()
	defer m.rangeMu.RUnlock()
	n, err := m.current()
	if err != nil {
		return Result{}, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("network not ready: %v", err))
	}
	if !isNetNS(pod.NetNS) {
		return Result{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("pod %s: %s is not a network namespace", pod.ID, pod.NetNS))
	}
	if err := loopbackUp(pod.NetNS); err != nil {
		return Result{}, fmt.Errorf("bring up loopback of pod %s: %w", pod.ID, err)
	}
	rt, err := m.runtimeConf(pod, pod.NetNS)
	if err != nil {
		return Result{}, err
	}
	rec = newRecord(pod.ID, pod.NetNS, n, rt)
	if err := m.saveRecord(rec); err != nil {
		return Result{}, err
	}
	defer func() {
		if retErr == nil {
			return
		}
		// Undo a partial ADD: the plugins that ran hold addresses, links
		// and rules. A DEL failing here leaves the record for the next
		// Teardown.
		// Bounded like sandbox's cleanups (sandbox/cleanup.go): a hung
		// plugin cannot hang the call.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := m.teardown(cctx, rec, log); err != nil {
			log.Error("undo failed network setup", zap.Error(err))
		}
	}()

	list, err := rec.list()
	if err != nil {
		return Result{}, err
	}
	actx, cancel := m.withTimeout(ctx)
	defer cancel()
	addStart := time.Now()
	var res types.Result
	if in, ok := m.inProcessNetwork(rec); ok {
		res, err = m.addInProcess(actx, in, rec, rt, list)
	} else {
		res, err = m.cni.AddNetworkList(actx, list, rt)
	}
	observeOp("ADD", time.Since(addStart), err)
	if err != nil {
		if errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return Result{}, fmt.Errorf("set up network %q for pod %s: plugins timed out after %s: %w", list.Name, pod.ID, m.timeout, err)
		}
		return Result{}, fmt.Errorf("set up network %q for pod %s: %w", list.Name, pod.ID, err)
	}
	ips, err := podIPs(res)
	if err != nil {
		return Result{}, fmt.Errorf("set up network %q for pod %s: %w", list.Name, pod.ID, err)
	}
	rec.Attached = true
	for _, ip := range ips {
		rec.IPs = append(rec.IPs, ip.String())
	}
	if err := m.saveRecord(rec); err != nil {
		return Result{}, err
	}
	log.Debug("pod attached to network", zap.String("network", list.Name), zap.Strings("ips", rec.IPs))
	return Result{IPs: ips}, nil
}

// Check asks the plugins whether the pod's attachment is still as ADD made
// it (CNI CHECK), and that its loopback is up.
func (m *Manager) Check(ctx context.Context, pod Pod) error {
	if hostNetwork(pod) {
		return nil
	}
	if err := validPodID(pod.ID); err != nil {
		return err
	}
	defer m.locks.lock(pod.ID)()
	rec, err := m.loadRecord(pod.ID)
	if err != nil {
		return err
	}
	if rec == nil || !rec.Attached {
		return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("pod %s is not attached to a network", pod.ID))
	}
	if !isNetNS(rec.NetNS) {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("pod %s: network namespace %s is gone", pod.ID, rec.NetNS))
	}
	if err := loopbackIsUp(rec.NetNS); err != nil {
		return fmt.Errorf("check network of pod %s: %w", pod.ID, err)
	}
	list, err := rec.list()
	if err != nil {
		return err
	}
	cctx, cancel := m.withTimeout(ctx)
	defer cancel()
	if err := m.cni.CheckNetworkList(cctx, list, rec.runtimeConf(rec.NetNS)); err != nil {
		return fmt.Errorf("check network %q of pod %s: %w", list.Name, pod.ID, err)
	}
	return nil
}

// Teardown detaches pod (CNI DEL). It is idempotent and works when the
// namespace is already gone, after a berthd restart (from the pod's record)
// and when the conf dir no longer holds the network. A failed DEL is
// returned and retried by the next call; after maxTeardownAttempts failures
// the pod is forgotten with a logged error and Teardown returns nil.
func (m *Manager) Teardown(ctx context.Context, pod Pod) error {
	if err := validPodID(pod.ID); err != nil {
		return err
	}
	defer m.locks.lock(pod.ID)()
	rec, err := m.podRecord(pod)
	if err != nil {
		return err
	}
	if rec == nil {
		return nil
	}
	return m.teardown(ctx, rec, m.log.With(zap.String("sandbox", pod.ID)))
}

// teardown runs DEL for rec, with the pod's lock held.
func (m *Manager) teardown(ctx context.Context, rec *record, log *zap.Logger) error {
	netns := rec.NetNS
	if !isNetNS(netns) {
		// Plugins release what lives outside the pod when given no
		// namespace; the links went with the namespace.
		netns = ""
	}
	in, inProcess := m.inProcessNetwork(rec)
	list, err := rec.list()
	if err == nil {
		dctx, cancel := m.withTimeout(ctx)
		delStart := time.Now()
		if inProcess {
			err = m.delInProcess(dctx, in, rec, netns)
		} else {
			err = m.cni.DelNetworkList(dctx, list, rec.runtimeConf(netns))
		}
		observeOp("DEL", time.Since(delStart), err)
		if err != nil && errors.Is(dctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("plugins timed out after %s: %w", m.timeout, err)
		}
		cancel()
	}
	if err == nil && !inProcess && rec.masquerades() {
		// The plugins find these rules through the pod's interface
		// addresses, and miss them when the interface or the namespace
		// went first (also between a check here and their DEL).
		err = releaseMasquerade(rec.Network, rec.ID, rec.IPs)
	}
	if err == nil {
		if err := m.removeRecord(rec.ID); err != nil {
			return err
		}
		log.Debug("pod detached from network", zap.String("network", rec.Network))
		return nil
	}
	rec.TeardownFailures++
	rec.LastError = err.Error()
	if rec.TeardownFailures >= maxTeardownAttempts {
		log.Error("giving up network teardown; addresses or rules of the pod may remain",
			zap.String("network", rec.Network), zap.Int("attempts", rec.TeardownFailures), zap.Error(err))
		m.forgetCache(rec)
		return m.removeRecord(rec.ID)
	}
	log.Warn("network teardown failed; retried at the next stop or remove",
		zap.String("network", rec.Network), zap.Int("attempts", rec.TeardownFailures), zap.Error(err))
	if serr := m.saveRecord(rec); serr != nil {
		log.Error("record network teardown failure", zap.Error(serr))
	}
	return fmt.Errorf("tear down network %q of pod %s (attempt %d of %d): %w",
		rec.Network, rec.ID, rec.TeardownFailures, maxTeardownAttempts, err)
}

// forgetCache drops libcni's cached result of a pod given up on.
func (m *Manager) forgetCache(rec *record) {
	name := fmt.Sprintf("%s-%s-%s", rec.Network, rec.ID, rec.IfName)
	path := filepath.Join(m.stateDir, "cache", "results", name)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("remove cached cni result", zap.String("file", path), zap.Error(err))
	}
}

// podIPs picks the pod's addresses from a result: those on interfaces in
// the pod (or not tied to any interface), IPv4 first.
func podIPs(res types.Result) ([]net.IP, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("read plugin result: %w", err)
	}
	var ips []net.IP
	for _, ip := range r.IPs {
		if ip.Interface != nil {
			i := *ip.Interface
			if i >= 0 && i < len(r.Interfaces) && r.Interfaces[i].Sandbox == "" {
				continue // the host side, such as a bridge
			}
		}
		ips = append(ips, ip.Address.IP)
	}
	if len(ips) == 0 {
		return nil, errors.New("plugins gave the pod no IP address")
	}
	sort.SliceStable(ips, func(i, j int) bool { return ips[i].To4() != nil && ips[j].To4() == nil })
	return ips, nil
}

func parseIPs(s []string) []net.IP {
	out := make([]net.IP, 0, len(s))
	for _, v := range s {
		if ip := net.ParseIP(v); ip != nil {
			out = append(out, ip)
		}
	}
	return out
}
