#!/usr/bin/env bash
# Installs what furing needs on Debian 12 and turns on FUSE-over-io_uring.
# Idempotent: installs only what is missing. Must run as root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: run as root (it installs packages and writes /sys/module/fuse/parameters/enable_uring)" >&2
	exit 1
fi

packages=(
	build-essential meson ninja-build pkg-config
	liburing-dev libcmocka-dev libnbd-dev libjansson-dev
	nbdkit qemu-utils
	python3 python3-pytest python3-pytest-timeout
	fio fuse3 util-linux
	clang libclang-rt-14-dev
	valgrind mandoc
	systemd
	kmod e2fsprogs
	qemu-system-x86
	librbd-dev ceph-common ceph-mon ceph-mgr ceph-osd qemu-block-extra
)
# Benchmark-only extras (bench/run.sh, bench/nbd.sh): the peers and the chart.
if [ "${FURING_SETUP_BENCH:-0}" = 1 ]; then
	packages+=(qemu-system-common gnuplot-nox libnbd-bin)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Wait (up to 10 min) for another apt or dpkg, e.g. unattended-upgrades
	# on a fresh machine, instead of failing at once on its lock.
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# FUSE-over-io_uring is off by default (doc/protocol.md 1.1); --io-uring=on needs it.
param=/sys/module/fuse/parameters/enable_uring
if [ -w "$param" ]; then
	[ "$(cat "$param")" = Y ] || echo Y >"$param"
else
	echo "setup: $param is missing: this kernel has no FUSE-over-io_uring; only /dev/fuse will work" >&2
fi
