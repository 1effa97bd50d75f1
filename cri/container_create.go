package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *runtimeService) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if req.GetConfig() == nil {
		return nil, fmt.Errorf("CreateContainer: config is required: %w", errdefs.ErrInvalidArgument)
	}
	id, err := s.pods.CreateContainer(ctx, req.GetPodSandboxId(), req.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("create container %q: %w", req.GetConfig().GetMetadata().GetName(), err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}
