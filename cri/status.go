package cri

import (
	"context"
	"encoding/json"

	"github.com/berth-runtime/berth/oci"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Reasons reported in Status conditions.
const (
	reasonNetworkNotReady = "NetworkPluginNotReady"
)

func (s *runtimeService) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	networkReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := s.network.Ready(); err != nil {
		networkReady.Status = false
		networkReady.Reason = reasonNetworkNotReady
		networkReady.Message = err.Error()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{
			Conditions: []*runtimeapi.RuntimeCondition{runtimeReady, networkReady},
		},
		RuntimeHandlers: s.runtimeHandlers(),
		// Merge and Strict are honoured and ContainerStatus.user reports
		// the IDs a container's first process starts with.
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.GetVerbose() {
		cfg, err := json.Marshal(s.config)
		if err != nil {
			return nil, err
		}
		sec, err := json.Marshal(securityInfo())
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"config": string(cfg), "security": string(sec)}
	}
	return resp, nil
}

// securityInfo is what verbose Status says about container security: the
// CRI's feature messages have no field for it, so kubelet and crictl users
// read it here.
func securityInfo() map[string]any {
	return map[string]any{
		// Every handler enforces seccomp: the built-in runtime compiles
		// and loads the filter, runc and crun read it from the spec.
		"seccomp_enforced":        oci.SeccompEnforced,
		"seccomp_default_profile": "moby/containerd default (github.com/moby/profiles/seccomp)",
		"seccomp_notify":          false,
		"default_capabilities":    oci.DefaultCapabilities,
	}
}

// runtimeHandlers lists the handlers for Status; the default one is also
// listed under the empty name, as kubelet looks it up that way.
func (s *runtimeService) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	out := make([]*runtimeapi.RuntimeHandler, 0, len(s.handlers)+1)
	for i, name := range s.handlers {
		f := s.pods.HandlerFeatures(name)
		features := &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: f.RecursiveReadOnly, UserNamespaces: f.UserNamespaces}
		if i == 0 {
			out = append(out, &runtimeapi.RuntimeHandler{Name: "", Features: features})
		}
		out = append(out, &runtimeapi.RuntimeHandler{Name: name, Features: features})
	}
	return out
}
