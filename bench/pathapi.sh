#!/usr/bin/env bash
# bench/pathapi.sh - the path API (examples/pathfs) against the lowlevel API
# (examples/memfs), both in-memory filesystems on the same engine: the
# metadata job of bench/metabench.c (create, stat, unlink) and fio 4k
# random reads of one 64 MiB file (psync, qd1, direct=1: every read
# reaches the filesystem). libfuse's high-level examples are not compared:
# the libfuse build here has only passthrough_hp (lowlevel).
#
#   bench/pathapi.sh [BUILD_DIR] [SECONDS]     (default build, 5 s per job)
#
# Needs root and fio. One line per target and job. The machine's noise
# (shared CPUs) is in the numbers: repeat and compare medians.
set -Eeuo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$REPO/build}
SECS=${2:-5}
WORK=$(mktemp -d /tmp/pathapi.XXXXXX)
trap 'for m in "$WORK"/mnt-*; do umount -l "$m" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
cc -O2 -Wall -pthread -o "$WORK/metabench" "$REPO/bench/metabench.c"

start() { # NAME MOUNTPOINT
	mkdir -p "$2"
	case $1 in
	pathfs) "$BUILD/examples/pathfs" -o io_uring=on "$2" ;;                 # daemonizes once serving
	memfs) "$BUILD/examples/memfs" --io-uring=on "$2" >/dev/null 2>&1 & ;;
	esac
	for _ in $(seq 100); do mountpoint -q "$2" && return 0; sleep 0.05; done
	echo "$1 did not mount" >&2; exit 1
}

for t in pathfs memfs; do
	m="$WORK/mnt-$t"
	start "$t" "$m"
	meta=$("$WORK/metabench" "$m" 1 200 "$SECS")
	head -c 64M /dev/urandom >"$m/data"
	read4k=$(fio --name=r --filename="$m/data" --rw=randread --bs=4k --direct=1 --ioengine=psync \
		--runtime="$SECS" --time_based --output-format=terse --terse-version=3 | cut -d';' -f8)
	echo "$t: $meta read4k=${read4k}IOPS"
	umount "$m"
done
