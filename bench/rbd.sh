#!/usr/bin/env bash
# bench/rbd.sh - furing's RBD backend against the other ways to reach a Ceph
# RBD image, with fio, all on the same one-node cluster and image:
#
#   fio-rbd        fio's own rbd engine (librbd directly, no FUSE): the limit
#   furing-uring   furing export --io-uring=on --writable rbd:... FILE
#   furing-legacy  furing export --io-uring=off --writable rbd:... FILE
#   qsd            qemu-storage-daemon: an rbd blockdev (qemu-block-extra)
#                  + its FUSE export
#
# The cluster is tests/ceph/cluster.sh's (mon, mgr, one bluestore OSD on a
# sparse file, pool size 1), started here and torn down at the end, on this
# machine: the OSD shares its CPUs with the clients, so it bounds every
# target. A writable furing export holds the image's exclusive lock, so the
# targets run one at a time: for each job, each target in turn, its daemon
# started for that run and stopped after it.
#
#   bench/rbd.sh [--quick] [--runtime S] [--size SIZE] [--targets LIST]
#                [--jobs LIST] [--repeat N] [--out DIR]
#
# Needs root. Installs missing Debian packages with apt-get. See bench/README.md.
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
PY=/usr/bin/python3

ALL_TARGETS=(fio-rbd furing-uring furing-legacy qsd)
# name:rw:bs:iodepth
ALL_JOBS=(
  "randread-4k-qd32:randread:4k:32"
  "randwrite-4k-qd32:randwrite:4k:32"
  "randread-4k-qd1:randread:4k:1"
  "randwrite-4k-qd1:randwrite:4k:1"
  "read-1m-qd8:read:1M:8"
  "write-1m-qd8:write:1M:8"
)
RUNTIME=5
RAMP=1
SIZE=1G
REPEAT=1
TARGETS_ARG="" JOBS_ARG="" OUT=""

usage() {
  cat <<EOF
Usage: bench/rbd.sh [OPTIONS]

Runs fio through every target against the same RBD image of a one-node Ceph
cluster started here (tests/ceph/cluster.sh), one target at a time.

  --quick            smoke run: --runtime 2 --size 256M (unless given)
  --runtime S        seconds per fio job after a ${RAMP} s ramp (default $RUNTIME)
  --size SIZE        image size, e.g. 1G, 256M (default $SIZE; multiple of 1 MiB)
  --targets LIST     comma list out of: ${ALL_TARGETS[*]} (default: all)
  --jobs LIST        comma list out of: $(printf '%s ' "${ALL_JOBS[@]%%:*}")(default: all)
  --repeat N         run every job/target cycle N times, report medians (default 1)
  --out DIR          output directory (default bench/results/rbd-<timestamp>)
  -h, --help         this text

Environment: FURING_BIN (default: build/furing, built from this tree first),
FURING_EXTRA_ARGS (added to every furing export), BENCH_RBD_CACHE (librbd's
rbd_cache for every target: default false), BENCH_FURING_RBD_OPTS (colon list of
Ceph options added to the furing targets' rbd: spec only, e.g. rbd_non_blocking_aio=false).
EOF
}

parse_bench_options "$@"
[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts, apt-get, enable_uring, the Ceph daemons)"

pick_into TARGETS "$TARGETS_ARG" "${ALL_TARGETS[@]}"
pick_into JOB_NAMES "$JOBS_ARG" "${ALL_JOBS[@]}"

SIZE_MIB=$(size_mib "$SIZE") || exit 1

# ---------------------------------------------------------------------------
# Output, work directory, cleanup on any exit
# ---------------------------------------------------------------------------
OUT=${OUT:-$REPO/bench/results/rbd-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/fio"
: >"$OUT/notes.txt"
WORK=$(mktemp -d /tmp/furing-rbd-bench.XXXXXX)
CEPH_DIR=$WORK/ceph
CLUSTER=$REPO/tests/ceph/cluster.sh
DPID=""      # the running daemon's pid
DFILE=""     # the file fio opens
FIO_PID=""

stop_daemon() {
  [[ -n $DPID ]] || return 0
  stop_pid "$DPID"
  force_umount "$DFILE"
  DPID=""
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $FIO_PID ]] && { kill -TERM "$FIO_PID" 2>/dev/null || true; wait "$FIO_PID" 2>/dev/null || true; }
  stop_daemon
  "$CLUSTER" stop "$CEPH_DIR" || true
  local left
  left=$(awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  for m in $left; do force_umount "$m"; done
  left=$(awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  [[ -z $left ]] && rm -rf "$WORK"
  if [[ -n $left ]]; then printf 'ERROR: still mounted after cleanup: %s\n' "$left" >&2; rc=1; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# Tools: Debian packages; a missing peer is skipped with a note
# ---------------------------------------------------------------------------
need_cmd fio fio || die "fio missing and could not be installed (see $OUT/apt.log)"
for p in ceph-mon:ceph-mon ceph-mgr:ceph-mgr ceph-osd:ceph-osd rbd:ceph-common; do
  need_cmd "${p%%:*}" "${p#*:}" || die "${p%%:*} missing and could not be installed (${p#*:})"
done
fio --enghelp 2>/dev/null | grep -qw rbd || { note "this fio has no rbd engine: fio-rbd skipped"; remove_target fio-rbd; }
if contains qsd "${TARGETS[@]}"; then
  if ! need_cmd qemu-storage-daemon qemu-system-common; then
    note "qemu-storage-daemon missing (qemu-system-common): qsd skipped"; remove_target qsd
  elif ! ls /usr/lib/*/qemu/block-rbd.so >/dev/null 2>&1 && ! apt_install qemu-block-extra; then
    note "QEMU's rbd driver missing (qemu-block-extra): qsd skipped"; remove_target qsd
  fi
fi
HAVE_FURING=0
for t in "${TARGETS[@]}"; do [[ $t == furing* ]] && HAVE_FURING=1; done
FURING=""
if ((HAVE_FURING)); then
  furing_binary
  if contains furing-uring "${TARGETS[@]}" && [[ -w $ENABLE_URING_PARAM ]] && [[ $(cat $ENABLE_URING_PARAM) != Y ]]; then
    echo Y >"$ENABLE_URING_PARAM"; say "wrote Y to $ENABLE_URING_PARAM"
  fi
fi
((${#TARGETS[@]})) || die "no target left to run"

# ---------------------------------------------------------------------------
# The cluster and the image, filled with data so that reads hit objects
# ---------------------------------------------------------------------------
say "starting the one-node Ceph cluster in $CEPH_DIR"
"$CLUSTER" start "$CEPH_DIR" >"$OUT/cluster.log" 2>&1 || die "the cluster did not start: $(tail -c 400 "$OUT/cluster.log")"
CONF=$CEPH_DIR/ceph.conf
export CEPH_CONF=$CONF   # fio's rbd engine and rbd read it
# The same librbd settings for every target: no librbd cache, so every
# write is acknowledged once the OSD has it (qemu-storage-daemon's rbd
# driver turns the cache off itself with cache.direct=on; librbd's default
# cache acknowledges writes early, but only after the image's first flush,
# which fio's rbd engine and a FUSE export reach at different times).
printf '\n[client.admin]\nrbd cache = %s\n' "${BENCH_RBD_CACHE:-false}" >>"$CONF"
POOL=rbd IMAGE=bench
rbd -c "$CONF" create --size "${SIZE_MIB}M" "$POOL/$IMAGE"
fio --name=fill --ioengine=rbd --clientname=admin --pool="$POOL" --rbdname="$IMAGE" --rw=write --bs=4M \
  --iodepth=8 --size="${SIZE_MIB}M" --refill_buffers --output="$OUT/fill.log" >/dev/null 2>&1 \
  || note "filling the image failed (see fill.log)"
# BENCH_FURING_RBD_OPTS: extra spec options for the furing targets only (e.g.
# rbd_non_blocking_aio=false), to try a librbd setting without changing the other clients' conf.
SPEC="rbd:$POOL/$IMAGE:conf=$CONF${BENCH_FURING_RBD_OPTS:+:$BENCH_FURING_RBD_OPTS}"

{
  printf 'key\tvalue\n'
  printf 'date\t%s\n' "$(date -Is)"
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'cpus\t%s\n' "$(nproc)"
  printf 'runtime\t%s\n' "$RUNTIME"
  printf 'size\t%s\n' "$SIZE"
  printf 'repeat\t%s\n' "$REPEAT"
  printf 'targets\t%s\n' "${TARGETS[*]}"
  printf 'jobs\t%s\n' "${JOB_NAMES[*]}"
  printf 'furing_rbd_opts\t%s\n' "${BENCH_FURING_RBD_OPTS:-}"
  printf 'furing\t%s\n' "$( [[ -n $FURING ]] && "$FURING" --version 2>/dev/null || echo -) $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo -)"
  printf 'versions\tfio %s; ceph %s; qemu-storage-daemon %s\n' "$(fio --version)" "$(ceph --version | awk '{print $3}')" \
    "$(qemu-storage-daemon --version 2>/dev/null | head -1 | awk '{print $3}')"
  printf 'uptime_start\t%s\n' "$(uptime)"
} >"$OUT/meta.tsv"
printf 'job\ttarget\trep\tjson\trc\tcpu_ticks\n' >"$OUT/runs.tsv"

# ---------------------------------------------------------------------------
# Daemons (FUSE targets), one at a time
# ---------------------------------------------------------------------------
start_daemon() {   # start_daemon TARGET JOB
  local t=$1 job=$2 i
  local file=$WORK/$t.file log=$OUT/$job-$t.log
  touch "$file"
  DFILE=$file
  case $t in
    furing-uring)  setsid "$FURING" export --io-uring=on --writable ${FURING_EXTRA_ARGS:-} "$SPEC" "$file" </dev/null >"$log" 2>&1 & ;;
    furing-legacy) setsid "$FURING" export --io-uring=off --writable ${FURING_EXTRA_ARGS:-} "$SPEC" "$file" </dev/null >"$log" 2>&1 & ;;
    qsd)           setsid qemu-storage-daemon \
                     --blockdev "driver=rbd,node-name=n0,pool=$POOL,image=$IMAGE,conf=$CONF,cache.direct=on" \
                     --export "type=fuse,id=e0,node-name=n0,mountpoint=$file,writable=on" </dev/null >"$log" 2>&1 & ;;
  esac
  DPID=$!
  printf '%s\t%s\n' "$t.cmd" "$(tr '\0' ' ' </proc/$DPID/cmdline 2>/dev/null)" >>"$OUT/meta.tsv"
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ $(mount_fstype "$file") == fuse* ]] && return 0
    proc_alive "$DPID" || break
    sleep 0.1
  done
  die "$t did not mount within ${START_TIMEOUT}s: $(tail -c 400 "$log")"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo -; }

run_fio() {   # run_fio JOB TARGET REP
  local job=$1 t=$2 rep=$3 spec rw bs qd json c0 c1 rc=0
  spec=$(printf '%s\n' "${ALL_JOBS[@]}" | grep "^$job:")
  IFS=: read -r _ rw bs qd <<<"$spec"
  json=fio/$job.$t.r$rep.json
  local -a args=(--name="$job" --rw="$rw" --bs="$bs" --iodepth="$qd" --numjobs=1 --size="${SIZE_MIB}M"
                 --runtime="$RUNTIME" --ramp_time="$RAMP" --time_based --norandommap --group_reporting
                 --lat_percentiles=1 --output-format=json --output="$OUT/$json")
  if [[ $t == fio-rbd ]]; then
    args+=(--ioengine=rbd --clientname=admin --pool="$POOL" --rbdname="$IMAGE")
  else
    start_daemon "$t" "$job"
    args+=(--ioengine=libaio --direct=1 --filename="$DFILE")
  fi
  c0=-
  fio "${args[@]}" >"$OUT/$json.stderr" 2>&1 &
  FIO_PID=$!
  if [[ -n $DPID ]]; then sleep "$RAMP"; c0=$(cpu_ticks "$DPID"); fi
  wait "$FIO_PID" || rc=$?
  FIO_PID=""
  c1=-
  [[ -n $DPID && $c0 != - ]] && c1=$(cpu_ticks "$DPID")
  if [[ $t == furing* ]]; then
    stop_daemon
    grep -h '^furing: summary' "$OUT/$job-$t.log" | sed "s/^/$job-$t: /" >>"$OUT/summaries.txt" || note "$job/$t: no summary line"
  else
    stop_daemon
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$job" "$t" "$rep" "$json" "$rc" \
    "$( [[ $c0 != - && $c1 != - ]] && echo $((c1 - c0)) || echo - )" >>"$OUT/runs.tsv"
  "$PY" - "$OUT/$json" "$job" "$t" <<'PYEOF' || true
import json, sys
try:
    t = open(sys.argv[1]).read(); d = json.loads(t[t.index('{'):])['jobs'][0]
    v = d['read']['iops'] + d['write']['iops']
    print('  %-18s %-14s %10.0f IOPS%s' % (sys.argv[2], sys.argv[3], v, '' if d['error'] == 0 else '  error=%d' % d['error']))
except Exception as e:
    print('  %s %s: FAILED (%s)' % (sys.argv[2], sys.argv[3], e))
PYEOF
}

# ---------------------------------------------------------------------------
# The run: per job, per repetition, every target in turn
# ---------------------------------------------------------------------------
say "output: $OUT"
say "uptime: $(uptime)"
for job in "${JOB_NAMES[@]}"; do
  for ((rep = 1; rep <= REPEAT; rep++)); do
    n=${#TARGETS[@]}
    for ((k = 0; k < n; k++)); do   # each repetition starts at another target
      run_fio "$job" "${TARGETS[$(((k + rep - 1) % n))]}" "$rep"
    done
  done
done
printf 'uptime_end\t%s\n' "$(uptime)" >>"$OUT/meta.tsv"
say "uptime: $(uptime)"

# ---------------------------------------------------------------------------
# Report: medians per job/target, ratios of furing-uring to the peers
# ---------------------------------------------------------------------------
"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/report.txt"
import json, os, statistics, sys
out = sys.argv[1]
def tsv(p):
    with open(p) as f:
        h = f.readline().rstrip('\n').split('\t')
        return [dict(zip(h, l.rstrip('\n').split('\t'))) for l in f if l.strip()]
meta = {r['key']: r['value'] for r in tsv(os.path.join(out, 'meta.tsv'))}
clk = os.sysconf('SC_CLK_TCK')
samples = {}
for r in tsv(os.path.join(out, 'runs.tsv')):
    try:
        t = open(os.path.join(out, r['json'])).read()
        j = json.loads(t[t.index('{'):])['jobs'][0]
        if r['rc'] != '0' or j['error']:
            continue
        ios = j['read']['total_ios'] + j['write']['total_ios']
        main = j['read'] if j['read']['total_ios'] >= j['write']['total_ios'] else j['write']
        p = main['lat_ns'].get('percentile', {})
        s = {'iops': j['read']['iops'] + j['write']['iops'],
             'mib': (j['read']['bw_bytes'] + j['write']['bw_bytes']) / 2**20,
             'p50': p.get('50.000000', 0) / 1000}
        if r['cpu_ticks'] not in ('', '-') and ios:
            s['cpu'] = int(r['cpu_ticks']) / clk * 1e6 / ios
        samples.setdefault((r['job'], r['target']), []).append(s)
    except (OSError, ValueError, KeyError, IndexError):
        pass
def med(key, m):
    v = [s[m] for s in samples.get(key, []) if m in s]
    return statistics.median(v) if v else None
targets = meta['targets'].split()
jobs = meta['jobs'].split()
print('furing RBD benchmark: %s, %s CPUs, kernel %s, %s s per job, %s image, medians of %s' % (
    meta['date'], meta['cpus'], meta['kernel'], meta['runtime'], meta['size'], meta['repeat']))
print('start: %s' % meta.get('uptime_start', '?').strip())
print('end:   %s' % meta.get('uptime_end', '?').strip())
print('\n(IOPS; 1M jobs: MiB/s; qd1: lat p50 us; cpu = daemon CPU us per I/O)')
hdr = ['job'] + targets + ['uring/fio-rbd', 'uring/qsd']
rows = []
for job in jobs:
    unit = 'mib' if '-1m-' in job else 'iops'
    row = [job]
    for t in targets:
        v = med((job, t), unit)
        cell = '-' if v is None else ('%.0f' % v if unit == 'mib' else '%.1fk' % (v / 1000))
        if v is not None and job.endswith('qd1'):
            cell += ' p50 %.0f' % med((job, t), 'p50')
        c = med((job, t), 'cpu')
        if c is not None and unit == 'iops':
            cell += ' cpu %.1f' % c
        row.append(cell)
    u = med((job, 'furing-uring'), unit)
    for peer, goal in (('fio-rbd', 0.8), ('qsd', 2.0)):
        p = med((job, peer), unit)
        if u is None or not p:
            row.append('-')
        else:
            ok = '' if '-4k-qd32' not in job else (' ok' if u / p >= goal else ' MISS')
            row.append('%.2f%s' % (u / p, ok))
    rows.append(row)
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
for r in [hdr] + rows:
    print('  '.join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
print('\ntargets at 4k qd32: furing-uring >= 0.8x fio-rbd, >= 2x qsd ("ok"/"MISS")')
notes = open(os.path.join(out, 'notes.txt')).read().strip()
if notes:
    print('notes:\n' + notes)
PYEOF
