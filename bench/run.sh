#!/usr/bin/env bash
# bench/run.sh - compare furing against the direct image, the kernel loop
# device, qemu-storage-daemon's FUSE export and libfuse's passthrough_hp
# (built outside this repository, see bench/README.md), with fio.
#
#   bench/run.sh [--quick] [--runtime S] [--size SIZE] [--targets LIST]
#                [--images LIST] [--jobs LIST] [--repeat N] [--out DIR]
#   bench/run.sh --report-only DIR      # re-print/re-make the report of a run
#
# Needs root.  Installs missing Debian packages with apt-get.
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
PY=/usr/bin/python3

ALL_TARGETS=(direct loop qemu qemu11 furing-legacy furing-uring furing-uring-nopoll furing-uring-pin furing-uring-float furing-legacy-bd
             furing-uring-bd furing-uring-kpt furing-uring-kpt-rw libfuse-legacy libfuse-uring libfuse-passthrough)
# Also accepted by --targets, never run by default: furing-uring-bpN (furing-uring
# with --busy-poll=N, for a sweep of the busy-poll limit in one interleaved run),
# qemu11-itN (QEMU 11's export on N iothreads, for a sweep of that number).
# qemu is Debian 12's qemu-storage-daemon 7.2 (one thread serves the export);
# qemu11 is sid's, run from bench/sid-root.sh's root, its FUSE export spread
# over $QEMU11_IOTHREADS iothreads.
# Read-only targets: their write jobs are "n/a" in every table, not failures.
READONLY_TARGETS=(furing-uring-kpt)
ALL_IMAGES=(tmpfs disk)
# name:rw:bs:iodepth:numjobs[:ioengine]  (ioengine defaults to libaio)
ALL_JOBS=(
  "randread-4k-qd1:randread:4k:1:1"
  "randread-4k-qd1-uring:randread:4k:1:1:io_uring"
  "randread-4k-qd32x2:randread:4k:32:2"
  "randwrite-4k-qd32x2:randwrite:4k:32:2"
  "read-1m-qd8:read:1M:8:1"
  "write-1m-qd8:write:1M:8:1"
)

RUNTIME=5
RAMP=1
SIZE=1G
REPEAT=1
TARGETS_ARG=""
IMAGES_ARG=""
JOBS_ARG=""
OUT=""
RESTART=0
DROP_CACHES=0
IDLE_S=5                   # seconds of idle CPU measured after an image's last job
REPORT_ONLY=""


usage() {
  cat <<EOF
Usage: bench/run.sh [OPTIONS]

Runs fio against the same raw image through several targets, interleaved
(for each job, every target in turn), on a tmpfs image and an on-disk image.

  --quick            short smoke run: --runtime 2 --size 256M (unless given)
  --runtime S        seconds per fio job after a ${RAMP} s ramp (default $RUNTIME)
  --size SIZE        image size, e.g. 1G, 256M, 512MiB (default $SIZE; multiple of 1 MiB)
  --targets LIST     comma list out of: ${ALL_TARGETS[*]}
                     (default: all; the *-bd variants need furing --backend-direct,
                     the libfuse-* ones passthrough_hp in BENCH_LIBFUSE_DIR);
                     also furing-uring-bpN (--busy-poll=N), e.g. furing-uring-bp20,
                     and qemu11-itN (QEMU 11 on N iothreads; qemu11: BENCH_QEMU11_IOTHREADS,
                     default 2; needs 'sudo bench/sid-root.sh setup', else skipped)
                     furing-uring-kpt is read-only: its write jobs show as n/a;
                     furing-uring-kpt-rw is writable, reads and writes through the kernel
  --images LIST      comma list out of: tmpfs disk (default: both;
                     tmpfs = $TMPFS_DIR, disk = $DISK_DIR)
  --jobs LIST        comma list of job names (default: all):
                     $(printf '%s ' "${ALL_JOBS[@]%%:*}")
  --repeat N         run every job/target cycle N times, report medians (default 1)
  --restart-daemons  start every daemon fresh for each fio run and stop it after
                     (default: one daemon per target per image, kept across its jobs)
  --drop-caches      sync and drop the host page cache before every fio run
  --out DIR          output directory (default bench/results/<timestamp>)
  --report-only DIR  only (re)build the tables/chart of an earlier run in DIR
  -h, --help         this text

Environment: FURING_BIN (default: build/furing, built from this tree first),
FURING_EXTRA_ARGS (added to every furing export), BENCH_TMPFS_DIR, BENCH_DISK_DIR,
BENCH_LIBFUSE_DIR (libfuse build directory, default $LIBFUSE_DIR),
BENCH_LIBFUSE_ARGS (added to every passthrough_hp command line).
EOF
}

# (both read by parse_bench_options in lib.sh)
# shellcheck disable=SC2034
BENCH_VALUE_OPTS=([--images]=IMAGES_ARG [--report-only]=REPORT_ONLY)
# shellcheck disable=SC2034
BENCH_FLAG_OPTS=([--restart-daemons]=RESTART [--drop-caches]=DROP_CACHES)
parse_bench_options "$@"

# ---------------------------------------------------------------------------
# Report (Python, stdlib only): parses runs.tsv + fio JSON, prints the tables,
# writes results.tsv, results.md, chart data + gnuplot script.
# ---------------------------------------------------------------------------
make_report() {
  "$PY" "$SCRIPT_DIR/run_report.py" "$1"
}

render_chart() {
  local out=$1
  [[ -f $out/chart.gp ]] || { say "(no chart: the direct target is needed to normalise)"; return 0; }
  if command -v gnuplot >/dev/null 2>&1; then
    if (cd "$out" && gnuplot chart.gp 2>"$out/gnuplot.err"); then
      [[ -s $out/gnuplot.err ]] || rm -f "$out/gnuplot.err"
      say "chart: $out/chart.png"
    else
      say "WARNING: gnuplot failed, see $out/gnuplot.err"
    fi
  else
    say "WARNING: gnuplot missing, chart not drawn (gnuplot script kept: $out/chart.gp)"
  fi
}

if [[ -n $REPORT_ONLY ]]; then
  [[ -f $REPORT_ONLY/runs.tsv ]] || die "$REPORT_ONLY: no runs.tsv (not an output directory of bench/run.sh?)"
  REPORT_ONLY=$(cd "$REPORT_ONLY" && pwd)
  make_report "$REPORT_ONLY"
  render_chart "$REPORT_ONLY"
  exit 0
fi

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------
((EUID == 0)) || die "must run as root (losetup, mount, /sys/module/fuse)"

split_list() { tr ',' ' ' <<<"$1"; }

TARGETS=()
if [[ -n $TARGETS_ARG ]]; then
  for t in $(split_list "$TARGETS_ARG"); do
    contains "$t" "${ALL_TARGETS[@]}" || [[ $t =~ ^furing-uring-bp[0-9]+$ || $t =~ ^qemu11-it[1-9][0-9]*$ ]] ||
      die "unknown target '$t' (known: ${ALL_TARGETS[*]} furing-uring-bpN qemu11-itN)"
    contains "$t" "${TARGETS[@]}" || TARGETS+=("$t")
  done
else
  TARGETS=("${ALL_TARGETS[@]}")
fi
IMAGES=()
for i in $(split_list "${IMAGES_ARG:-tmpfs,disk}"); do
  contains "$i" "${ALL_IMAGES[@]}" || die "unknown image '$i' (known: ${ALL_IMAGES[*]})"
  contains "$i" "${IMAGES[@]}" || IMAGES+=("$i")
done
JOBS=()
if [[ -n $JOBS_ARG ]]; then
  for j in $(split_list "$JOBS_ARG"); do
    found=""
    for spec in "${ALL_JOBS[@]}"; do [[ ${spec%%:*} == "$j" ]] && found=$spec; done
    [[ -n $found ]] || die "unknown job '$j' (known: ${ALL_JOBS[*]%%:*})"
    JOBS+=("$found")
  done
else
  JOBS=("${ALL_JOBS[@]}")
fi

# size in bytes
size_bytes() {
  local s=${1%iB}; s=${s%B}
  numfmt --from=iec "$s" 2>/dev/null || return 1
}
SIZE_BYTES=$(size_bytes "$SIZE") || die "cannot parse --size '$SIZE'"
((SIZE_BYTES >= 16 * 1048576 && SIZE_BYTES % 1048576 == 0)) || die "--size must be a multiple of 1 MiB and >= 16 MiB (got $SIZE_BYTES bytes)"

if [[ -z $OUT ]]; then
  OUT=$SCRIPT_DIR/results/$(date +%Y%m%d-%H%M%S)
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/notes.txt"
say "furing bench: output in $OUT"
T_START=$(date +%s)

# --- dependencies ------------------------------------------------------------
[[ -x $PY ]] || need_cmd python3 python3-minimal || die "$PY missing and python3-minimal could not be installed"
need_cmd fio fio || die "fio missing and 'apt-get install fio' failed (see $OUT/apt.log)"
need_cmd numfmt coreutils || die "numfmt (coreutils) missing"
need_cmd setsid util-linux || die "setsid (util-linux) missing"
need_cmd fallocate util-linux || die "fallocate (util-linux) missing"
if contains loop "${TARGETS[@]}"; then
  need_cmd losetup mount || die "losetup missing and 'apt-get install mount' failed"
fi
if contains qemu "${TARGETS[@]}"; then
  if ! need_cmd qemu-storage-daemon qemu-system-common; then
    note "qemu-storage-daemon not available (apt-get install qemu-system-common failed): qemu target skipped"
    remove_target qemu
  fi
fi
QEMU11_TARGETS=()
for t in "${TARGETS[@]}"; do [[ $t == qemu11* ]] && QEMU11_TARGETS+=("$t"); done
if ((${#QEMU11_TARGETS[@]})) && ! QEMU11_VERSION=$("$SCRIPT_DIR/sid-root.sh" check 2>&1); then
  note "QEMU 11 not available (${QEMU11_VERSION##*: }): ${QEMU11_TARGETS[*]} skipped; 'sudo bench/sid-root.sh setup' makes it"
  remove_target "${QEMU11_TARGETS[@]}"
fi
need_cmd gnuplot gnuplot-nox || note "gnuplot not available (apt-get install gnuplot-nox failed): no PNG chart"

# --- furing binary ----------------------------------------------------------------
HAVE_FURING=0
for t in "${TARGETS[@]}"; do [[ $t == furing* ]] && HAVE_FURING=1; done
FURING=""
if ((HAVE_FURING)); then
  furing_binary
  if ! timeout 10 "$FURING" export --help 2>&1 | grep -q -- '--backend-direct'; then
    if contains furing-legacy-bd "${TARGETS[@]}" || contains furing-uring-bd "${TARGETS[@]}"; then
      note "$FURING has no --backend-direct: furing-legacy-bd and furing-uring-bd skipped"
    fi
    remove_target furing-legacy-bd furing-uring-bd
  fi
  fhelp=$(timeout 10 "$FURING" export --help 2>&1 || true)
  if [[ $fhelp != *--kernel-passthrough* ]] && contains furing-uring-kpt "${TARGETS[@]}"; then
    note "$FURING has no --kernel-passthrough: furing-uring-kpt skipped"
    remove_target furing-uring-kpt
  fi
  if [[ $fhelp != *"the end extends the image"* ]] && contains furing-uring-kpt-rw "${TARGETS[@]}"; then
    note "$FURING has no writable --kernel-passthrough=on: furing-uring-kpt-rw skipped"
    remove_target furing-uring-kpt-rw
  fi
  if [[ $fhelp != *--busy-poll* ]]; then
    for t in "${TARGETS[@]}"; do
      if [[ $t == furing-uring-nopoll || $t == furing-uring-bp* ]]; then
        note "$FURING has no --busy-poll: $t skipped"
        remove_target "$t"
      fi
    done
  fi
fi

# --- libfuse peer (passthrough_hp, built outside this repository) ------------------
LIBFUSE_TARGETS=(libfuse-legacy libfuse-uring libfuse-passthrough)
LIBFUSE_DESC=""
if [[ " ${TARGETS[*]} " == *" libfuse-"* ]]; then
  if [[ ! -x $LIBFUSE_HP ]]; then
    note "no libfuse passthrough_hp at $LIBFUSE_HP (set BENCH_LIBFUSE_DIR; bench/README.md says how to build it): libfuse targets skipped"
    remove_target "${LIBFUSE_TARGETS[@]}"
  else
    lf_help=$(timeout 10 env LD_LIBRARY_PATH="$LIBFUSE_DIR/lib" "$LIBFUSE_HP" --help 2>&1 || true)
    if [[ $lf_help != *--nopassthrough* ]]; then
      note "$LIBFUSE_HP --help does not list --nopassthrough (not libfuse's passthrough_hp, or it does not start: $(head -c 200 <<<"$lf_help" | tr '\n' ' ')): libfuse targets skipped"
      remove_target "${LIBFUSE_TARGETS[@]}"
    elif [[ $lf_help != *"-o io_uring "* ]] && contains libfuse-uring "${TARGETS[@]}"; then
      note "$LIBFUSE_HP has no -o io_uring (libfuse older than 3.18 or built without io_uring): libfuse-uring skipped"
      remove_target libfuse-uring
    fi
    lf_ver=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
      "$LIBFUSE_DIR/meson-info/intro-projectinfo.json" 2>/dev/null || echo '?')
    lf_rev=$(git -C "$LIBFUSE_DIR" log -1 --format='%h %cs' 2>/dev/null || echo 'revision unknown')
    LIBFUSE_DESC="$LIBFUSE_HP (libfuse $lf_ver, $lf_rev)"
    say "libfuse peer: $LIBFUSE_DESC"
  fi
fi

# --- FUSE-over-io_uring switch ---------------------------------------------------
if [[ " ${TARGETS[*]} " == *" furing-uring"* || " ${TARGETS[*]} " == *" libfuse-uring "* ]]; then
  P=$ENABLE_URING_PARAM
  if [[ -w $P ]]; then
    old=$(cat "$P")
    echo Y >"$P"
    say "Setting $P = Y (FUSE-over-io_uring; was $old; left at Y afterwards)"
    echo "enable_uring was $old, set to Y by bench/run.sh" >"$OUT/enable_uring.txt"
  else
    note "$P missing or not writable: furing-uring and libfuse-uring targets skipped (kernel lacks CONFIG_FUSE_IO_URING?)"
    for t in "${TARGETS[@]}"; do
      if [[ $t == furing-uring* ]]; then remove_target "$t"; fi
    done
    remove_target libfuse-uring
  fi
fi
((${#TARGETS[@]})) || die "no targets left to run"

# ---------------------------------------------------------------------------
# Resource tracking and cleanup (EXIT/INT/TERM)
# ---------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/furing-bench.XXXXXX)
# shellcheck disable=SC2034 # (DLOG, DFST: read in run_daemons.sh)
declare -A DPID=() DMNT=() DLOG=() DFST=()   # per target of the current image
declare -A IDLE_US_S=()                      # daemon CPU while idle, µs per second
CREATED_IMAGES=()
LOOPDEVS=()
SAMPLER_PID=""
FIO_PID=""
CLEANED=0


cleanup() {
  local rc=$?
  ((CLEANED)) && return 0
  CLEANED=1
  set +e
  trap '' INT TERM
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  [[ -n $FIO_PID ]] && stop_pid "$FIO_PID"
  local t
  for t in "${!DPID[@]}"; do stop_pid "${DPID[$t]}"; done
  for t in "${!DMNT[@]}"; do force_umount "${DMNT[$t]}"; done
  local d
  for d in "${LOOPDEVS[@]}"; do losetup -d "$d" 2>/dev/null && say "detached $d"; done
  local img
  for img in "${CREATED_IMAGES[@]}"; do rm -f "$img"; rmdir "$(dirname "$img")" 2>/dev/null; done
  # Never leave a fuse mount behind: anything of ours still in mountinfo?
  local left
  left=$(awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  if [[ -n $left ]]; then
    local m
    for m in $left; do umount -l "$m" 2>/dev/null; done
    left=$(awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  fi
  if [[ -n $left ]]; then
    printf 'ERROR: mounts left behind: %s\n' "$left" >&2
    rc=1
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say ""; say "interrupted, cleaning up"; exit 130' INT TERM

# ---------------------------------------------------------------------------
# Daemons: bench/run_daemons.sh
# ---------------------------------------------------------------------------
# shellcheck source=bench/run_daemons.sh
. "$SCRIPT_DIR/run_daemons.sh"

for t in "${TARGETS[@]}"; do
  [[ $t == qemu* ]] || continue
  if probe_qemu "$t"; then
    say "$t: $(qemu_version "$t"): fuse export OK, aio=${QEMU_AIO[$t]}, cache.direct=on$(qemu_threads "$t")"
  else
    remove_target "$t"
  fi
done

# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
make_image() {   # make_image PATH (in a directory of its own, made here)
  local img=$1 dir base avail_kib need_kib
  dir=$(dirname "$img")
  base=$(dirname "$dir")
  [[ -d $base ]] || die "image directory $base does not exist"
  avail_kib=$(df -Pk "$base" | awk 'NR == 2 { print $4 }')
  need_kib=$((SIZE_BYTES / 1024 + 65536))
  ((avail_kib >= need_kib)) || die "not enough space in $base for a $SIZE image (${avail_kib} KiB free)"
  CREATED_IMAGES+=("$img")
  mkdir -p "$dir"
  rm -f "$img"
  fallocate -l "$SIZE_BYTES" "$img" || die "fallocate $img failed"
  # non-zero data everywhere, so reads hit real data
  dd if=/dev/urandom of="$img" bs=4M count=$((SIZE_BYTES / 4194304)) conv=notrunc,fsync status=none
  if ((SIZE_BYTES % 4194304)); then
    dd if=/dev/urandom of="$img" bs=1M seek=$((SIZE_BYTES / 4194304 * 4)) count=$((SIZE_BYTES % 4194304 / 1048576)) conv=notrunc,fsync status=none
  fi
  [[ $(stat -c %s "$img") -eq $SIZE_BYTES ]] || die "image $img has the wrong size"
}

image_path() {   # each image in a directory of its own: libfuse's passthrough_hp mirrors it
  case $1 in
    tmpfs) echo "$TMPFS_DIR/furing-bench-$$/image.img" ;;
    disk)  echo "$DISK_DIR/furing-bench-$$/image.img" ;;
  esac
}

# ---------------------------------------------------------------------------
# Meta data
# ---------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
JOB_NAMES=(); for spec in "${JOBS[@]}"; do JOB_NAMES+=("${spec%%:*}"); done
{
  printf 'key\tvalue\n'
  printf 'date\t%s\n' "$(date -Is)"
  printf 'host\t%s, kernel %s, %s CPUs, %s\n' "$(hostname)" "$(uname -r)" "$(nproc)" \
    "$(awk '/^model name/ { $1 = $2 = $3 = ""; sub(/^ +/, ""); print; exit }' /proc/cpuinfo)"
  printf 'fio\t%s\n' "$(fio --version)"
  [[ -n $FURING ]] && printf 'furing\t%s (%s)\n' "$FURING" "$(timeout 10 "$FURING" --version 2>&1 | head -1)"
  for t in "${TARGETS[@]}"; do
    if [[ $t == qemu* ]]; then
      printf '%s\t%s, aio=%s, cache.direct=on%s\n' "$t" "$(qemu_version "$t")" "${QEMU_AIO[$t]}" "$(qemu_threads "$t")"
    fi
  done
  [[ -n $LIBFUSE_DESC && " ${TARGETS[*]} " == *" libfuse-"* ]] &&
    printf 'libfuse\tpassthrough_hp %s, %s\n' "$LIBFUSE_DESC" \
      "$([[ -n ${BENCH_LIBFUSE_ARGS:-} ]] && echo "extra args: $BENCH_LIBFUSE_ARGS" || echo 'libfuse defaults for threads and io_uring_q_depth')"
  printf 'size\t%s MiB\n' "$((SIZE_BYTES / 1048576))"
  printf 'runtime\t%s\n' "$RUNTIME"
  printf 'ramp\t%s\n' "$RAMP"
  printf 'repeat\t%s\n' "$REPEAT"
  printf 'targets\t%s\n' "${TARGETS[*]}"
  printf 'jobs\t%s\n' "${JOB_NAMES[*]}"
  printf 'images\t%s\n' "${IMAGES[*]}"
  printf 'clk_tck\t%s\n' "$CLK_TCK"
  if ((RESTART)); then
    printf 'daemons\tstarted fresh for every fio run and stopped after it (--restart-daemons)\n'
  else
    printf 'daemons\tone per target per image, alive across all jobs of that image\n'
  fi
  ((DROP_CACHES)) && printf 'page_cache\tsync + drop_caches=3 before every fio run (--drop-caches)\n'
  printf 'idle_s\t%s\n' "$IDLE_S"
  printf 'load_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  for i in "${IMAGES[@]}"; do printf 'image_%s\t%s\n' "$i" "$(image_path "$i")"; done
} >"$OUT/meta.tsv"
printf 'image\tjob\ttarget\trep\tjson\trc\tcpu_ticks\tiowq_ns\tiowq_threads\n' >"$OUT/runs.tsv"
printf 'image\ttarget\tvmhwm_kib\tsummary\tidle_cpu_us_s\n' >"$OUT/daemons.tsv"

cpu_ticks() {   # utime + stime of PID (whole thread group), in clock ticks
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}

# run_fio TAG JOBSPEC TARGET FILE REP IMAGE
run_fio() {
  local tag=$1 spec=$2 t=$3 file=$4 rep=$5 img=$6
  local name rw bs qd nj engine json rc=0 pid="" c1 c2 ticks="-" iowq="-	-"
  IFS=: read -r name rw bs qd nj engine <<<"$spec"
  mkdir -p "$OUT/fio/$tag"
  json=fio/$tag/$name.$t.r$rep.json
  pid=${DPID[$t]:-}
  if [[ -n $pid ]]; then
    # sample the daemon's CPU time when fio's ramp ends, and when fio exits
    rm -f "$WORK/cpu1" "$WORK/tns1"
    ( sleep "$RAMP"; cpu_ticks "$pid" >"$WORK/cpu1"; task_ns "$pid" >"$WORK/tns1"
      task_cpus "$pid" ramp-end >"$OUT/$json.cpus" ) &
    SAMPLER_PID=$!
  fi
  fio --name="$name" --filename="$file" --ioengine="${engine:-libaio}" --direct=1 \
      --rw="$rw" --bs="$bs" --iodepth="$qd" --numjobs="$nj" --group_reporting \
      --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" \
      --norandommap --randrepeat=0 --lat_percentiles=1 --output-format=json --output="$OUT/$json" \
      </dev/null >"$OUT/$json.stderr" 2>&1 &
  # fio runs in the background and we wait for it: a trapped SIGINT/SIGTERM then
  # interrupts the wait at once (a foreground fio would swallow Ctrl-C and bash
  # would carry on); the cleanup trap stops fio.
  FIO_PID=$!
  wait "$FIO_PID" || rc=$?
  FIO_PID=""
  if [[ -n $pid ]]; then
    c2=$(cpu_ticks "$pid")
    task_ns "$pid" >"$WORK/tns2"
    task_cpus "$pid" fio-exit >>"$OUT/$json.cpus"
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    c1=$(cat "$WORK/cpu1" 2>/dev/null || echo -1)
    if ((c1 >= 0 && c2 >= c1)); then ticks=$((c2 - c1)); fi
    # io_uring's io-wq workers (iou-wrk-*): their on-CPU time in the same window
    # (a worker started after the first sample counts from 0) and how many there are
    iowq=$(awk 'NR == FNR { b[$1] = $3; next } $2 ~ /^iou-wrk/ { n++; d += $3 - ($1 in b ? b[$1] : 0) }
                END { printf "%d\t%d", d, n }' "$WORK/tns1" "$WORK/tns2" 2>/dev/null || echo "-	-")
    if ! proc_alive "$pid"; then
      ((rc != 0)) || rc=99
      say "WARNING: $t daemon (pid $pid) is gone"
    fi
  fi
  [[ -s $OUT/$json.stderr ]] || rm -f "$OUT/$json.stderr"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$name" "$t" "$rep" "$json" "$rc" "$ticks" "$iowq" >>"$OUT/runs.tsv"
  # keep the next run clean of this run's dirty page cache (buffered furing writes)
  sync "$img" 2>/dev/null || true
  LAST_RC=$rc
}

readonly_target() { contains "$1" "${READONLY_TARGETS[@]}"; }
is_write_job() { [[ $(cut -d: -f2 <<<"$1") == *write* || $(cut -d: -f2 <<<"$1") == *rw* ]]; }

task_cpus() {   # task_cpus PID WHEN: "WHEN TID COMM CPUS" of every thread of PID: where
  # each may run (furing's --pin=auto binds and frees workers as the load changes)
  local f
  for f in /proc/"$1"/task/*/status; do
    [[ -r $f ]] || continue
    awk -v when="$2" -v tid="$(basename "${f%/status}")" \
      '$1 == "Name:" { n = $2 } $1 == "Cpus_allowed_list:" { c = $2 } END { print when, tid, n, c }' "$f" 2>/dev/null
  done
}

task_ns() {   # "TID COMM ns" of every thread of PID (on-CPU time from schedstat)
  local f
  for f in /proc/"$1"/task/*/schedstat; do
    [[ -r $f ]] || continue
    local tid=${f%/schedstat}; tid=${tid##*/}
    printf '%s %s %s\n' "$tid" "$(cat "/proc/$1/task/$tid/comm" 2>/dev/null | tr -d ' ' || echo '?')" \
      "$(cut -d' ' -f1 "$f" 2>/dev/null || echo 0)"
  done
}
measure_idle() {   # measure_idle: CPU of every running daemon over IDLE_S idle seconds -> IDLE_US_S
  local t
  declare -A before=()
  sleep 1   # let a worker's last spin end
  for t in "${!DPID[@]}"; do before[$t]=$(task_ns "${DPID[$t]}"); done
  sleep "$IDLE_S"
  for t in "${!DPID[@]}"; do
    # threads present at both samples only (an io-wq worker may exit in between);
    # "ALL/IOWQ": all threads, and the part of io_uring's io-wq workers (iou-wrk-*),
    # whose last worker per ring wakes at its idle timeout
    # shellcheck disable=SC2034 # (read by stop_daemon, run_daemons.sh)
    IDLE_US_S[$t]=$(awk -v s="$IDLE_S" 'NR == FNR { b[$1] = $3; next }
                    ($1 in b) { d += $3 - b[$1]; if ($2 ~ /^iou-wrk/) w += $3 - b[$1] }
                    END { printf "%.1f/%.1f", d / 1000 / s, w / 1000 / s }' \
                    <(printf '%s\n' "${before[$t]}") <(task_ns "${DPID[$t]}"))
  done
}

quick_val() {   # one-line result for progress output
  "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null || echo "?"
import json, sys
t = open(sys.argv[1]).read(); d = json.loads(t[t.index('{'):]); j = d['jobs'][0]
io = j['read']['iops'] + j['write']['iops']; bw = (j['read']['bw_bytes'] + j['write']['bw_bytes']) / 2**20
print('%.0f MiB/s' % bw if sys.argv[2] == '1M' else '%.1fk IOPS' % (io / 1000))
PYEOF
}

# ---------------------------------------------------------------------------
# Main loop
# ---------------------------------------------------------------------------
say "targets: ${TARGETS[*]}"
say "jobs:    ${JOB_NAMES[*]}"
say "images:  ${IMAGES[*]} ($SIZE each), ${RUNTIME} s per job + ${RAMP} s ramp, repeat $REPEAT"
say "daemons: one per target, started fresh for each image and kept across its jobs, SIGTERM after"
NT=${#TARGETS[@]}
for tag in "${IMAGES[@]}"; do
  img=$(image_path "$tag")
  say ""
  say "== $tag image $img: creating ($SIZE, preallocated, random data)"
  make_image "$img"
  declare -A FILE=()
  for t in "${TARGETS[@]}"; do
    case $t in
      direct) FILE[$t]=$img ;;
      loop)
        dev=$(losetup --direct-io=on --show -f "$img") || die "losetup --direct-io=on -f $img failed"
        LOOPDEVS+=("$dev")
        FILE[$t]=$dev
        dio=$(cat "/sys/block/${dev#/dev/}/loop/dio" 2>/dev/null || echo '?')
        say "  loop up: $dev (dio=$dio)"
        [[ $dio == 1 ]] || note "$tag: $dev direct I/O is not active (dio=$dio)"
        ;;
      *)
        ((RESTART)) && continue   # started for each fio run below
        start_daemon "$t" "$img" "$tag"
        daemon_file "$t" "$img" ;;
    esac
  done
  for spec in "${JOBS[@]}"; do
    name=${spec%%:*}; bs=$(cut -d: -f3 <<<"$spec")
    for ((rep = 1; rep <= REPEAT; rep++)); do
      for ((k = 0; k < NT; k++)); do
        t=${TARGETS[$(((k + rep - 1) % NT))]}   # rotate the start per repetition
        if [[ -n ${DPID[$t]:-} ]] && ! daemon_ok "$t"; then
          # e.g. somebody else's cleanup killed it or unmounted it
          say "  $t (pid ${DPID[$t]}) is gone or unmounted: restarting it"
          note "$tag/$t: daemon was gone before $name r$rep; restarted (RSS/summary cover all instances)"
          stop_daemon "$t" "$tag" quiet
          start_daemon "$t" "$img" "$tag"
          daemon_file "$t" "$img"
        fi
        if readonly_target "$t" && is_write_job "$spec"; then
          printf '%s\t%s\t%s\t%s\t-\tna\t-\t-\t-\n' "$tag" "$name" "$t" "$rep" >>"$OUT/runs.tsv"
          printf '  %-20s %-18s r%d ... n/a (read-only target)\n' "$name" "$t" "$rep"
          continue
        fi
        if ((RESTART)) && [[ $t != direct && $t != loop ]]; then
          start_daemon "$t" "$img" "$tag" >/dev/null
          daemon_file "$t" "$img"
        fi
        printf '  %-20s %-18s r%d ... ' "$name" "$t" "$rep"
        if ((DROP_CACHES)); then sync; echo 3 >/proc/sys/vm/drop_caches; fi
        run_fio "$tag" "$spec" "$t" "${FILE[$t]}" "$rep" "$img"
        rc=$LAST_RC
        if ((RESTART)) && [[ -n ${DPID[$t]:-} ]]; then stop_daemon "$t" "$tag" >/dev/null; fi
        if [[ $rc == 0 ]]; then
          quick_val "$OUT/fio/$tag/$name.$t.r$rep.json" "$bs"
        else
          say "FAILED (rc=$rc, see $OUT/fio/$tag/$name.$t.r$rep.json*)"
        fi
      done
    done
  done
  if ((${#DPID[@]})); then
    say "  measuring the daemons' CPU while idle (${IDLE_S} s)"
    measure_idle
  fi
  for t in "${TARGETS[@]}"; do
    case $t in
      direct) ;;
      loop)
        losetup -d "${FILE[$t]}" || say "WARNING: losetup -d ${FILE[$t]} failed"
        tmp=(); for d in "${LOOPDEVS[@]}"; do [[ $d != "${FILE[$t]}" ]] && tmp+=("$d"); done; LOOPDEVS=("${tmp[@]}") ;;
      *) if [[ -n ${DPID[$t]:-} ]]; then stop_daemon "$t" "$tag"; fi ;;
    esac
  done
  rm -f "$img"
  rmdir "$(dirname "$img")" 2>/dev/null || true
  unset FILE
done

T_END=$(date +%s)
printf 'wall_time_s\t%s\n' "$((T_END - T_START))" >>"$OUT/meta.tsv"
printf 'load_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.tsv"
say ""
make_report "$OUT" | tee "$OUT/report.txt"
render_chart "$OUT"
say "wall time: $((T_END - T_START)) s; results in $OUT (results.md, results.tsv, report.txt, fio/*.json)"
if awk -F'\t' 'NR > 1 && $6 != 0 && $6 != "na" { bad = 1 } END { exit !bad }' "$OUT/runs.tsv"; then
  say "some fio runs FAILED (see above)"
  exit 1
fi
