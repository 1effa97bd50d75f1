package image

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAnIDMappedOverlayShowsTheLayersFilesOwnedThroughTheMappingAndCopiesUpWithThoseOwners(t *testing.T) {
	const h, g = 9 << 16, 10 << 16
	holder := exec.Command("sleep", "infinity")
	holder.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: h, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: g, Size: 65536}},
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", holder.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer userns.Close()

	root := t.TempDir()
	base := mustUnpack(t, root, "base", tDir("etc/", 0o755), tFile("etc/passwd", 0o644, "root:x:0:0\n"))
	user := tFile("home/user/notes", 0o600, "mine")
	user.hdr.Uid, user.hdr.Gid = 1000, 1000
	top := mustUnpack(t, root, "top", tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "home/", Mode: 0o755}},
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "home/user/", Mode: 0o755, Uid: 1000, Gid: 1000}}, user)
	upper, work, target, scratch := filepath.Join(root, "c1/fs"), filepath.Join(root, "c1/work"), filepath.Join(root, "rootfs"), filepath.Join(root, "c1/idmap")
	mustMkdirs(t, upper, work, target)
	if err := os.Chown(upper, h, g); err != nil {
		t.Fatal(err)
	}
	if err := mountOverlayIDMapped([]string{top, base}, upper, work, target, scratch, int(userns.Fd())); err != nil {
		t.Fatal(err)
	}
	defer unmount(target)
	if _, err := os.Stat(scratch); !os.IsNotExist(err) {
		t.Errorf("the scratch dir of the idmapped clones is still there: %v", err)
	}
	checkOwnerMode(t, "etc/passwd", mustLstat(t, filepath.Join(target, "etc/passwd")), unix.S_IFREG, 0o644, h, g)
	checkOwnerMode(t, "home/user/notes", mustLstat(t, filepath.Join(target, "home/user/notes")), unix.S_IFREG, 0o600, h+1000, g+1000)
	checkOwnerMode(t, "the root dir", mustLstat(t, target), unix.S_IFDIR, 0o755, h, g)
	// Copy-up keeps the owner seen through the mapping; the layer keeps
	// its own.
	if err := os.Chmod(filepath.Join(target, "etc/passwd"), 0o640); err != nil {
		t.Fatal(err)
	}
	checkOwnerMode(t, "upper etc/passwd", mustLstat(t, filepath.Join(upper, "etc/passwd")), unix.S_IFREG, 0o640, h, g)
	checkOwnerMode(t, "base etc/passwd", mustLstat(t, filepath.Join(base, "etc/passwd")), unix.S_IFREG, 0o644, 0, 0)
}
