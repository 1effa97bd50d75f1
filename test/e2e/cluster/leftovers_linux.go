package cluster

import (
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/berth-runtime/berth/test/hostclean"
)

// Leftovers lists what a torn-down cluster in dir left on the host: the
// directory, processes naming it, mounts below it, its interfaces, the
// kubelet cgroup root, kube-proxy's nftables tables and kubelet's log
// links into it, and /var/lib/kubelet when the caller saw none before the
// cluster started (hadVarLibKubelet false). Empty after a clean Teardown.
func Leftovers(dir string, hadVarLibKubelet bool) []string {
	var out []string
	if _, err := os.Stat(varLibKubelet); err == nil && !hadVarLibKubelet {
		out = append(out, "directory "+varLibKubelet)
	}
	if _, err := os.Stat(dir); err == nil {
		out = append(out, "directory "+dir)
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err == nil && ownProcess(dir, pid) {
			cmd, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
			out = append(out, "process "+p.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	if m, _ := hostclean.Mounts(dir); len(m) > 0 {
		out = append(out, "mounts "+strings.Join(m, " "))
	}
	if _, err := os.Stat(netnsPath(node2Netns)); err == nil {
		out = append(out, "network namespace "+node2Netns)
	}
	for _, l := range []string{nodeLink, podBridge, node2Link} {
		if exec.Command("ip", "link", "show", l).Run() == nil {
			out = append(out, "interface "+l)
		}
	}
	for _, root := range []string{cgroupRoot, node2Cgrp} {
		if dirs, err := hostclean.CgroupDirs(root); err == nil && len(dirs) > 0 {
			out = append(out, "cgroups "+strings.Join(dirs, " "))
		}
	}
	if tables, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		for _, l := range strings.Split(string(tables), "\n") {
			if strings.HasSuffix(l, " kube-proxy") {
				out = append(out, "nftables "+l)
			}
		}
	}
	entries, _ := os.ReadDir("/var/log/containers")
	for _, e := range entries {
		if t, err := os.Readlink("/var/log/containers/" + e.Name()); err == nil && strings.HasPrefix(t, dir+"/") {
			out = append(out, "log link /var/log/containers/"+e.Name())
		}
	}
	return out
}
