package daemon

import (
	"os"

	"github.com/berth-runtime/berth/test/hostclean"
)

// Leftovers lists what a stopped daemon left: mounts under dir, dir
// itself, and cgroups at or below cgroupRoot in any hierarchy. The
// benchmark's test uses it to prove cleanup.
func Leftovers(dir, cgroupRoot string) []string {
	var left []string
	if mounts, err := hostclean.Mounts(dir); err == nil {
		for _, m := range mounts {
			left = append(left, "mount "+m)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	if cgroupRoot != "" {
		if cgs, err := hostclean.CgroupDirs(cgroupRoot); err == nil {
			for _, c := range cgs {
				left = append(left, "cgroup "+c)
			}
		}
	}
	return left
}
