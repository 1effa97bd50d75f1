package sandbox

// PortForward: one TCP connection to a port on the pod's loopback,
// connected from inside the pod's network namespace (the host's for a
// host-network pod), as containerd and CRI-O do. The socket is made on a
// thread that joined the namespace and keeps it after the thread is gone,
// so only the connect runs there.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
)

// dialTimeout bounds a port-forward's connect; loopback answers at once
// unless the namespace's loopback filters it.
const dialTimeout = 10 * time.Second

// PortForward connects stream to port on the loopback of the ready pod
// id and copies both ways until the pod's side has closed (after the
// client closed its side, if it did), or ctx ends.
func (m *Manager) PortForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port forward: port %d is out of range: %w", port, errdefs.ErrInvalidArgument)
	}
	conn, err := m.dialPod(ctx, id, port)
	if err != nil {
		return err
	}
	defer conn.Close()

	up := make(chan struct{})
	go func() {
		defer close(up)
		_, _ = io.Copy(conn, stream)
		// The client is done sending: the pod's side sees end of file
		// and may still answer.
		_ = conn.CloseWrite()
	}()
	down := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		down <- err
	}()
	select {
	case err := <-down:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("port forward to port %d of pod %s: %w", port, id, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CheckPortForward says whether pod id exists and is ready.
func (m *Manager) CheckPortForward(id string) error {
	p, err := m.podByID(id)
	if err != nil {
		return err
	}
	if !p.ready() {
		return fmt.Errorf("pod sandbox %s is not ready: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// dialPod connects to port on the loopback of pod id's network namespace,
// IPv4 first, then IPv6.
func (m *Manager) dialPod(ctx context.Context, id string, port int32) (*net.TCPConn, error) {
	p, err := m.podByID(id)
	if err != nil {
		return nil, err
	}
	if !p.ready() {
		return nil, fmt.Errorf("pod sandbox %s is not ready: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	var conn net.Conn
	dial := func() error {
		d := net.Dialer{Timeout: dialTimeout}
		var errs []error
		for _, host := range []string{"127.0.0.1", "::1"} {
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
			if err == nil {
				conn = c
				return nil
			}
			errs = append(errs, err)
		}
		return fmt.Errorf("%w; %w", errs[0], errs[1])
	}
	if ns := p.nsPath("net"); ns != "" && !p.hostNetwork() {
		err = inNetNS(ns, dial)
	} else {
		err = dial()
	}
	if err != nil {
		return nil, fmt.Errorf("connect to port %d in pod %s: %w", port, p.id, err)
	}
	return conn.(*net.TCPConn), nil
}
