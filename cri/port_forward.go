package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PortForward checks that the pod is ready and returns the streaming
// server's URL; connections are made as the client asks (stream.go).
func (s *runtimeService) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if s.stream == nil {
		return nil, fmt.Errorf("PortForward: no streaming server: %w", errdefs.ErrUnavailable)
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("PortForward: port %d is out of range: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	if err := s.pods.CheckPortForward(req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return s.stream.lib.GetPortForward(req)
}
