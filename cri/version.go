package cri

// Berth's version is a semantic version, because kubelet parses
// RuntimeVersion as one (a bare commit hash shows as "berth://Unknown" in
// kubectl get nodes -o wide):
//
//   - a release build (the Makefile on a clean tree at tag v<VERSION>, or
//     `make build RELEASE=1`) is the VERSION file's content: 0.2.0;
//   - any other `make build` is 0.2.0-dev+<commit>, with ".dirty" after
//     the commit when the tree had changes;
//   - a plain `go build` gets the commit from the build information the Go
//     toolchain records (0.2.0-dev+<commit>), or is 0.2.0-dev without it
//     (-buildvcs=false, a source tarball).
//
// The Makefile passes the full string with -X .../cri.Version=...; without
// it, Version is derived from baseVersion, which a unit test keeps equal
// to the VERSION file. After a release, VERSION names the next one, so
// development builds sort after the release before them.

import (
	"context"
	"runtime/debug"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	runtimeName       = "berth"
	runtimeAPIVersion = "v1"
	// kubeletAPIVersion is the value of the deprecated VersionResponse.version
	// field; kubelet and crictl expect "0.1.0".
	kubeletAPIVersion = "0.1.0"
	// baseVersion is the VERSION file's version.
	baseVersion = "0.2.0"
)

// Version is berthd's version: set by the Makefile at link time, else
// derived from baseVersion and the build information.
var Version string

func init() {
	if Version == "" {
		Version = devVersion(debug.ReadBuildInfo())
	}
}

// devVersion is baseVersion-dev, with the VCS revision (12 digits) and a
// ".dirty" mark as build metadata when the build recorded them.
func devVersion(info *debug.BuildInfo, ok bool) string {
	v := baseVersion + "-dev"
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v
	}
	v += "+" + rev[:min(12, len(rev))]
	if modified == "true" {
		v += ".dirty"
	}
	return v
}

func (s *runtimeService) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           kubeletAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    Version,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}
