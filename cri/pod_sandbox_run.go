package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *runtimeService) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	if req.GetConfig().GetMetadata() == nil {
		return nil, fmt.Errorf("RunPodSandbox: config.metadata is required: %w", errdefs.ErrInvalidArgument)
	}
	id, err := s.pods.RunPod(ctx, req.GetConfig(), req.GetRuntimeHandler())
	if err != nil {
		return nil, fmt.Errorf("run pod sandbox %q: %w", req.GetConfig().GetMetadata().GetName(), err)
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}
