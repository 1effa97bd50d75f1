package cri

import (
	"context"

	"github.com/berth-runtime/berth/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *runtimeService) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	filter := sandbox.PodFilter{ID: f.GetId(), Labels: f.GetLabelSelector()}
	if st := f.GetState(); st != nil {
		ready := st.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY
		filter.State = &ready
	}
	pods := s.pods.ListPods(filter)
	items := make([]*runtimeapi.PodSandbox, 0, len(pods))
	for _, p := range pods {
		items = append(items, &runtimeapi.PodSandbox{
			Id:             p.ID,
			Metadata:       p.Config.GetMetadata(),
			State:          podState(p.Ready),
			CreatedAt:      p.CreatedAt.UnixNano(),
			Labels:         p.Config.GetLabels(),
			Annotations:    p.Config.GetAnnotations(),
			RuntimeHandler: p.RuntimeHandler,
		})
	}
	return &runtimeapi.ListPodSandboxResponse{Items: items}, nil
}
