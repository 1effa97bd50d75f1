#!/bin/sh
# Installs what `make bench` runs Berth against: Debian's containerd with
# runc and the CNI plugins, and a C compiler for the benchmark's static
# pause image. The benchmark starts its own private containerd; the
# package's service is not used (and is stopped if the package started it).
set -eu
need=""
command -v containerd >/dev/null 2>&1 || need="$need containerd"
command -v runc >/dev/null 2>&1 || need="$need runc"
[ -x /usr/lib/cni/bridge ] || need="$need containernetworking-plugins"
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
if [ -n "$need" ]; then
	apt-get install -y $need
fi
# The package may start a system containerd on /run/containerd; the
# benchmark needs none and the machine's CPUs are better left idle.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet containerd 2>/dev/null; then
	systemctl stop containerd
fi
containerd --version
