package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec checks that the container can take the exec now and returns the
// streaming server's URL for it; the command runs when the client
// connects (stream.go).
func (s *runtimeService) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if s.stream == nil {
		return nil, fmt.Errorf("Exec: no streaming server: %w", errdefs.ErrUnavailable)
	}
	if err := s.pods.CheckExec(req.GetContainerId(), req.GetCmd()); err != nil {
		return nil, err
	}
	return s.stream.lib.GetExec(req)
}
