package oci

// The binary a container's init and exec processes run before the user
// program is berthd itself. If it ran straight from its file on the host, a
// process in the container could open /proc/<pid>/exe of such a process and
// overwrite berthd (CVE-2019-5736). So those roles run from a sealed memfd
// copy of the binary: writes, growth, shrinking and further sealing are all
// refused by the kernel, whoever asks.

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

// sealedCopy returns an fd (close-on-exec) of a sealed memfd holding the
// binary at path. If path is already a sealed memfd (berthd itself started
// from one, as the monitor does) it is reused rather than copied again, so
// a host holds one copy per daemon, not one per container.
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
// from its sealed memfd copy, valid in this process and its children until
// exec. Components that re-execute berthd for long-lived helpers (the
// container monitor) should start them from it: the helper's own
// /proc/self/exe is then the sealed copy, which its runtime reuses instead
// of copying the binary once more per container.
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
