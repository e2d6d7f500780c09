#!/usr/bin/env bash
# bench/pathapi.sh - the path API against the lowlevel API and against
# libfuse's high-level API (fuse.h), each job on each target:
#   metadata: bench/metabench.c (create, stat, unlink; 1 thread, 200 files)
#   read4k:   fio 4k random reads of one 64 MiB file (psync, qd1,
#             direct=1: every read reaches the filesystem)
# Targets, in pairs that do the same work:
#   pathfs, memfs       in-memory filesystems on the same engine: the path
#                       API (examples/pathfs) and the lowlevel one (examples/memfs)
#   pathpt, lf-mt, lf-uring
#                       passthrough of "/" (the jobs run in a tmpfs directory
#                       below it): examples/pathpt (the path API, io_uring,
#                       workers pinned)
#                       and libfuse's example/passthrough (high-level API)
#                       on its default multi-threaded /dev/fuse loop and with
#                       -o io_uring. Each passthrough runs twice: cache=1
#                       (names and attributes cached 1 s: pathpt's default,
#                       libfuse with -o auto_cache, which keeps fuse.h's 1 s)
#                       and cache=0 (nothing cached: libfuse's passthrough
#                       default, pathpt -o timeout=0). Both with
#                       default_permissions (the kernel checks permissions).
# The last lines are the ratios pathpt / libfuse per cache setting.
#
#   bench/pathapi.sh [BUILD_DIR] [SECONDS]     (default build, 5 s per job)
#
# BENCH_LIBFUSE_DIR: a libfuse meson build with example/passthrough and
# lib/libfuse3.so* (default /work/scratch/libfuse/build; see bench/README.md);
# without it the libfuse targets are skipped with one line.
# Needs root and fio. The machine's noise (shared CPUs) is in the numbers:
# repeat and compare medians.
set -Eeuo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$REPO/build}
SECS=${2:-5}
LIBFUSE=${BENCH_LIBFUSE_DIR:-/work/scratch/libfuse/build}
WORK=$(mktemp -d /tmp/pathapi.XXXXXX)
SRC=$(mktemp -d /dev/shm/pathapi.XXXXXX) # the passthroughs' tmpfs directory
trap 'for m in "$WORK"/mnt-*; do umount -l "$m" 2>/dev/null || true; done; rm -rf "$WORK" "$SRC"' EXIT
cc -O2 -Wall -pthread -o "$WORK/metabench" "$REPO/bench/metabench.c"
head -c 64M /dev/urandom >"$SRC/data"

LF=$LIBFUSE/example/passthrough
if [ -x "$LF" ] && [ -d "$LIBFUSE/lib" ]; then
	have_lf=1
else
	have_lf=0
	echo "libfuse: skipped ($LF not built)"
fi

mounted() { # MOUNTPOINT NAME
	for _ in $(seq 200); do mountpoint -q "$1" && return 0; sleep 0.05; done
	echo "$2 did not mount" >&2
	exit 1
}

# start NAME CACHE MOUNTPOINT: mounts the target; sets DIR (where the jobs
# run) and PID (a server to wait for after the unmount, or empty).
start() {
	local name=$1 cache=$2 m=$3 lfopts=default_permissions
	mkdir -p "$m"
	[ "$cache" = 1 ] && lfopts+=,auto_cache
	PID=
	case $name in
	pathfs) "$BUILD/examples/pathfs" -o io_uring=on "$m" ;; # daemonizes once serving
	memfs) "$BUILD/examples/memfs" --io-uring=on "$m" >/dev/null 2>&1 & ;;
	pathpt) "$BUILD/examples/pathpt" -o "io_uring=on,timeout=$cache" / "$m" ;;
	lf-mt | lf-uring)
		[ "$name" = lf-uring ] && lfopts+=,io_uring
		FUSE_INIT_STATUS=1 LD_LIBRARY_PATH="$LIBFUSE/lib" "$LF" -f -o "$lfopts" "$m" >"$WORK/$name.log" 2>&1 &
		PID=$!
		;;
	esac
	mounted "$m" "$name"
	case $name in
	pathfs | memfs) DIR=$m ;;
	*) DIR=$m$SRC ;;
	esac
}

# run NAME CACHE: one line of results, kept in $WORK/results.
run() {
	local name=$1 cache=$2 m="$WORK/mnt-$1-$2" meta read4k data note=""
	start "$name" "$cache" "$m"
	meta=$("$WORK/metabench" "$DIR" 1 200 "$SECS")
	data="$DIR/data"
	[ "$DIR" = "$m" ] && head -c 64M /dev/urandom >"$data"
	read4k=$(fio --name=r --filename="$data" --rw=randread --bs=4k --direct=1 --ioengine=psync \
		--runtime="$SECS" --time_based --output-format=terse --terse-version=3 | cut -d';' -f8)
	umount "$m"
	if [ -n "$PID" ]; then
		wait "$PID" || true # libfuse ends with its mount
	fi
	if [ "$name" = lf-uring ] && ! grep -q "io_uring=on" "$WORK/$name.log"; then
		note=" (io_uring not in use: $(grep -o 'io_uring=[^ ]*' "$WORK/$name.log" | head -1))"
	fi
	echo "$name cache=$cache: $meta read4k=$read4k$note" | tee -a "$WORK/results"
}

run pathfs 1
run memfs 1
for cache in 1 0; do
	run pathpt "$cache"
	if [ "$have_lf" = 1 ]; then
		run lf-mt "$cache"
		run lf-uring "$cache"
	fi
done

# ratio A B CACHE FIELD: A's FIELD over B's
ratio() {
	awk -v a="$1 cache=$3:" -v b="$2 cache=$3:" -v f="$4" '
		{ k = $1 " " $2; for (i = 3; i <= NF; i++) { split($i, kv, "="); v[k, kv[1]] = kv[2] } }
		END { x = v[a, f]; y = v[b, f]; if (y > 0) printf "%.2f", x / y; else printf "-" }' "$WORK/results"
}
echo "pathfs/memfs cache=1: total $(ratio pathfs memfs 1 total) read4k $(ratio pathfs memfs 1 read4k)"
if [ "$have_lf" = 1 ]; then
	for cache in 1 0; do
		for peer in lf-mt lf-uring; do
			echo "pathpt/$peer cache=$cache: create $(ratio pathpt "$peer" "$cache" create)" \
				"stat $(ratio pathpt "$peer" "$cache" stat) unlink $(ratio pathpt "$peer" "$cache" unlink)" \
				"total $(ratio pathpt "$peer" "$cache" total) read4k $(ratio pathpt "$peer" "$cache" read4k)"
		done
	done
fi
