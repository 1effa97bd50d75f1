package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/sandbox/failpoint"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer makes a container in pod podID (an ID or unique prefix)
// from cfg and returns its ID. The container is CREATED: its process
// exists, waiting for StartContainer.
func (m *Manager) CreateContainer(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig) (_ string, retErr error) {
	if cfg.GetMetadata().GetName() == "" {
		return "", fmt.Errorf("container config has no metadata name: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.GetImage().GetImage() == "" {
		return "", fmt.Errorf("container config has no image: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.GetStdinOnce() && !cfg.GetStdin() {
		return "", fmt.Errorf("stdin_once needs stdin: %w", errdefs.ErrInvalidArgument)
	}
	p, err := m.podByID(podID)
	if err != nil {
		return "", err
	}
	if !p.ready() {
		return "", fmt.Errorf("pod sandbox %s is not ready: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	pod := viewOf(p)
	id, err := newID()
	if err != nil {
		return "", err
	}
	// The name first, so that a retry while this call still runs (kubelet
	// gives up after its deadline, this call does not) is refused before
	// it takes a snapshot, a mount or a monitor of its own.
	name := containerName(cfg.GetMetadata(), p.config.GetMetadata())
	if err := m.reserveName(m.ctrNames, "container", name, id); err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			m.releaseName(m.ctrNames, name, id)
		}
	}()
	rt, ok := m.runtimes[pod.Handler]
	if !ok {
		return "", fmt.Errorf("runtime handler %q of pod %s is not configured: %w", pod.Handler, p.id, errdefs.ErrFailedPrecondition)
	}
	if pod.UserNS != "" && !oci.FeaturesOf(rt).UserNamespaces {
		// A pod made under UsernsPodsEnv on a handler without them.
		return "", fmt.Errorf("containers in a pod with its own user namespace on runtime handler %q: %w", pod.Handler, errdefs.ErrNotImplemented)
	}
	img, err := m.images.Get(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return "", fmt.Errorf("image %q: %w", cfg.GetImage().GetImage(), err)
	}
	log := m.log.With(zap.String("container", id), zap.String("sandbox", p.id))
	c := m.newContainer(id, p.id, cfg)
	c.name, c.imageID, c.handler, c.createdAt = name, img.ID, pod.Handler, time.Now()
	c.imageRef = img.ID
	if len(img.RepoDigests) > 0 {
		c.imageRef = img.RepoDigests[0]
	}
	c.stopSignal = img.Config.StopSignal
	if pod.LogDir != "" && cfg.GetLogPath() != "" {
		if err := checkLogPath(cfg.GetLogPath()); err != nil {
			return "", err
		}
		c.logDir, c.logPath = pod.LogDir, filepath.Join(pod.LogDir, cfg.GetLogPath())
	}
	// The record goes first: a berthd killed from here on finds the
	// container at restart and RemoveContainer can undo every step.
	if err := m.putContainer(c); err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			if err := m.store.delete(bucketContainers, id); err != nil {
				log.Warn("remove container record", zap.Error(err))
			}
		}
	}()
	failpoint.Hit(failpoint.CreateRecord)
	rootfs := filepath.Join(c.stateDir, "rootfs")
	for _, d := range []string{c.bundle, rootfs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", fmt.Errorf("create %s: %w", d, err)
		}
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(c.bundle)
			os.RemoveAll(c.stateDir)
		}
	}()
	if pod.UserNS != "" {
		// The container's root, uid H on the host, binds its rootfs by
		// path: it must traverse the dirs above it.
		for _, d := range []string{filepath.Dir(c.stateDir), c.stateDir, rootfs} {
			if err := os.Chmod(d, 0o711); err != nil {
				return "", fmt.Errorf("open %s to the pod's user namespace: %w", d, err)
			}
		}
	}
	failpoint.Hit(failpoint.CreateDirs)
	if err := m.images.PrepareSnapshot(ctx, id, img.ID); err != nil {
		return "", fmt.Errorf("prepare rootfs: %w", err)
	}
	defer func() {
		if retErr != nil {
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			if err := m.images.RemoveSnapshot(cctx, id); err != nil {
				log.Warn("remove snapshot", zap.Error(err))
			}
		}
	}()
	failpoint.Hit(failpoint.CreateSnapshot)
	if pod.UserNS != "" {
		err = m.images.MountSnapshotIDMapped(id, rootfs, pod.UserNS, pod.UIDMap.GetHostId(), pod.GIDMap.GetHostId())
	} else {
		err = m.images.MountSnapshot(ctx, id, rootfs)
	}
	if err != nil {
		return "", fmt.Errorf("mount rootfs: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := unmountRootfs(rootfs); err != nil {
				log.Warn("unmount rootfs", zap.Error(err))
			}
		}
	}()
	failpoint.Hit(failpoint.CreateMount)

	in := specInput{
		ID: id, Config: cfg, Image: img.Config, Pod: pod, Rootfs: rootfs,
		SwapAccounting: oci.SwapAccounting(), Unified: oci.UnifiedMemory(), Hugetlb: oci.HugetlbAvailable(),
		Systemd: m.cfg.CgroupDriver == "systemd", Features: oci.FeaturesOf(rt),
		IDMapDir: filepath.Join(c.stateDir, "idmap"), IDMapped: map[string]string{},
	}
	if in.RestrictOOM, err = restrictOOM(m.cfg.RestrictOOMScoreAdj); err != nil {
		return "", err
	}
	in.MinOOMScoreAdj = ownOOMScoreAdj()
	if opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); opts.GetPid() == runtimeapi.NamespaceMode_TARGET {
		if in.TargetPIDNS, err = m.targetPIDNS(p.id, opts.GetTargetId()); err != nil {
			return "", err
		}
	}
	spec, err := buildSpec(in)
	if err != nil {
		return "", err
	}
	if len(in.IDMapped) > 0 {
		defer func() {
			if retErr != nil {
				if err := unmountIDMapped(c.stateDir); err != nil {
					log.Warn("unmount idmapped volumes", zap.Error(err))
				}
			}
		}()
		if err := mountIDMapped(in.IDMapDir, in.IDMapped, pod.UserNS); err != nil {
			return "", err
		}
	}
	if err := oci.WriteSpec(c.bundle, spec); err != nil {
		return "", err
	}
	// The built-in runtime's monitor loads the program compiled here
	// (cached: containers share profiles) instead of compiling it again.
	if err := oci.WriteSeccompProgram(c.bundle, spec.Linux.Seccomp); err != nil {
		return "", err
	}
	c.process = spec.Process
	c.cgroupsPath = spec.Linux.CgroupsPath
	failpoint.Hit(failpoint.CreateSpec)

	mc := monitorConfig{
		ID: id, Bundle: c.bundle, Handler: pod.Handler, Runtime: m.cfg.Runtimes[pod.Handler],
		RuntimeState: filepath.Join(m.state, "runtime"), CgroupDriver: m.cfg.CgroupDriver,
		CgroupsPath: spec.Linux.CgroupsPath, LogPath: c.logPath, LogDir: c.logDir,
		Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(), Tty: cfg.GetTty(),
	}
	// On failure the runtime may have made the container, also when the
	// monitor failed or was killed: its processes would outlive it in the
	// pod's cgroup.
	var h *monitorHandle
	defer func() {
		if retErr != nil {
			cctx, cancel := cleanupContext(ctx)
			defer cancel()
			_ = rt.Delete(cctx, id, true)
			if h != nil {
				select {
				case <-h.exited:
				case <-cctx.Done():
					log.Warn("monitor still running after the failed create's cleanup; killing it")
					h.kill()
					<-h.exited
				}
				h.release()
			}
		}
	}()
	if c.logPath != "" {
		// Opened here first so that a symlink in the way is the caller's
		// InvalidArgument, not an error string from the monitor.
		f, err := openBeneath(c.logDir, cfg.GetLogPath())
		if err != nil {
			return "", fmt.Errorf("container log: %w", err)
		}
		f.Close()
	}
	h, pid, err := m.startMonitor(c, mc)
	if err != nil {
		return "", err
	}
	failpoint.Hit(failpoint.CreateMonitor)
	if err := writeJSONAtomic(filepath.Join(c.stateDir, statusFile), runState{MonitorPid: h.pid, MonitorStart: h.start, Pid: pid}); err != nil {
		return "", err
	}
	_ = c.update(func(s *containerStatus) error {
		s.Pid = pid
		return nil
	})
	c.mu.Lock()
	c.monitor = h
	c.mu.Unlock()
	failpoint.Hit(failpoint.CreateStatus)

	if err := m.insertContainer(p, c); err != nil {
		return "", err
	}
	m.containerCreated(c)
	log.Debug("container created", zap.Int("pid", pid))
	return id, nil
}

// insertContainer adds c to the containers under m.mu, checking the pod is
// still ready: StopPod marks it not ready under m.mu before it collects
// the pod's containers.
func (m *Manager) insertContainer(p *Pod, c *Container) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !p.ready() {
		return fmt.Errorf("pod sandbox %s stopped while the container was created: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	m.containers[c.id] = c
	m.ctrIDs.add(c.id)
	return nil
}

// containerName is the unique name of a container, as containerd forms it.
func containerName(md *runtimeapi.ContainerMetadata, pod *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{md.GetName(), pod.GetName(), pod.GetNamespace(), pod.GetUid(),
		strconv.FormatUint(uint64(md.GetAttempt()), 10)}, "_")
}

func (m *Manager) putContainer(c *Container) error {
	rec, err := c.record()
	if err != nil {
		return err
	}
	if err := m.store.put(bucketContainers, c.id, rec); err != nil {
		return fmt.Errorf("save container %s: %w", c.id, err)
	}
	return nil
}

// targetPIDNS is the PID namespace of the running target container for
// NamespaceMode TARGET; it must be in the same pod.
func (m *Manager) targetPIDNS(podID, target string) (string, error) {
	if target == "" {
		return "", fmt.Errorf("PID namespace mode TARGET without a target ID: %w", errdefs.ErrInvalidArgument)
	}
	t, err := m.containerByID(target)
	if err != nil {
		return "", fmt.Errorf("target container: %w", err)
	}
	if t.podID != podID {
		return "", fmt.Errorf("target container %s is in another pod: %w", t.id, errdefs.ErrInvalidArgument)
	}
	st := t.snapshot()
	if st.State != stateRunning && st.State != stateCreated || st.Pid == 0 {
		return "", fmt.Errorf("target container %s is not running: %w", t.id, errdefs.ErrFailedPrecondition)
	}
	return "/proc/" + strconv.Itoa(st.Pid) + "/ns/pid", nil
}

// unmountRootfs unmounts a container's rootfs; one not mounted is fine.
func unmountRootfs(p string) error {
	for {
		err := unix.Unmount(p, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue // overlays stacked by a retried mount
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				return fmt.Errorf("unmount %s: %w", p, err)
			}
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		default:
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
}
