// Package cri serves the Kubernetes Container Runtime Interface (v1) over
// gRPC. Handlers validate requests, translate them for the sandbox, image
// and cni packages, and turn their errors into gRPC status codes; no kernel
// work happens here.
//
// One file per CRI call, named after it (pod_sandbox_run.go holds
// RunPodSandbox). Calls no issue has built yet answer codes.Unimplemented
// through the embedded Unimplemented servers.
package cri

import (
	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/sandbox"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Options create a Server.
type Options struct {
	Images  *image.Store
	Pods    *sandbox.Manager
	Network *cni.Manager
	// Config is the effective configuration; Status reports it (verbose).
	Config       any
	CgroupDriver string
	Handlers     []string // CRI runtime handler names, default first
	// Stream serves Exec, Attach and PortForward; nil refuses them.
	Stream *StreamServer
	Log    *zap.Logger
}

// Server holds what the CRI services need.
type Server struct {
	images   *image.Store
	pods     *sandbox.Manager
	network  *cni.Manager
	config   any
	cgroups  string
	handlers []string
	stream   *StreamServer
	log      *zap.Logger
}

// runtimeService and imageService are separate types because the two
// embedded Unimplemented servers would make each other's methods ambiguous.
type runtimeService struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	*Server
}

type imageService struct {
	runtimeapi.UnimplementedImageServiceServer
	*Server
}

// New returns a Server.
func New(opts Options) *Server {
	return &Server{
		images:   opts.Images,
		pods:     opts.Pods,
		network:  opts.Network,
		config:   opts.Config,
		cgroups:  opts.CgroupDriver,
		handlers: opts.Handlers,
		stream:   opts.Stream,
		log:      opts.Log,
	}
}

// Register adds both CRI services to g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, &runtimeService{Server: s})
	runtimeapi.RegisterImageServiceServer(g, &imageService{Server: s})
}
