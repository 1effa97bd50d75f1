package sandbox

// Privileged containers see the host's devices, as containerd's
// WithHostDevices gives them: every device node under /dev, except the
// console, /dev/ptmx (the container's is its own devpts instance's) and
// what lives in /dev/pts, /dev/shm, /dev/mqueue and /dev/fd, which the
// container mounts for itself. The device cgroup allows them all
// (setDevices).

import (
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var hostDevSkip = map[string]bool{
	"/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true, "/dev/fd": true,
	"/dev/console": true, "/dev/ptmx": true,
}

// addHostDevices appends the host's device nodes to s.Linux.Devices,
// keeping any device the config already puts at the same path.
func addHostDevices(s *specs.Spec) error {
	have := map[string]bool{}
	for _, d := range s.Linux.Devices {
		have[d.Path] = true
	}
	return filepath.WalkDir("/dev", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == "/dev" {
				return err
			}
			return nil // gone meanwhile, or unreadable: not a device to give
		}
		if hostDevSkip[p] || (e.IsDir() && e.Name()[0] == '.') {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type()&os.ModeDevice == 0 || have[p] {
			return nil
		}
		dev, err := hostDevice(p)
		if err != nil {
			return nil
		}
		dev.Path = p
		s.Linux.Devices = append(s.Linux.Devices, dev)
		return nil
	})
}
