package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/cri"
	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/oci"
	"github.com/berth-runtime/berth/sandbox"
	"github.com/berth-runtime/berth/sandbox/failpoint"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// shutdownGrace bounds how long in-flight RPCs may run after SIGTERM.
const shutdownGrace = 10 * time.Second

// serve opens every component, serves the CRI until SIGTERM or SIGINT, and
// closes them again. Containers keep running after berthd exits.
func serve(cfg config.Config) (retErr error) {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	defer ignoreHangup(log)()
	if s := failpoint.Armed(); s != "" {
		log.Warn("failpoint armed: berthd kills itself at this step", zap.String("step", string(s)))
	}

	for _, dir := range []string{cfg.Root, cfg.State, filepath.Dir(cfg.Socket)} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	lis, unlock, err := listen(cfg.Socket)
	if err != nil {
		return err
	}
	defer unlock()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	images, err := image.Open(ctx, image.Options{Root: filepath.Join(cfg.Root, "image"), Config: cfg.Registry, Log: log.Named("image")})
	if err != nil {
		return fmt.Errorf("open image store: %w", err)
	}
	defer images.Close()
	network, err := cni.New(cni.Options{Config: cfg.CNI, StateDir: filepath.Join(cfg.State, "cni"), Log: log.Named("cni")})
	if err != nil {
		return fmt.Errorf("start cni: %w", err)
	}
	defer network.Close()
	runtimes, err := oci.New(oci.Options{
		StateDir:     filepath.Join(cfg.State, "runtime"),
		Handlers:     cfg.Runtime.Runtimes,
		CgroupDriver: cfg.Runtime.CgroupDriver,
		Log:          log.Named("oci"),
	})
	if err != nil {
		return fmt.Errorf("set up runtimes: %w", err)
	}
	pods, err := sandbox.New(ctx, sandbox.Options{
		Root:     filepath.Join(cfg.Root, "sandbox"),
		State:    cfg.State,
		Config:   cfg.Runtime,
		Images:   images,
		Network:  network,
		Runtimes: runtimes,
		Log:      log.Named("sandbox"),
	})
	if err != nil {
		return fmt.Errorf("open sandbox store: %w", err)
	}
	defer pods.Close()

	handlers := []string{cfg.Runtime.DefaultRuntime}
	for name := range cfg.Runtime.Runtimes {
		if name != cfg.Runtime.DefaultRuntime {
			handlers = append(handlers, name)
		}
	}
	sort.Strings(handlers[1:])
	stream, err := cri.NewStreamServer(cfg.Stream, pods, log.Named("stream"))
	if err != nil {
		return err
	}
	defer stream.Close()
	go func() {
		if err := stream.Serve(); err != nil {
			log.Error("streaming server stopped", zap.Error(err))
		}
	}()
	if ip := net.ParseIP(cfg.Stream.Address); ip != nil && !ip.IsLoopback() && cfg.Stream.TLSCertFile == "" {
		log.Warn("the streaming server listens beyond loopback without TLS", zap.String("url", stream.URL()))
	}
	g := grpc.NewServer(cri.ServerOptions(log)...)
	cri.New(cri.Options{
		Images:       images,
		Pods:         pods,
		Network:      network,
		Config:       cfg,
		CgroupDriver: cfg.Runtime.CgroupDriver,
		Handlers:     handlers,
		Stream:       stream,
		Log:          log,
	}).Register(g)

	if cfg.ProfileAddress != "" {
		stopProfiles, err := serveProfiles(cfg.ProfileAddress)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	if cfg.Metrics.Address != "" {
		stopMetrics, err := serveMetrics(cfg.Metrics.Address, pods)
		if err != nil {
			return err
		}
		defer stopMetrics()
		log.Info("serving metrics", zap.String("address", cfg.Metrics.Address))
	}

	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	log.Info("serving CRI", zap.String("socket", cfg.Socket), zap.String("version", cri.Version),
		zap.String("root", cfg.Root), zap.String("state", cfg.State), zap.String("stream", stream.URL()))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	pods.EndEvents() // event streams would last until the grace is out
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		log.Warn("in-flight calls outlived the shutdown grace; cancelling them", zap.Duration("grace", shutdownGrace))
		g.Stop()
	}
	return nil
}

// ignoreHangup keeps berthd running through SIGHUP (its terminal gone, or
// sent by habit to ask for a reload) until the returned stop: Go's default
// for it is to exit, and an inherited SIG_IGN (nohup) does not protect
// berthd, since oci/nsenter/signals.c resets it before the Go runtime
// starts; nothing in berthd's process sets a disposition after that. It
// is caught and logged, not ignored: a caught signal is reset to default
// across execve, so the runtimes, plugins and containers berthd starts do
// not inherit an ignored SIGHUP. There is nothing to reload or reopen:
// berthd reads its config once and logs to stderr.
func ignoreHangup(log *zap.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP ignored: berthd has no config or log file to reload")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

func newLogger(level, format string) (*zap.Logger, error) {
	var zc zap.Config
	if format == "json" {
		zc = zap.NewProductionConfig()
	} else {
		zc = zap.NewDevelopmentConfig()
		zc.Development = false
		zc.DisableStacktrace = true
	}
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	zc.Level = lvl
	zc.Sampling = nil
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}

// serveProfiles serves net/http/pprof on a loopback address or unix socket.
func serveProfiles(addr string) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serveHTTP("profiles", addr, mux)
}

// serveHTTP serves h on a loopback address or unix socket (an absolute
// path) until the returned stop is called.
func serveHTTP(what, addr string, h http.Handler) (func(), error) {
	network := "tcp"
	if filepath.IsAbs(addr) {
		network = "unix"
		_ = os.Remove(addr)
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s address: %w", what, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "berthd: %s: %v\n", what, err)
		}
	}()
	return func() { srv.Close() }, nil
}
