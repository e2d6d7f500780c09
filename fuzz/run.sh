#!/bin/sh
# Builds and runs the libFuzzer targets on copies of their seed corpora for
# SECONDS in total (default 60): the request decoder (fuzz_decode, corpus/)
# for a third of it, the daemon's control parser (fuzz_control,
# corpus-control/) for a sixth, the NBD reply decoder (fuzz_nbd_wire,
# corpus-nbd-wire/) for a twelfth, the engine (fuzz_engine, corpus-engine/: both
# transports, the dispatcher and the replies) for the rest, as it has far
# more to cover. Exits non-zero if any finds a crash (the reproducer is left
# in build-fuzz/artifacts/<target>-*).
#   fuzz/run.sh 300
# Environment: BUILD_DIR (default build-fuzz, relative to the repository root).
set -eu

SECONDS_TO_RUN=${1:-60}
case $SECONDS_TO_RUN in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac
DECODE_SECONDS=$((SECONDS_TO_RUN / 3))
CONTROL_SECONDS=$((SECONDS_TO_RUN / 6))
NBD_WIRE_SECONDS=$((SECONDS_TO_RUN / 12))
ENGINE_SECONDS=$((SECONDS_TO_RUN - DECODE_SECONDS - CONTROL_SECONDS - NBD_WIRE_SECONDS))

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-build-fuzz}
cd "$ROOT"

if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" -Dfuzz=true
else
	meson configure "$BUILD" -Dfuzz=true >/dev/null
fi
ninja -C "$BUILD" fuzz/fuzz_decode fuzz/fuzz_engine fuzz/fuzz_control fuzz/fuzz_nbd_wire

WORK=$(mktemp -d "${TMPDIR:-/tmp}/furing-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p "$BUILD/artifacts"

# run TARGET CORPUS SECONDS
run() {
	cp -R "fuzz/$2" "$WORK/$1"
	echo "== $1 for $3 s"
	status=0
	"$BUILD/fuzz/$1" \
		-max_total_time="$3" \
		-timeout=10 \
		-print_final_stats=1 \
		-artifact_prefix="$BUILD/artifacts/$1-" \
		"$WORK/$1" >"$WORK/$1.log" 2>&1 || status=$?
	cat "$WORK/$1.log"
	if [ "$status" -ne 0 ]; then
		echo "$1 failed (status $status); reproducers in $BUILD/artifacts/" >&2
		# The crash report, kept for the end: a caller that shows only the
		# log's tail (scripts/test.sh) would otherwise see the next target's
		# progress lines instead of what failed.
		{
			echo "== $1 failed (status $status):"
			grep -E -A 12 'ERROR|runtime error|deadly signal|^fuzz_[a-z_]+: ' "$WORK/$1.log" | head -n 30
			grep -E 'Test unit written' "$WORK/$1.log" || true
		} >>"$WORK/failures"
	fi
	return "$status"
}

failed=0
run fuzz_decode corpus "$DECODE_SECONDS" || failed=1
run fuzz_control corpus-control "$CONTROL_SECONDS" || failed=1
run fuzz_nbd_wire corpus-nbd-wire "$NBD_WIRE_SECONDS" || failed=1
run fuzz_engine corpus-engine "$ENGINE_SECONDS" || failed=1
# The verdict, last: scripts/test.sh shows only this line of the log.
if [ "$failed" -eq 0 ]; then
	echo "fuzz: ok (fuzz_decode ${DECODE_SECONDS} s, fuzz_control ${CONTROL_SECONDS} s, fuzz_nbd_wire ${NBD_WIRE_SECONDS} s, fuzz_engine ${ENGINE_SECONDS} s, no crash)"
else
	cat "$WORK/failures"
	echo "fuzz: FAILED (reproducers in $BUILD/artifacts/)"
fi
exit "$failed"
