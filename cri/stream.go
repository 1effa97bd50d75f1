package cri

// The streaming server behind Exec, Attach and PortForward: the three RPCs
// only validate the request and return a URL of this server, which serves
// kubelet's (or crictl's) SPDY and WebSocket streams through
// k8s.io/cri-streaming, the library kubelet's runtimes share. A URL carries
// a single-use token from the library's request cache; it expires after a
// minute, and an unknown, used or expired token is answered 404 before
// anything runs.
//
// The library hands each request's streams to streamRuntime, which passes
// them to the sandbox package. It does not tell a handler when the client
// goes away, so Handler gives every request a context that ends when the
// hijacked connection is closed or fails to read (the library's reader
// reads it all the time): the sandbox then kills an exec's processes.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/berth-runtime/berth/sandbox"
	"go.uber.org/zap"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// StreamConfig is the [stream] table of berthd's configuration.
type StreamConfig struct {
	Address string `toml:"address" comment:"address the streaming server (the URLs Exec, Attach and PortForward return) listens on and names in its URLs; kubelet must reach it there"`
	Port    string `toml:"port" comment:"its TCP port; empty or \"0\": a free port, chosen at each start"`
	// TLS: both or neither.
	TLSCertFile string `toml:"tls_cert_file" comment:"PEM certificate to serve the streams over TLS (with tls_key_file); empty: plain HTTP"`
	TLSKeyFile  string `toml:"tls_key_file" comment:"PEM private key of tls_cert_file"`
}

// DefaultStreamConfig listens on loopback on a free port, as containerd's
// default does for a kubelet on the same host.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{Address: "127.0.0.1", Port: "0"}
}

// Validate checks the values, naming the key at fault.
func (c StreamConfig) Validate() error {
	var errs []error
	if net.ParseIP(c.Address) == nil {
		errs = append(errs, fmt.Errorf("key stream.address: %q is not an IP address", c.Address))
	}
	if c.Port != "" {
		if n, err := strconv.Atoi(c.Port); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("key stream.port: %q is not a port number", c.Port))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("key stream.tls_cert_file: tls_cert_file and tls_key_file go together"))
	}
	return errors.Join(errs...)
}

// StreamServer serves the streams.
type StreamServer struct {
	lib  streaming.Server
	http *http.Server
	lis  net.Listener
	url  string
	log  *zap.Logger
}

// NewStreamServer listens as cfg says; Serve serves.
func NewStreamServer(cfg StreamConfig, pods *sandbox.Manager, log *zap.Logger) (_ *StreamServer, retErr error) {
	port := cfg.Port
	if port == "" {
		port = "0"
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(cfg.Address, port))
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	defer func() {
		if retErr != nil {
			lis.Close()
		}
	}()
	lc := streaming.DefaultConfig
	lc.Addr = lis.Addr().String()
	lc.BaseURL = &url.URL{Scheme: "http", Host: lc.Addr}
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("streaming server: load TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		lc.TLSConfig = tlsConfig
		lc.BaseURL.Scheme = "https"
		lis = tls.NewListener(lis, tlsConfig)
	}
	lib, err := streaming.NewServer(lc, &streamRuntime{pods: pods, log: log})
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	s := &StreamServer{lib: lib, lis: lis, url: lc.BaseURL.String(), log: log}
	s.http = &http.Server{Handler: disconnectContext(lib), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// URL is the base of the URLs the server hands out.
func (s *StreamServer) URL() string { return s.url }

// Serve serves until Close.
func (s *StreamServer) Serve() error {
	if err := s.http.Serve(s.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops the server and ends every stream.
func (s *StreamServer) Close() error { return s.http.Close() }

// streamRuntime is what the library calls with a request's streams.
type streamRuntime struct {
	pods *sandbox.Manager
	log  *zap.Logger
}

func (r *streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	err := r.pods.Exec(ctx, id, cmd, streamIO(in, out, errw, tty, resize))
	var exit *sandbox.ExitError
	if errors.As(err, &exit) {
		// The library reports an exited command's status to the client.
		return utilexec.CodeExitError{Err: err, Code: exit.Code}
	}
	if err != nil {
		r.log.Info("exec stream ended", zap.String("container", id), zap.Error(err))
	}
	return err
}

func (r *streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.pods.Attach(ctx, id, streamIO(in, out, errw, tty, resize))
}

func (r *streamRuntime) PortForward(ctx context.Context, pod string, port int32, stream io.ReadWriteCloser) error {
	return r.pods.PortForward(ctx, pod, port, stream)
}

// streamIO is the library's streams as the sandbox takes them; a nil
// interface stays nil.
func streamIO(in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) sandbox.StreamIO {
	sio := sandbox.StreamIO{TTY: tty}
	if in != nil {
		sio.Stdin = in
	}
	if out != nil {
		sio.Stdout = out
	}
	if errw != nil {
		sio.Stderr = errw
	}
	if resize != nil {
		sizes := make(chan sandbox.TermSize)
		go func() {
			defer close(sizes)
			for sz := range resize {
				sizes <- sandbox.TermSize{Width: sz.Width, Height: sz.Height}
			}
		}()
		sio.Resize = sizes
	}
	return sio
}

// disconnectContext gives each request a context that ends when its
// connection, once hijacked for the streams, is closed or fails to read.
func disconnectContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		next.ServeHTTP(&hijackWatch{ResponseWriter: w, cancel: cancel}, r.WithContext(ctx))
	})
}

// hijackWatch is a ResponseWriter whose hijacked connection cancels the
// request's context when it ends.
type hijackWatch struct {
	http.ResponseWriter
	cancel context.CancelFunc
}

func (h *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	wc := &watchedConn{Conn: conn, cancel: h.cancel}
	// The buffered reader reads from the raw connection: point it at ours.
	rw.Reader.Reset(io.MultiReader(bufferedPart(rw.Reader), wc))
	return wc, rw, nil
}

func (h *hijackWatch) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// bufferedPart is what r has buffered already, without reading more.
func bufferedPart(r *bufio.Reader) io.Reader {
	b, _ := r.Peek(r.Buffered())
	return bytes.NewReader(append([]byte(nil), b...))
}

// watchedConn cancels on a failed read or on Close.
type watchedConn struct {
	net.Conn
	cancel context.CancelFunc
	once   sync.Once
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(c.cancel)
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.once.Do(c.cancel)
	return c.Conn.Close()
}
