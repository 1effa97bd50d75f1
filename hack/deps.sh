#!/bin/sh
# Installs the Debian packages Berth needs. `hack/deps.sh run` installs what
# berthd uses at run time; `hack/deps.sh test` adds what the tests use.
# Packages already present are not reinstalled, and apt-get runs only when
# something is missing, so a second call costs nothing.
set -eu
# libseccomp-dev and pkg-config build berthd (its seccomp filters are
# compiled with libseccomp through cgo); libseccomp2 comes with them.
run="iproute2 iptables nftables containernetworking-plugins runc crun libseccomp-dev pkg-config"
# busybox (dynamic, not busybox-static) is what test images are built from;
# docker-registry serves them in the end-to-end tests; htpasswd (apache2-utils)
# writes its bcrypt password file; gcc and libc6-dev build the cgo parts.
test="$run busybox docker-registry apache2-utils gcc libc6-dev"
case "${1:-run}" in
run) want=$run ;;
test) want=$test ;;
*) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
need=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "berth needs these Debian packages:$need (run as root to install them)" >&2
	exit 1
fi
echo "installing Debian packages:$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $need >/dev/null
# docker-registry's package starts a system registry on :5000; the tests
# start their own on loopback ports they choose.
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
