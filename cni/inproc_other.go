//go:build !linux

package cni

import (
	"context"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func (m *Manager) addInProcess(ctx context.Context, n *inprocNet, rec *record, rt *libcni.RuntimeConf, list *libcni.NetworkConfigList) (types.Result, error) {
	return nil, errNotLinux
}

func (m *Manager) delInProcess(ctx context.Context, n *inprocNet, rec *record, netns string) error {
	return errNotLinux
}
