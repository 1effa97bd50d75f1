package main

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// listen claims the socket path and listens on it. A lock file beside the
// socket, held for berthd's life, tells a live berthd from a crashed one: a
// stale socket is replaced, a live daemon's is never stolen.
func listen(path string) (net.Listener, func(), error) {
	lockPath := path + ".lock"
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open socket lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("socket %s is in use by another running berthd", path)
		}
		return nil, nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, nil, fmt.Errorf("remove stale socket: %w", err)
	}
	// Create the socket with mode 0660 from the start: a chmod after bind
	// would leave a window with the umask's mode.
	old := unix.Umask(0o117)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, func() {
		l.Close()
		lock.Close()
	}, nil
}
