package oci

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestDefaultSpec(t *testing.T) {
	s := DefaultSpec("abc")
	mount := func(dest string) *specs.Mount {
		for i := range s.Mounts {
			if s.Mounts[i].Destination == dest {
				return &s.Mounts[i]
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"the hostname is the id", s.Hostname == "abc"},
		{"it has its own pid, ipc, uts, mount and network namespaces", func() bool {
			var types []string
			for _, ns := range s.Linux.Namespaces {
				types = append(types, string(ns.Type))
				if ns.Path != "" {
					return false
				}
			}
			for _, want := range []string{"pid", "ipc", "uts", "mount", "network"} {
				if !slices.Contains(types, want) {
					return false
				}
			}
			return true
		}()},
		{"devpts is a new instance with ptmxmode 0666", mount("/dev/pts") != nil &&
			strings.Join(mount("/dev/pts").Options, ",") == "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"/dev is a mode 755 tmpfs", mount("/dev") != nil && mount("/dev").Type == "tmpfs" && slices.Contains(mount("/dev").Options, "mode=755")},
		{"/sys is read-only sysfs", mount("/sys") != nil && mount("/sys").Type == "sysfs" && slices.Contains(mount("/sys").Options, "ro")},
		{"/sys/fs/cgroup is a read-only cgroup mount", mount("/sys/fs/cgroup") != nil && slices.Contains(mount("/sys/fs/cgroup").Options, "ro")},
		{"/dev/shm and /dev/mqueue are there", mount("/dev/shm") != nil && mount("/dev/mqueue") != nil},
		{"there is no /run mount (CRI drops it)", mount("/run") == nil},
		{"the capabilities are containerd's fourteen", len(s.Process.Capabilities.Bounding) == 14 &&
			slices.Equal(s.Process.Capabilities.Bounding, s.Process.Capabilities.Effective) &&
			slices.Equal(s.Process.Capabilities.Bounding, s.Process.Capabilities.Permitted) &&
			len(s.Process.Capabilities.Inheritable) == 0 && !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")},
		{"/proc/kcore is masked", slices.Contains(s.Linux.MaskedPaths, "/proc/kcore")},
		{"/proc/sys is read-only", slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys")},
		{"RLIMIT_NOFILE is 1024", len(s.Process.Rlimits) == 1 && s.Process.Rlimits[0] == specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		{"the device cgroup denies all first", len(s.Linux.Resources.Devices) > 1 && !s.Linux.Resources.Devices[0].Allow && s.Linux.Resources.Devices[0].Access == "rwm"},
		{"the cgroup is under /berth", s.Linux.CgroupsPath == "/berth/abc"},
		{"two specs share no slices", func() bool {
			o := DefaultSpec("x")
			o.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
			o.Linux.MaskedPaths[0] = "/nope"
			return DefaultSpec("y").Process.Capabilities.Bounding[0] != "CAP_SYS_ADMIN" && DefaultSpec("y").Linux.MaskedPaths[0] != "/nope"
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Error("no")
			}
		})
	}
}

func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []string
		flags uintptr
		prop  []uintptr
		data  string
	}{
		{"ro bind sets both flags", []string{"rbind", "ro"}, unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, nil, ""},
		{"rw clears ro", []string{"ro", "rw"}, 0, nil, ""},
		{"propagation is kept apart", []string{"bind", "rslave"}, unix.MS_BIND, []uintptr{unix.MS_SLAVE | unix.MS_REC}, ""},
		{"unknown options are filesystem data", []string{"nosuid", "mode=755", "size=65536k"}, unix.MS_NOSUID, nil, "mode=755,size=65536k"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, p, d := parseMountOptions(tc.opts)
			if f != tc.flags || !slices.Equal(p, tc.prop) || d != tc.data {
				t.Errorf("got %#x %v %q, want %#x %v %q", f, p, d, tc.flags, tc.prop, tc.data)
			}
		})
	}
}

func TestCgroupConfig(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		path                        string
		systemd                     bool
		wantPath, parent, pfx, unit string
		wantErr                     bool
	}{
		{"cgroupfs takes the path as it is", "/kubepods/pod1/c1", false, "/kubepods/pod1/c1", "", "", "", false},
		{"a relative cgroupfs path is made absolute", "kubepods/c1", false, "/kubepods/c1", "", "", "", false},
		{"an empty path is /berth/<id>", "", false, "/berth/id1", "", "", "", false},
		{"systemd splits slice:prefix:name", "kubepods.slice:cri-berth:c1", true, "", "kubepods.slice", "cri-berth", "c1", false},
		{"a systemd path without colons is refused", "/kubepods/c1", true, "", "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cgroupConfig("id1", tc.path, tc.systemd, nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			if c.Path != tc.wantPath || c.Parent != tc.parent || c.ScopePrefix != tc.pfx || c.Name != tc.unit {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestCgroupDir(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		systemd    bool
		want       string // "" for an error
	}{
		{"a cgroupfs path is itself", "/kubepods/pod1/c1", false, "/kubepods/pod1/c1"},
		{"a relative cgroupfs path is made absolute", "kubepods/c1", false, "/kubepods/c1"},
		{"a pod's slice is expanded", "kubepods-besteffort-pod1.slice", true, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"},
		{"a container's scope is in its slice", "kubepods-pod1.slice:cri-berth:c1", true, "/kubepods.slice/kubepods-pod1.slice/cri-berth-c1.scope"},
		{"a name ending in .slice is a slice", "kubepods.slice:cri-berth:x.slice", true, "/kubepods.slice/x.slice"},
		{"no slice is system.slice", ":cri-berth:c1", true, "/system.slice/cri-berth-c1.scope"},
		{"a malformed container path is refused", "a.slice:b", true, ""},
		{"a bad slice is refused", "a/b.slice", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CgroupDir(tc.path, tc.systemd)
			if tc.want == "" {
				if err == nil {
					t.Errorf("CgroupDir(%q) = %q, want an error", tc.path, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("CgroupDir(%q) = %q, %v; want %q", tc.path, got, err, tc.want)
			}
		})
	}
}

// TestSliceCgroupIsInItsParentSlice: the library puts a unit without a
// parent in system.slice; a pod's slice must be where systemd (and
// CgroupDir) put it.
func TestSliceCgroupIsInItsParentSlice(t *testing.T) {
	for slice, parent := range map[string]string{
		"kubepods-besteffort-pod1.slice": "kubepods-besteffort.slice",
		"kubepods.slice":                 "-.slice",
	} {
		c, err := SliceCgroup(slice)
		if err != nil || c.Parent != parent || c.Name != slice || !c.Systemd {
			t.Errorf("SliceCgroup(%q) = %+v, %v; want parent %s", slice, c, err, parent)
		}
	}
	if _, err := SliceCgroup("not/a.slice"); err == nil {
		t.Error("SliceCgroup accepts a bad slice name")
	}
}

func TestToResources(t *testing.T) {
	mem, swap, quota, zero := int64(100), int64(200), int64(5000), int64(0)
	period, shares := uint64(10000), uint64(256)
	major, minor := int64(1), int64(3)
	r, err := CgroupResources(&specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: &mem, Swap: &swap},
		CPU:            &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0"},
		Pids:           &specs.LinuxPids{Limit: &zero},
		Devices:        []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rw"}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"memory limit", r.Memory == 100},
		{"swap when the kernel accounts it", !SwapAccounting() || r.MemorySwap == 200},
		{"cpu shares, quota, period and cpuset", r.CpuShares == 256 && r.CpuQuota == 5000 && r.CpuPeriod == 10000 && r.CpusetCpus == "0"},
		{"a pids limit of 0 is no limit", r.PidsLimit != nil && *r.PidsLimit == -1},
		{"device rules keep order and wildcards", len(r.Devices) == 2 && r.Devices[0].Type == 'a' && r.Devices[0].Major == -1 && r.Devices[1].Major == 1 && r.Devices[1].Minor == 3 && r.Devices[1].Allow},
		{"hugepages only where a hugetlb controller takes them", HugetlbAvailable() == (len(r.HugetlbLimit) == 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("%+v", r)
			}
		})
	}
	if r, _ := CgroupResources(nil); !r.SkipDevices {
		t.Error("no resources should skip the device cgroup")
	}
}

func TestReadSpecRefusesBadBundles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		is     func(error) bool
	}{
		{"a missing config.json is NotFound", "", errdefs.IsNotFound},
		{"malformed JSON is InvalidArgument", "{", errdefs.IsInvalidArgument},
		{"no process args is InvalidArgument", `{"root":{"path":"r"},"linux":{}}`, errdefs.IsInvalidArgument},
		{"no root is InvalidArgument", `{"process":{"args":["sh"]},"linux":{}}`, errdefs.IsInvalidArgument},
		{"no linux section is InvalidArgument", `{"process":{"args":["sh"]},"root":{"path":"r"}}`, errdefs.IsInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.config != "" {
				os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.config), 0o600)
			}
			if _, err := ReadSpec(dir); !tc.is(err) {
				t.Errorf("got %v", err)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "a/b", "../x"} {
		if err := validID(id); !errdefs.IsInvalidArgument(err) {
			t.Errorf("validID(%q) = %v, want InvalidArgument", id, err)
		}
	}
	if err := validID("abc-123_x.y"); err != nil {
		t.Errorf("validID of a good id: %v", err)
	}
}

func TestFastExecConfigEncodesTheProcess(t *testing.T) {
	umask := uint32(0o22)
	p := &specs.Process{
		Args: []string{"sh", "-c", "echo 'a b'\nx"},
		Env:  []string{"PATH=/x:/y", "A=1"},
		Cwd:  "/w",
		User: specs.User{UID: 5, GID: 6, AdditionalGids: []uint32{7, 8}, Umask: &umask},
		Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"},
		},
		Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 20}},
		NoNewPrivileges: true,
	}
	enc, ok := fastExecConfig(p, 0, 0)
	if !ok {
		t.Fatal("not encodable")
	}
	raw, err := hex.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	got := map[string][]string{}
	for i := 0; i+1 < len(tok); i += 2 {
		got[tok[i]] = append(got[tok[i]], tok[i+1])
	}
	for k, want := range map[string][]string{
		"arg": p.Args, "env": p.Env, "path": {"/x:/y"}, "cwd": {"/w"}, "uid": {"5"}, "gid": {"6"},
		"group": {"7", "8"}, "umask": {"18"}, "nnp": {"1"}, "rlimit": {"7:10:20"}, "capb": {"20"}, "capi": {"0"},
	} {
		if !slices.Equal(got[k], want) {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
	if _, ok := fastExecConfig(&specs.Process{Args: []string{"sh"}, Terminal: true}, 0, 0); ok {
		t.Error("a terminal exec took the C path")
	}
}

func TestMemfdCopyIsSealed(t *testing.T) {
	src, err := os.Open(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f, err := memfdCopy(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err != nil || seals&binarySeals != binarySeals {
		t.Errorf("seals %#x %v", seals, err)
	}
	w, err := os.OpenFile(execPath(f), os.O_RDWR, 0)
	if err == nil {
		defer w.Close()
		if _, err := w.WriteAt([]byte{0}, 0); err == nil {
			t.Error("wrote to the sealed copy")
		}
	}
	want, _ := os.ReadFile(busyboxPath)
	got, _ := os.ReadFile(execPath(f))
	if !bytes.Equal(got, want) {
		t.Error("the copy differs from the binary")
	}
}
