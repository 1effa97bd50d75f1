package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// mountPropagation reports whether the mount holding p is shared or a
// slave. A variable so unit tests need not build mounts.
var mountPropagation = func(p string) (shared, slave bool, err error) {
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		return false, false, err
	}
	var best *mountinfo.Info
	for _, mi := range infos {
		if (p == mi.Mountpoint || strings.HasPrefix(p, strings.TrimSuffix(mi.Mountpoint, "/")+"/")) &&
			(best == nil || len(mi.Mountpoint) >= len(best.Mountpoint)) {
			best = mi
		}
	}
	if best == nil {
		return false, false, fmt.Errorf("no mount holds %s", p)
	}
	for _, f := range strings.Fields(best.Optional) {
		shared = shared || strings.HasPrefix(f, "shared:")
		slave = slave || strings.HasPrefix(f, "master:")
	}
	return shared, slave, nil
}

// setMounts adds the CRI mounts, the pod's /etc files and /dev/shm. A CRI
// mount replaces a default mount at the same place.
func setMounts(s *specs.Spec, in specInput) error {
	cfg := in.Config
	ro := cfg.GetLinux().GetSecurityContext().GetReadonlyRootfs()
	var user []specs.Mount
	taken := map[string]bool{}
	for _, m := range cfg.GetMounts() {
		dst := path.Clean(m.GetContainerPath())
		if !path.IsAbs(m.GetContainerPath()) {
			return fmt.Errorf("mount %q: container path must be absolute: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		idmapped := len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0
		if idmapped {
			if err := checkMountMappings(m, in.Pod); err != nil {
				return fmt.Errorf("mount %s: %w", dst, err)
			}
		}
		if m.GetImage().GetImage() != "" {
			return fmt.Errorf("mount %s: image volumes: %w", dst, errdefs.ErrNotImplemented)
		}
		if m.GetHostPath() == "" {
			return fmt.Errorf("mount %s: host path is empty: %w", dst, errdefs.ErrInvalidArgument)
		}
		src, err := filepath.EvalSymlinks(m.GetHostPath())
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("mount %s: host path %s does not exist: %w", dst, m.GetHostPath(), errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("mount %s: host path %s: %v: %w", dst, m.GetHostPath(), err, errdefs.ErrInvalidArgument)
		}
		opts := []string{"rbind"}
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
			opts = append(opts, "rprivate")
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			shared, slave, err := mountPropagation(src)
			if err != nil {
				return fmt.Errorf("mount %s: %w", dst, err)
			}
			if !shared && !slave {
				return fmt.Errorf("mount %s: host path %s is not on a shared or slave mount, so host-to-container propagation cannot work: %w",
					dst, src, errdefs.ErrInvalidArgument)
			}
			opts = append(opts, "rslave")
			if s.Linux.RootfsPropagation != "rshared" {
				s.Linux.RootfsPropagation = "rslave"
			}
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			shared, _, err := mountPropagation(src)
			if err != nil {
				return fmt.Errorf("mount %s: %w", dst, err)
			}
			if !shared {
				return fmt.Errorf("mount %s: host path %s is not on a shared mount, so bidirectional propagation cannot work: %w",
					dst, src, errdefs.ErrInvalidArgument)
			}
			opts = append(opts, "rshared")
			s.Linux.RootfsPropagation = "rshared"
		default:
			return fmt.Errorf("mount %s: propagation %v: %w", dst, m.GetPropagation(), errdefs.ErrInvalidArgument)
		}
		if m.GetReadonly() {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		if m.GetRecursiveReadOnly() {
			if !m.GetReadonly() || m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
				return fmt.Errorf("mount %s: recursive read-only needs readonly and private propagation: %w", dst, errdefs.ErrInvalidArgument)
			}
			if !in.Features.RecursiveReadOnly {
				return fmt.Errorf("mount %s: recursive read-only: runtime handler %q does not support recursive read-only mounts: %w",
					dst, in.Pod.Handler, errdefs.ErrInvalidArgument)
			}
			opts = append(opts, "rro")
		}
		opts = append(opts, m.GetMountOptions()...)
		if idmapped && in.IDMapped != nil {
			// The runtime binds the idmapped clone CreateContainer makes.
			clone := filepath.Join(in.IDMapDir, strconv.Itoa(len(in.IDMapped)))
			in.IDMapped[clone] = src
			src = clone
		}
		user = append(user, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts})
		taken[dst] = true
	}

	podFile := func(dst, src string) {
		if src == "" || taken[dst] {
			return
		}
		mode := "rw"
		if ro {
			mode = "ro"
		}
		user = append(user, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", mode}})
		taken[dst] = true
	}
	podFile("/etc/hosts", in.Pod.HostsPath)
	podFile("/etc/resolv.conf", in.Pod.ResolvPath)
	podFile("/etc/hostname", in.Pod.HostnamePath)
	if in.Pod.ShmPath != "" && !taken["/dev/shm"] {
		user = append(user, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: in.Pod.ShmPath,
			Options: []string{"rbind", "rprivate", "rw", "nosuid", "nodev", "noexec"}})
		taken["/dev/shm"] = true
	}

	// Parents before children, so a mount under another lands on top.
	sort.SliceStable(user, func(i, j int) bool { return depth(user[i].Destination) < depth(user[j].Destination) })
	mounts := s.Mounts[:0]
	for _, m := range s.Mounts {
		if !taken[m.Destination] {
			mounts = append(mounts, m)
		}
	}
	s.Mounts = append(mounts, user...)
	return nil
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(path.Clean(p), "/")
}

// checkMountMappings refuses an idmapped mount Berth cannot make as asked:
// it maps through the pod's user namespace, so the mappings must be the
// pod's, and its clone is private, so no propagation but private.
func checkMountMappings(m *runtimeapi.Mount, pod podView) error {
	if pod.UserNS == "" {
		return fmt.Errorf("uid_mappings/gid_mappings (an idmapped mount) in a pod without a user namespace of its own: %w", errdefs.ErrInvalidArgument)
	}
	same := func(ms []*runtimeapi.IDMapping, pm *runtimeapi.IDMapping) bool {
		return len(ms) == 1 && ms[0].GetContainerId() == pm.GetContainerId() &&
			ms[0].GetHostId() == pm.GetHostId() && ms[0].GetLength() == pm.GetLength()
	}
	if !same(m.GetUidMappings(), pod.UIDMap) || !same(m.GetGidMappings(), pod.GIDMap) {
		return fmt.Errorf("uid_mappings/gid_mappings differ from the pod's user namespace, through which Berth maps mounts: %w", errdefs.ErrInvalidArgument)
	}
	if m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
		return fmt.Errorf("an idmapped mount is a private clone: propagation %v cannot work: %w", m.GetPropagation(), errdefs.ErrInvalidArgument)
	}
	return nil
}
