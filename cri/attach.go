package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Attach checks that the container can be attached to with the streams
// asked for and returns the streaming server's URL; the monitor serves
// the attach when the client connects (stream.go, sandbox/container_attach.go).
func (s *runtimeService) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if s.stream == nil {
		return nil, fmt.Errorf("Attach: no streaming server: %w", errdefs.ErrUnavailable)
	}
	if _, err := s.pods.CheckAttach(req.GetContainerId(), req.GetStdin(), req.GetTty()); err != nil {
		return nil, err
	}
	return s.stream.lib.GetAttach(req)
}
