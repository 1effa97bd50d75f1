package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateRuntimeConfig takes kubelet's pod CIDR (one range, or an IPv4 and
// an IPv6 one joined by a comma) for the default network. A malformed
// range is InvalidArgument; an empty one changes nothing.
func (s *runtimeService) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if err := s.network.UpdatePodCIDR(cidr); err != nil {
		return nil, fmt.Errorf("update runtime config: %w", err)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
