package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// passwdEntry and groupEntry are lines of the container's /etc/passwd and
// /etc/group.
type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser picks the container process's uid, gid and groups: the
// security context's run_as_user or run_as_username, else the image's
// USER ("name", "uid", "name:group", "uid:gid"), looked up in the rootfs's
// own /etc/passwd and /etc/group (symlinks there stay inside the rootfs).
func resolveUser(rootfs string, sc *runtimeapi.LinuxContainerSecurityContext, imageUser string) (specs.User, error) {
	var u specs.User
	if sc.GetRunAsUser() != nil && sc.GetRunAsUsername() != "" {
		return u, fmt.Errorf("run_as_user and run_as_username are both set: %w", errdefs.ErrInvalidArgument)
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return u, fmt.Errorf("run_as_group needs run_as_user or run_as_username: %w", errdefs.ErrInvalidArgument)
	}
	passwd, err := readPasswd(rootfs)
	if err != nil {
		return u, err
	}
	groups, err := readGroups(rootfs)
	if err != nil {
		return u, err
	}

	userPart, groupPart, _ := strings.Cut(imageUser, ":")
	switch {
	case sc.GetRunAsUser() != nil:
		userPart, groupPart = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10), ""
	case sc.GetRunAsUsername() != "":
		userPart, groupPart = sc.GetRunAsUsername(), ""
	}
	var name string
	if userPart == "" {
		userPart = "0"
	}
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u.UID = uint32(n)
		for _, p := range passwd {
			if p.uid == u.UID {
				name, u.GID = p.name, p.gid
				break
			}
		}
	} else {
		found := false
		for _, p := range passwd {
			if p.name == userPart {
				name, u.UID, u.GID, found = p.name, p.uid, p.gid, true
				break
			}
		}
		if !found {
			return u, fmt.Errorf("user %q is not in the container's /etc/passwd: %w", userPart, errdefs.ErrInvalidArgument)
		}
	}
	if groupPart != "" {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			u.GID = uint32(n)
		} else {
			found := false
			for _, g := range groups {
				if g.name == groupPart {
					u.GID, found = g.gid, true
					break
				}
			}
			if !found {
				return u, fmt.Errorf("group %q is not in the container's /etc/group: %w", groupPart, errdefs.ErrInvalidArgument)
			}
		}
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if g.GetValue() < 0 {
			return u, fmt.Errorf("run_as_group %d: %w", g.GetValue(), errdefs.ErrInvalidArgument)
		}
		u.GID = uint32(g.GetValue())
	}
	if sc.GetRunAsUser().GetValue() < 0 {
		return u, fmt.Errorf("run_as_user %d: %w", sc.GetRunAsUser().GetValue(), errdefs.ErrInvalidArgument)
	}

	seen := map[uint32]bool{}
	add := func(gid uint32) {
		if !seen[gid] {
			seen[gid] = true
			u.AdditionalGids = append(u.AdditionalGids, gid)
		}
	}
	add(u.GID)
	if sc.GetSupplementalGroupsPolicy() != runtimeapi.SupplementalGroupsPolicy_Strict && name != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name {
					add(g.gid)
				}
			}
		}
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > 1<<32-1 {
			return u, fmt.Errorf("supplemental group %d: %w", g, errdefs.ErrInvalidArgument)
		}
		add(uint32(g))
	}
	return u, nil
}

// rootfsLines reads a file of the rootfs as lines of colon-separated
// fields; a missing file has none.
func rootfsLines(rootfs, name string) ([][]string, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in the rootfs: %w", name, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the container's %s: %w", name, err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, strings.Split(l, ":"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the container's %s: %w", name, err)
	}
	return out, nil
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	lines, err := rootfsLines(rootfs, "/etc/passwd")
	var out []passwdEntry
	for _, f := range lines {
		if len(f) < 4 {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)})
	}
	return out, err
}

func readGroups(rootfs string) ([]groupEntry, error) {
	lines, err := rootfsLines(rootfs, "/etc/group")
	var out []groupEntry
	for _, f := range lines {
		if len(f) < 3 {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	}
	return out, err
}
