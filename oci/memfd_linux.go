package oci

// The binary a container's init and exec processes run before the user
// program is berthd itself. If it ran straight from its file on the host, a
// process in the container could open /proc/<pid>/exe of such a process and
// overwrite berthd (CVE-2019-5736). So those roles run from a copy nobody
// can write, made once per process:
//
//  1. a detached read-only bind mount of the binary (open_tree +
//     mount_setattr, as runc 1.2 does): no copy at all, and a write through
//     /proc/<pid>/exe fails with EROFS; the mount exists only while the fd
//     is open and appears in no mount table;
//  2. failing that (old kernels), a sealed memfd copy: writes, growth,
//     shrinking and further sealing are refused by the kernel.
//
// A process already running from a sealed memfd reuses it.

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

const binarySeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// sealedBinary is a sealed memfd copy of a binary, made once and shared by
// every runtime of the process.
type sealedBinary struct {
	once sync.Once
	f    *os.File
	err  error
}

var (
	sealedMu sync.Mutex
	// sealed maps a binary path to its sealed copy.
	sealed = map[string]*sealedBinary{}
)

// sealedCopy returns a close-on-exec fd of an unwritable copy of the
// binary at path (see the top of this file).
func sealedCopy(path string) (*os.File, error) {
	sealedMu.Lock()
	s, ok := sealed[path]
	if !ok {
		s = &sealedBinary{}
		sealed[path] = s
	}
	sealedMu.Unlock()
	s.once.Do(func() { s.f, s.err = makeSealed(path) })
	return s.f, s.err
}

func makeSealed(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open runtime binary: %w", err)
	}
	defer src.Close()
	if seals, err := unix.FcntlInt(src.Fd(), unix.F_GET_SEALS, 0); err == nil && seals&binarySeals == binarySeals {
		return highFd(src)
	}
	if f, err := readonlyMount(path); err == nil {
		return f, nil
	}
	return memfdCopy(src)
}

// memfdCopy copies src into a sealed memfd.
func memfdCopy(src *os.File) (*os.File, error) {
	fd, err := unix.MemfdCreate("berthd", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "memfd:berthd")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copy runtime binary to memfd: %w", err)
	}
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, binarySeals); err != nil {
		dst.Close()
		return nil, fmt.Errorf("seal runtime binary memfd: %w", err)
	}
	defer dst.Close()
	return highFd(dst)
}

// highFd duplicates f to a close-on-exec fd numbered 256 or above.
// os/exec's child moves the files it passes to fds 0..n and may overwrite
// low fds it does not know about before it execs; the binary's fd must
// survive until execve opens it.
func highFd(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 256)
	if err != nil {
		return nil, fmt.Errorf("dup runtime binary fd: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// execPath is the path exec(2) runs f from. The fd is close-on-exec; the
// kernel opens the binary before it closes such fds, so this works for
// ELF binaries.
func execPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// SealedExe returns a path that execs binary ("" means /proc/self/exe)
// from its unwritable copy (see the top of this file), valid in this
// process and its children until they exec. For helpers that re-execute
// berthd and want the same protection.
func SealedExe(binary string) (string, error) {
	if binary == "" {
		binary = "/proc/self/exe"
	}
	f, err := sealedCopy(binary)
	if err != nil {
		return "", err
	}
	return execPath(f), nil
}

// readonlyMount returns an O_PATH fd of the binary on a detached,
// read-only bind mount of it.
func readonlyMount(path string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open_tree %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return nil, fmt.Errorf("make %s mount read-only: %w", path, err)
	}
	return highFd(f)
}
