#!/bin/sh
# build.sh: builds the pinned Kubernetes components and etcd into the cache
# directory and prints that directory.
#
# The binaries are slow to build (kubelet alone takes minutes on 2 cores), so
# they live outside the work tree in $BERTH_E2E_CACHE/<version>/, keyed by the
# pinned release (VERSION) and this module's go.sum, and a fresh clone on the
# same machine reuses them. A build runs at nice 10 and one package at a time
# (GOFLAGS=-p=1 unless E2E_BUILD_P says otherwise) so that it does not starve
# whatever else shares the machine.
set -eu
cd "$(dirname "$0")"
version=$(cat VERSION)
sum=$(cat go.mod go.sum etcd/main.go build.sh | sha256sum | cut -c1-12)
cache=${BERTH_E2E_CACHE:-/var/cache/berth-e2e}
dir=$cache/$version-$sum
bins="etcd kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl"
if [ -f "$dir/.complete" ]; then
	echo "$dir"
	exit 0
fi
mkdir -p "$dir"
# One build per cache directory at a time.
exec 9>"$dir/.lock"
flock 9
if [ ! -f "$dir/.complete" ]; then
	minor=${version#v1.}
	minor=${minor%%.*}
	pkg=k8s.io/component-base/version
	ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
	start=$(date +%s)
	echo "build.sh: building Kubernetes $version and etcd into $dir (takes minutes)" >&2
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	for b in $bins; do
		t0=$(date +%s)
		case $b in
		etcd) p=./etcd ;;
		*) p=k8s.io/kubernetes/cmd/$b ;;
		esac
		CGO_ENABLED=0 GOFLAGS="-p=${E2E_BUILD_P:-1} -mod=mod" nice -n 10 \
			go build -trimpath -ldflags "$ldflags" -o "$tmp/$b" "$p"
		echo "build.sh: $b built in $(($(date +%s) - t0))s" >&2
	done
	for b in $bins; do mv "$tmp/$b" "$dir/$b"; done
	touch "$dir/.complete"
	echo "build.sh: all built in $(($(date +%s) - start))s" >&2
fi
echo "$dir"
