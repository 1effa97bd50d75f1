package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	runtimeName       = "berth"
	runtimeAPIVersion = "v1"
	// kubeletAPIVersion is the value of the deprecated VersionResponse.version
	// field; kubelet and crictl expect "0.1.0".
	kubeletAPIVersion = "0.1.0"
)

func (s *runtimeService) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           kubeletAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    Version,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}
