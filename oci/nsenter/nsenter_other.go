//go:build !linux

// Package nsenter joins a running container's namespaces before the Go
// runtime starts (Linux only; see nsenter_linux.go).
package nsenter
