//go:build !linux

package cni

import (
	"errors"
	"net"
)

var errNotLinux = errors.New("cni: network namespaces need Linux")

func isNetNS(path string) bool       { return false }
func loopbackUp(path string) error   { return errNotLinux }
func loopbackIsUp(path string) error { return errNotLinux }
func hostIPs() ([]net.IP, error)     { return nil, errNotLinux }

func deleteIdleBridge(name string) error { return errNotLinux }
