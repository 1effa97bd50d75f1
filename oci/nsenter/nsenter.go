// Package nsenter joins a running container's namespaces before the Go
// runtime starts. Import it for its side effect (cmd/berthd does).
package nsenter
