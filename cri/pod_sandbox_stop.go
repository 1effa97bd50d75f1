package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *runtimeService) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if err := s.pods.StopPod(ctx, req.GetPodSandboxId()); err != nil {
		return nil, fmt.Errorf("stop pod sandbox: %w", err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}
