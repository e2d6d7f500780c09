#!/bin/sh
# Builds and runs the decode fuzzer for SECONDS (default 60) on a copy of the
# seed corpus; exits non-zero if it finds a crash (the reproducer is left in
# build-fuzz/artifacts/).
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

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-build-fuzz}
cd "$ROOT"

if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" -Dfuzz=true
else
	meson configure "$BUILD" -Dfuzz=true >/dev/null
fi
ninja -C "$BUILD" fuzz/fuzz_decode

WORK=$(mktemp -d "${TMPDIR:-/tmp}/furing-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
cp -R fuzz/corpus "$WORK/corpus"
mkdir -p "$BUILD/artifacts"

status=0
"$BUILD/fuzz/fuzz_decode" \
	-max_total_time="$SECONDS_TO_RUN" \
	-timeout=10 \
	-print_final_stats=1 \
	-artifact_prefix="$BUILD/artifacts/" \
	"$WORK/corpus" || status=$?

if [ "$status" -ne 0 ]; then
	echo "fuzz_decode failed (status $status); reproducers in $BUILD/artifacts/" >&2
fi
exit "$status"
