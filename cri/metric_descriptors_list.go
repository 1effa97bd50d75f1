package cri

import (
	"context"

	"github.com/berth-runtime/berth/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListMetricDescriptors describes every metric ListPodSandboxMetrics sends
// (sandbox/metrics.go); kubelet asks once, when it starts.
func (s *runtimeService) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: sandbox.MetricDescriptors()}, nil
}
