package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// BusyboxPath is where the dynamic busybox binary is read from on the host.
const BusyboxPath = "/bin/busybox"

// Users and groups of every busybox-based image (/etc/passwd, /etc/group).
const (
	// UserBerth is "berth", uid 1000, primary group 1000 ("berth"),
	// supplementary groups GroupBuilders and GroupTesters, home /home/berth.
	UserBerth = 1000
	// UserTester is "tester", uid 1001, primary group 1001, supplementary GroupTesters.
	UserTester = 1001
	// UserNobody is "nobody", uid 65534, group 65534 ("nogroup").
	UserNobody = 65534
	// GroupBuilders is "builders", gid 2000 (members: berth).
	GroupBuilders = 2000
	// GroupTesters is "testers", gid 2001 (members: berth, tester).
	GroupTesters = 2001
)

const passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
berth:x:1000:1000:berth test user:/home/berth:/bin/sh
tester:x:1001:1001:second test user:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
daemon:x:1:
berth:x:1000:
tester:x:1001:
builders:x:2000:berth
testers:x:2001:berth,tester
nogroup:x:65534:
`

const nsswitch = `passwd: files
group: files
shadow: files
hosts: files dns
`

// hostFile is a file copied from the host into the busybox layer.
type hostFile struct {
	path string // absolute path inside the image (same as on the host)
	link string // symlink target, if the host path is a symlink
	mode os.FileMode
	data []byte
}

// busyboxFiles is the host material of the busybox layer, read once.
type busyboxFiles struct {
	files   []hostFile // busybox binary, its libraries and its loader
	applets []string   // names from `busybox --list`
}

var (
	busyboxOnce sync.Once
	busyboxHost *busyboxFiles
	busyboxErr  error
)

// Prepare makes sure the host can provide the busybox root filesystem,
// installing Debian's dynamic busybox package with apt-get if /bin/busybox
// is missing or statically linked, and reads its files. The image builders
// call it and panic on its error; call it first to get the error instead.
func Prepare() error {
	busyboxOnce.Do(func() { busyboxHost, busyboxErr = readBusybox() })
	return busyboxErr
}

func readBusybox() (*busyboxFiles, error) {
	dynamic, err := isDynamic(BusyboxPath)
	if err != nil || !dynamic {
		out, ierr := exec.Command("apt-get", "install", "-y", "busybox").CombinedOutput()
		if ierr != nil {
			return nil, fmt.Errorf("install dynamic busybox (apt-get install -y busybox): %w: %s", ierr, out)
		}
		if dynamic, err = isDynamic(BusyboxPath); err != nil {
			return nil, err
		}
		if !dynamic {
			return nil, fmt.Errorf("%s is statically linked after installing busybox; busybox-static runs applets without exec", BusyboxPath)
		}
	}
	bb := &busyboxFiles{}
	seen := map[string]bool{}
	if err := addHostFile(bb, BusyboxPath, seen); err != nil {
		return nil, err
	}
	libs, err := sharedLibraries(BusyboxPath)
	if err != nil {
		return nil, err
	}
	for _, lib := range libs {
		if err := addHostFile(bb, lib, seen); err != nil {
			return nil, err
		}
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	for _, name := range strings.Fields(string(out)) {
		if name != "busybox" && !strings.Contains(name, "/") {
			bb.applets = append(bb.applets, name)
		}
	}
	sort.Strings(bb.applets)
	if len(bb.applets) == 0 {
		return nil, fmt.Errorf("busybox --list printed no applets")
	}
	return bb, nil
}

// isDynamic reports whether the ELF file at p has a program interpreter.
func isDynamic(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}

// sharedLibraries lists the absolute paths ldd prints for bin: each
// "name => /path (addr)" library and the loader line "/path (addr)".
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if strings.HasPrefix(f, "/") && (i == 0 || fields[i-1] == "=>") {
				libs = append(libs, f)
				break
			}
		}
	}
	if len(libs) == 0 {
		return nil, fmt.Errorf("ldd %s listed no libraries: %s", bin, out)
	}
	return libs, nil
}

// addHostFile records p, and if p is a symlink also what it points to, as
// an image file at the same path. Only the last path component is resolved
// (/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...), so the image
// gets real /lib directories even though the host has merged /usr.
func addHostFile(bb *busyboxFiles, p string, seen map[string]bool) error {
	if seen[p] {
		return nil
	}
	seen[p] = true
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", p, err)
		}
		bb.files = append(bb.files, hostFile{path: p, link: target})
		if !filepath.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		return addHostFile(bb, target, seen)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	bb.files = append(bb.files, hostFile{path: p, mode: fi.Mode().Perm(), data: data})
	return nil
}

// busyboxTar is the tar stream of the busybox root filesystem layer:
//
//	/bin/busybox and a hard link to it for every applet (/bin/sh, /bin/ls,
//	/bin/sleep, ...), plus /usr/bin/env; the shared libraries and loader
//	at the paths ldd prints; /etc/passwd, /etc/group (see UserBerth),
//	/etc/nsswitch.conf; /root 0700, /home/berth and /home/tester owned by
//	their users; /tmp and /var/tmp 1777; empty /proc /sys /dev /run /var.
func busyboxTar() ([]byte, error) {
	if err := Prepare(); err != nil {
		return nil, err
	}
	var b tarBuilder
	dirs := map[string]bool{}
	mkdirs := func(p string) {
		for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			b.dir(strings.TrimPrefix(d, "/"), 0o755)
		}
	}
	for _, d := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/proc", "/sys", "/dev", "/run", "/var", "/home"} {
		mkdirs(d + "/x")
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		dirs[d] = true
		b.dir(strings.TrimPrefix(d, "/"), 0o1777)
	}
	dirs["/root"] = true
	b.dir("root", 0o700)
	dirs["/home/berth"], dirs["/home/tester"] = true, true
	b.add(tar.TypeDir, "home/berth", 0o755, UserBerth, UserBerth, nil, "")
	b.add(tar.TypeDir, "home/tester", 0o755, UserTester, UserTester, nil, "")

	for _, f := range busyboxHost.files {
		mkdirs(f.path)
		name := strings.TrimPrefix(f.path, "/")
		if f.link != "" {
			b.symlink(name, f.link)
			continue
		}
		b.file(name, int64(f.mode), f.data)
	}
	for _, a := range busyboxHost.applets {
		b.hardlink("bin/"+a, "bin/busybox")
	}
	b.hardlink("usr/bin/env", "bin/busybox")
	b.file("etc/passwd", 0o644, []byte(passwd))
	b.file("etc/group", 0o644, []byte(group))
	b.file("etc/nsswitch.conf", 0o644, []byte(nsswitch))
	return b.bytes()
}
