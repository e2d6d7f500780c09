#!/usr/bin/env bash
# bench/sid-root.sh - newer benchmark peers from Debian sid, without touching
# this Debian 12 system: a sid root made with debootstrap in a cache folder
# outside the repository, and a way to run its programs here.
#
#   sudo bench/sid-root.sh setup             # make or update the root (a few minutes)
#   bench/sid-root.sh check                  # exit 0 when the root is usable; print versions
#   bench/sid-root.sh exec PROGRAM [ARGS...] # run the root's PROGRAM on this system
#
# `exec` starts PROGRAM (a path inside the root, e.g. /usr/bin/qemu-storage-daemon)
# with the root's own dynamic loader and libraries but in this system's
# filesystem: paths in ARGS are this machine's paths, and a FUSE mount the
# program makes is an ordinary mount here (no chroot, no bind mounts, nothing to
# clean up). The root is $FURING_SID_ROOT (default /var/cache/furing-sid); the
# Debian mirror is the one /etc/apt/sources* name.
set -Eeuo pipefail

ROOT=${FURING_SID_ROOT:-/var/cache/furing-sid}
# What the benches run from the root: qemu-storage-daemon (QEMU's FUSE export,
# multi-threaded since 10.x; in qemu-utils since 10.x, in qemu-system-common
# before), qemu-nbd and qemu-img of the same version, and the block drivers.
PACKAGES=(qemu-utils qemu-block-extra)
MULTIARCH=x86_64-linux-gnu
LOADER=/lib64/ld-linux-x86-64.so.2

die() { echo "sid-root: $*" >&2; exit 1; }

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

mirror() {
	local SCRIPT_DIR
	SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	# shellcheck source=scripts/debian-mirror.sh
	. "$SCRIPT_DIR/../scripts/debian-mirror.sh"
	system_mirror
}

setup() {
	[[ $(id -u) -eq 0 ]] || die "setup needs root (debootstrap)"
	command -v debootstrap >/dev/null ||
		apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null ||
		die "debootstrap is missing and could not be installed (apt-get install debootstrap)"
	local m
	m=$(mirror)
	[[ -n $m ]] || die "no Debian mirror found in /etc/apt/sources.list*"
	if [[ ! -x $ROOT/usr/bin/apt-get ]]; then
		echo "sid-root: debootstrap sid into $ROOT (minbase)"
		rm -rf "$ROOT.partial"
		debootstrap --variant=minbase sid "$ROOT.partial" "$m" >"$ROOT.log" 2>&1 ||
			die "debootstrap sid failed: $(tail -n 2 "$ROOT.log" | tr '\n' ' ') (log: $ROOT.log)"
		mv "$ROOT.partial" "$ROOT"
	fi
	# apt inside the root needs /proc and /dev for a few maintainer scripts;
	# they are bound for this step only, in a private mount namespace. The
	# mirror may be a snapshot older than its Release file's Valid-Until (sid's
	# apt then refuses it, Debian 12's only warns): the date check is off, the
	# signatures are still checked.
	echo "sid-root: installing ${PACKAGES[*]} (apt inside the root)"
	unshare -m --propagation private sh -ec '
		root=$1; shift
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		apt="apt-get -qq -o Acquire::Check-Valid-Until=false"
		chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C $apt update
		chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
			$apt -y --no-install-recommends install "$@"
	' sh "$ROOT" "${PACKAGES[@]}" >>"$ROOT.log" 2>&1 ||
		die "apt-get install ${PACKAGES[*]} in the root failed: $(tail -n 2 "$ROOT.log" | tr '\n' ' ') (log: $ROOT.log)"
	check
}

# The root's libraries, ahead of this system's: the root's loader searches only
# these (and what the programs' RUNPATH names).
libpath() {
	echo "$ROOT/usr/lib/$MULTIARCH:$ROOT/lib/$MULTIARCH:$ROOT/usr/lib/$MULTIARCH/qemu"
}

run() {
	local prog=$1
	shift
	[[ -x $ROOT$LOADER && -x $ROOT$prog ]] ||
		die "no $prog in $ROOT: run 'sudo bench/sid-root.sh setup' first"
	# QEMU finds its block driver modules by this variable; --argv0 keeps the
	# program's own name in messages and /proc.
	exec env QEMU_MODULE_DIR="$ROOT/usr/lib/$MULTIARCH/qemu" \
		"$ROOT$LOADER" --library-path "$(libpath)" --argv0 "$(basename "$prog")" "$ROOT$prog" "$@"
}

check() {
	[[ -x $ROOT$LOADER ]] || die "no sid root at $ROOT: run 'sudo bench/sid-root.sh setup'"
	local qsd
	qsd=$( (run /usr/bin/qemu-storage-daemon --version) 2>&1 | head -n 1) ||
		die "the root's qemu-storage-daemon does not run here: $qsd"
	echo "sid-root: $ROOT: $qsd"
}

case ${1:-} in
setup) setup ;;
check) check ;;
exec)
	shift
	[[ $# -ge 1 ]] || { usage >&2; exit 2; }
	run "$@" ;;
-h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac
