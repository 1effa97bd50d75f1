package cri

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-runtime/berth/cni"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUpdateRuntimeConfig(t *testing.T) {
	cfg := cni.DefaultConfig()
	cfg.ConfDir = t.TempDir()
	cfg.DefaultNetwork = true
	cfg.DefaultBridge = "bt-cri-urc" // never the host's own berth0
	network, err := cni.New(cni.Options{Config: cfg, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer network.Close()
	svc := &runtimeService{Server: New(Options{Network: network})}
	conf := filepath.Join(cfg.ConfDir, cni.DefaultConfFile)

	for _, tc := range []struct {
		name   string
		req    *runtimeapi.UpdateRuntimeConfigRequest
		code   codes.Code
		inConf string // the default network's range afterwards
	}{
		{name: "a request without runtime config changes nothing", req: &runtimeapi.UpdateRuntimeConfigRequest{}, inConf: cfg.DefaultSubnet},
		{name: "a malformed pod CIDR is an invalid argument", req: podCIDR("10.0.0.0/99"), code: codes.InvalidArgument, inConf: cfg.DefaultSubnet},
		{name: "kubelet's pod CIDR becomes the default network's range", req: podCIDR("10.123.4.0/24"), inConf: "10.123.4.0/24"},
		{name: "a dual-stack pod CIDR gives both ranges", req: podCIDR("10.123.5.0/24,fd00:123::/64"), inConf: "fd00:123::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.UpdateRuntimeConfig(context.Background(), tc.req)
			if got := status.Code(errgrpc.ToGRPC(err)); got != tc.code {
				t.Errorf("code = %v (%v), want %v", got, err, tc.code)
			}
			if tc.code == codes.InvalidArgument && !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v is not classified invalid argument", err)
			}
			data, _ := os.ReadFile(conf)
			if !strings.Contains(string(data), `"`+tc.inConf+`"`) {
				t.Errorf("default network lacks %s:\n%s", tc.inConf, data)
			}
		})
	}
}

func podCIDR(cidr string) *runtimeapi.UpdateRuntimeConfigRequest {
	return &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr},
	}}
}
