package integration

import (
	"testing"

	"github.com/berth-runtime/berth/test/harness"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodUserNamespaceOptionsAreCheckedAsTheCRISays(t *testing.T) {
	d := harness.Start(t)
	one := func(container, host uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: container, HostId: host, Length: 65536}}
	}
	for _, tc := range []struct {
		name   string
		userns *runtimeapi.UserNamespace
		want   codes.Code
	}{
		{"node", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, codes.OK},
		{"unmapped-root", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one(1, 100000), Gids: one(0, 100000)}, codes.InvalidArgument},
		{"two-mappings", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: append(one(0, 100000), one(65536, 300000)...), Gids: one(0, 100000)}, codes.InvalidArgument},
		{"container-mode", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, codes.InvalidArgument},
		{"target-mode", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, codes.InvalidArgument},
		// Not built yet: refused, never run in the host's user namespace.
		{"pod", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one(0, 100000), Gids: one(0, 100000)}, codes.Unimplemented},
	} {
		for _, h := range handlers {
			cfg := podConfig(d, "userns-"+tc.name+"-"+h)
			cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = tc.userns
			resp, err := d.Runtime.RunPodSandbox(ctxFor(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: h})
			if status.Code(err) != tc.want {
				t.Errorf("%s on %s: RunPodSandbox: %v, want %v", tc.name, h, err, tc.want)
			}
			if err == nil {
				if _, err := d.Runtime.RemovePodSandbox(ctxFor(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
					t.Errorf("RemovePodSandbox: %v", err)
				}
			}
		}
	}
	resp, err := d.Runtime.Status(ctxFor(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range resp.GetRuntimeHandlers() {
		if h.GetFeatures().GetUserNamespaces() {
			t.Errorf("handler %q reports user_namespaces, which no handler has yet", h.GetName())
		}
	}
}
