package oci

// A container process that cannot be exec'd is an error of StartContainer
// naming the cause (see the handshake in builtin_linux.go).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// execStatusFile is the fifo the init writes a failed execve's cause to.
const execStatusFile = "exec.status"

// maxExecStatus bounds what Start reads of the init's message.
const maxExecStatus = 4 << 10

// readExecStatus waits for EOF on the init's exec status fifo (the execve
// succeeded, or the init died without a word) or for its message (the
// execve failed), which it returns as an error.
func readExecStatus(ctx context.Context, f *os.File) error {
	var msg []byte
	buf := make([]byte, maxExecStatus)
	for {
		n, err := unix.Read(int(f.Fd()), buf)
		switch {
		case n > 0:
			if len(msg) < maxExecStatus {
				msg = append(msg, buf[:min(n, maxExecStatus-len(msg))]...)
			}
			continue
		case n == 0 && err == nil:
			if len(msg) == 0 {
				return nil
			}
			return fmt.Errorf("%s: %w", msg, errdefs.ErrFailedPrecondition)
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EAGAIN):
			return fmt.Errorf("read exec status: %w", err)
		}
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
		timeout := 100
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 100*time.Millisecond {
			timeout = max(int(time.Until(dl)/time.Millisecond), 0)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for the container process to exec: %w", ctx.Err())
		}
		if _, err := unix.Poll(fds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for exec status: %w", err)
		}
	}
}

// explainExec says why execve(path) failed in the words a user needs:
// ENOENT for a file that exists is its #! interpreter missing.
func explainExec(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		if interp := interpreter(path); interp != "" {
			return fmt.Errorf("exec %s: its interpreter %s: no such file or directory", path, interp)
		}
	case errors.Is(err, unix.E2BIG):
		return fmt.Errorf("%w (the arguments and environment exceed the kernel's limit: 128 KiB per string, a quarter of the stack limit in all)", err)
	case errors.Is(err, unix.ENOEXEC):
		return fmt.Errorf("%w (not an executable this kernel runs, nor a script with #!)", err)
	}
	return err
}

// interpreter is the #! interpreter of the script at path, or "".
func interpreter(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReaderSize(f, 256).ReadSlice('\n')
	rest, ok := bytes.CutPrefix(line, []byte("#!"))
	if !ok {
		return ""
	}
	fields := strings.Fields(string(rest))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}
