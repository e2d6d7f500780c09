#!/usr/bin/env bash
# Every test, from a fresh machine: set up, build (plain, ASan/UBSan, release),
# unit tests (also under valgrind), the decoder and engine fuzzers for a
# bounded time (FURING_FUZZ_SECONDS in total, default 60; their output in
# build-fuzz/fuzz.log, only the verdict shown),
# then the integration suite, which mounts for real under both transports
# against the sanitized daemon and example filesystems, and installs the
# plain build to compile an example against it out of the tree. The last
# line is pytest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh build
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
# Compiled only: at -O3 gcc checks more (format truncation, bounds) and
# -Werror makes each of those a broken release build.
scripts/build.sh build-release --buildtype=release

echo "== unit tests"
meson test -C build --suite unit --print-errorlogs
echo "== unit tests under valgrind"
meson test -C build --suite unit --print-errorlogs \
	--wrap='valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --quiet'
echo "== fuzzing the request decoder and the engine for ${FURING_FUZZ_SECONDS:-60} s"
# libFuzzer prints thousands of progress lines: they go to a log, and only
# the verdict (or, on a failure, the log's end) shows here.
mkdir -p build-fuzz
fuzz_log=build-fuzz/fuzz.log
if fuzz/run.sh "${FURING_FUZZ_SECONDS:-60}" >"$fuzz_log" 2>&1; then
	tail -n 1 "$fuzz_log"
else
	tail -n 60 "$fuzz_log"
	echo "== fuzzing failed; the whole output is in $fuzz_log" >&2
	exit 1
fi

echo "== io_uring integration tests on Linux 7.3 (a VM under TCG: scripts/vm.sh)"
# The plain build (ASan under TCG is too slow). Every io_uring integration
# test (7 minutes under TCG; doc/vm.md), with buffer pools and zero-copy on,
# the default there; the guest's /tmp is ext4, as here. A machine that cannot
# boot the VM fails here.
FURING_BIN=$PWD/build/furing scripts/vm.sh --kernel=7.3 --timeout=1500 -- \
	/usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider -k '(ring or linux73 or uring) and not rbd'

echo "== integration tests (real mounts, /dev/fuse and io_uring)"
export FURING_BIN=${FURING_BIN:-$PWD/build-asan/furing}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
exec /usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider "$@"
