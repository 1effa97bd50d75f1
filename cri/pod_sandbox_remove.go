package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *runtimeService) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if err := s.pods.RemovePod(ctx, req.GetPodSandboxId()); err != nil {
		return nil, fmt.Errorf("remove pod sandbox: %w", err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}
