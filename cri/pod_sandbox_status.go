package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/berth-runtime/berth/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStatus answers the pod's status with the statuses of all its
// containers and the time they were read, as containerd does: kubelet with
// the EventedPLEG feature gate takes a pod's containers from this answer
// (and from events) instead of listing them, so without them it sees none
// and creates the pod's containers again and again. The timestamp is taken
// first, so every status is at least as new as it says.
func (s *runtimeService) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	now := time.Now()
	info, err := s.pods.PodStatus(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("pod sandbox status: %w", err)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{
		Status:             podSandboxStatus(info),
		ContainersStatuses: s.pods.PodContainerStatuses(info.ID),
		Timestamp:          now.UnixNano(),
	}
	if req.GetVerbose() {
		v, err := s.pods.PodVerboseInfo(ctx, info.ID)
		if err != nil {
			return nil, fmt.Errorf("pod sandbox status: %w", err)
		}
		data, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("pod sandbox status: encode info: %w", err)
		}
		resp.Info = map[string]string{"info": string(data)}
	}
	return resp, nil
}

// podSandboxStatus is the CRI status of a pod.
func podSandboxStatus(info sandbox.PodInfo) *runtimeapi.PodSandboxStatus {
	st := &runtimeapi.PodSandboxStatus{
		Id:             info.ID,
		Metadata:       info.Config.GetMetadata(),
		State:          podState(info.Ready),
		CreatedAt:      info.CreatedAt.UnixNano(),
		Network:        &runtimeapi.PodSandboxNetworkStatus{},
		Labels:         info.Config.GetLabels(),
		Annotations:    info.Config.GetAnnotations(),
		RuntimeHandler: info.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{
			Namespaces: &runtimeapi.Namespace{
				Options: info.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
			},
		},
	}
	if st.Linux.Namespaces.Options == nil {
		st.Linux.Namespaces.Options = &runtimeapi.NamespaceOption{}
	}
	if len(info.IPs) > 0 {
		st.Network.Ip = info.IPs[0]
		for _, ip := range info.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}

func podState(ready bool) runtimeapi.PodSandboxState {
	if ready {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}
