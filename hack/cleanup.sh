#!/bin/sh
# Removes what a killed or crashed test run can leave on the host: berthd
# processes and their mounts under the tests' temporary directories, the test
# bridges, and test cgroups. Each test cleans up after itself; this is the
# net under it, run at the end of `make test` with go test's exit status. It touches only names the
# tests use (berth-test-*, bt*/bn* bridges), never a real berthd's.
set -u
tmp=${TMPDIR:-/tmp}
for pid in $(pgrep -f "$tmp/berth-test-" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
# Deepest mounts first.
awk '{print $5}' /proc/self/mountinfo | grep "^$tmp/berth-test-" | sort -r | while read -r m; do
	umount -l "$m" 2>/dev/null
done
for cg in /sys/fs/cgroup/*/berth-test-* /sys/fs/cgroup/berth-test-*; do
	[ -d "$cg" ] || continue
	# Containers left running keep their cgroups busy.
	find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -9 "$pid" 2>/dev/null; done
	sleep 0.5
	find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
done
for br in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep -E '^(bt[0-9a-f]{8}|bn[0-9a-f]{10})$'); do
	ip link del "$br" 2>/dev/null
done
# A failed run ($1 non-zero) keeps the failed tests' directories (their
# berthd logs) for inspection.
[ "${1:-0}" = 0 ] && rm -rf "$tmp"/berth-test-* 2>/dev/null
exit 0
