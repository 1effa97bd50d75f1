//go:build !linux

package cni

func (r *record) masquerades() bool                            { return false }
func releaseMasquerade(network, id string, ips []string) error { return nil }
