#!/usr/bin/env bash
# bench/nbd.sh - furing's NBD backend against the other ways to reach an NBD
# server, with fio, all on the same server:
#
#   fio-nbd        fio's own nbd engine talking to the server (no FUSE): the limit
#   furing-uring   furing export --io-uring=on URI FILE
#   furing-legacy  furing export --io-uring=off URI FILE
#   furing-ref     FURING_REF_BIN export --io-uring=on URI FILE: another build
#                  (say the previous main), interleaved with this one so that
#                  a before/after comparison sees the same load
#   nbdfuse        libnbd's nbdfuse FILE URI (libnbd-bin)
#   qsd            qemu-storage-daemon: an nbd blockdev + its FUSE export
#   qsd11          the same from QEMU 11.1 (bench/sid-root.sh), its export on
#                  BENCH_QEMU11_IOTHREADS iothreads (default 2)
#
# Servers (one at a time, on a private Unix socket): nbdkit's memory plugin,
# qemu-nbd on a raw image on tmpfs, qemu-nbd on a qcow2 image on tmpfs.
#
#   bench/nbd.sh [--quick] [--runtime S] [--size SIZE] [--servers LIST]
#                [--targets LIST] [--jobs LIST] [--repeat N] [--out DIR]
#
# Needs root. Installs missing Debian packages with apt-get. See bench/README.md.
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
PY=/usr/bin/python3

ALL_SERVERS=(nbdkit-memory qemu-nbd-raw qemu-nbd-qcow2)
ALL_TARGETS=(fio-nbd furing-uring furing-legacy furing-ref nbdfuse qsd qsd11)
# name:rw:bs:iodepth
ALL_JOBS=(
  "randread-4k-qd32:randread:4k:32"
  "randwrite-4k-qd32:randwrite:4k:32"
  "randread-4k-qd1:randread:4k:1"
  "read-1m-qd8:read:1M:8"
)
RUNTIME=5
RAMP=1
SIZE=1G
REPEAT=1
SERVERS_ARG="" TARGETS_ARG="" JOBS_ARG="" OUT=""


usage() {
  cat <<EOF
Usage: bench/nbd.sh [OPTIONS]

Runs fio through every target against the same NBD server, interleaved (for
each job, every target in turn), for each server in turn.

  --quick            smoke run: --runtime 2 --size 256M (unless given)
  --runtime S        seconds per fio job after a ${RAMP} s ramp (default $RUNTIME)
  --size SIZE        disk size, e.g. 1G, 256M (default $SIZE; multiple of 1 MiB)
  --servers LIST     comma list out of: ${ALL_SERVERS[*]} (default: all)
  --targets LIST     comma list out of: ${ALL_TARGETS[*]} (default: all)
  --jobs LIST        comma list out of: $(printf '%s ' "${ALL_JOBS[@]%%:*}")(default: all)
  --repeat N         run every job/target cycle N times, report medians (default 1)
  --out DIR          output directory (default bench/results/nbd-<timestamp>)
  -h, --help         this text

Environment: FURING_BIN (default: build/furing, built from this tree first),
FURING_REF_BIN (the furing-ref target's binary; without it furing-ref is skipped),
FURING_EXTRA_ARGS (added to every furing export), BENCH_TMPFS_DIR (default /dev/shm).
EOF
}

# (read by parse_bench_options in lib.sh)
# shellcheck disable=SC2034
BENCH_VALUE_OPTS=([--servers]=SERVERS_ARG)
parse_bench_options "$@"
[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts, apt-get, enable_uring)"

pick_into SERVERS "$SERVERS_ARG" "${ALL_SERVERS[@]}"
pick_into TARGETS "$TARGETS_ARG" "${ALL_TARGETS[@]}"
pick_into JOB_NAMES "$JOBS_ARG" "${ALL_JOBS[@]}"

SIZE_MIB=$(size_mib "$SIZE") || exit 1

# ---------------------------------------------------------------------------
# Output, work directory, cleanup on any exit
# ---------------------------------------------------------------------------
OUT=${OUT:-$REPO/bench/results/nbd-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/fio"
: >"$OUT/notes.txt"
WORK=$(mktemp -d /tmp/furing-nbd-bench.XXXXXX)
IMGDIR=$(mktemp -d "$TMPFS_DIR/furing-nbd-bench.XXXXXX")
declare -A DPID=()      # target -> daemon pid
declare -A DFILE=()     # target -> file fio opens
SERVER_PID=""
FIO_PID=""

stop_daemons() {
  local t
  for t in "${!DPID[@]}"; do
    if [[ $t == nbdfuse ]]; then fusermount3 -u "${DFILE[$t]}" 2>/dev/null || true; fi
    stop_pid "${DPID[$t]}"
    force_umount "${DFILE[$t]}"
    unset "DPID[$t]"
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $FIO_PID ]] && { kill -TERM "$FIO_PID" 2>/dev/null || true; wait "$FIO_PID" 2>/dev/null || true; }
  stop_daemons
  stop_pid "$SERVER_PID"
  local left
  left=$(awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  for m in $left; do force_umount "$m"; done
  left=$(awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  rm -rf "$IMGDIR"
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
fio --enghelp 2>/dev/null | grep -qw nbd || { note "this fio has no nbd engine: fio-nbd skipped"; remove_target fio-nbd; }
need_cmd nbdkit nbdkit || die "nbdkit missing and could not be installed"
need_cmd qemu-nbd qemu-utils || die "qemu-nbd missing and could not be installed (qemu-utils)"
need_cmd qemu-img qemu-utils || die "qemu-img missing"
if contains nbdfuse "${TARGETS[@]}" && ! need_cmd nbdfuse libnbd-bin; then
  note "nbdfuse missing and could not be installed (libnbd-bin): nbdfuse skipped"; remove_target nbdfuse
fi
if contains qsd "${TARGETS[@]}" && ! need_cmd qemu-storage-daemon qemu-system-common; then
  note "qemu-storage-daemon missing (qemu-system-common): qsd skipped"; remove_target qsd
fi
if contains qsd11 "${TARGETS[@]}" && ! QEMU11_VERSION=$("$SCRIPT_DIR/sid-root.sh" check 2>&1); then
  note "QEMU 11 not available (${QEMU11_VERSION##*: }): qsd11 skipped; 'sudo bench/sid-root.sh setup' makes it"; remove_target qsd11
fi
if contains furing-ref "${TARGETS[@]}" && [[ ! -x ${FURING_REF_BIN:-} ]]; then
  note "FURING_REF_BIN is not set to a furing binary: furing-ref skipped"; remove_target furing-ref
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

{
  printf 'key\tvalue\n'
  printf 'date\t%s\n' "$(date -Is)"
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'cpus\t%s\n' "$(nproc)"
  printf 'runtime\t%s\n' "$RUNTIME"
  printf 'size\t%s\n' "$SIZE"
  printf 'repeat\t%s\n' "$REPEAT"
  printf 'servers\t%s\n' "${SERVERS[*]}"
  printf 'targets\t%s\n' "${TARGETS[*]}"
  printf 'jobs\t%s\n' "${JOB_NAMES[*]}"
  printf 'furing\t%s\n' "$( [[ -n $FURING ]] && "$FURING" --version 2>/dev/null || echo -) $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo -)"
  printf 'versions\tfio %s; nbdkit %s; qemu-nbd %s; libnbd %s\n' "$(fio --version)" "$(nbdkit --version | awk '{print $2}')" \
    "$(qemu-nbd --version | head -1 | awk '{print $2}')" "$(pkg-config --modversion libnbd 2>/dev/null || echo ?)"
  printf 'uptime_start\t%s\n' "$(uptime)"
} >"$OUT/meta.tsv"
printf 'server\tjob\ttarget\trep\tjson\trc\tcpu_ticks\n' >"$OUT/runs.tsv"

# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------
SOCK=$WORK/nbd.sock
URI="nbd+unix:///?socket=$SOCK"

wait_socket() {   # the server accepts connections (a probe connection costs nothing with --shared=16)
  local i
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    proc_alive "$SERVER_PID" || return 1
    if [[ -S $SOCK ]] && "$PY" -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sys.argv[1])" "$SOCK" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

start_server() {   # start_server NAME: one server on $SOCK, its disk filled with random data
  local name=$1 raw=$IMGDIR/disk.raw log=$OUT/$1.server.log
  rm -f "$SOCK"
  case $name in
    nbdkit-memory)
      setsid nbdkit --foreground --unix "$SOCK" --threads 16 memory "${SIZE_MIB}M" </dev/null >"$log" 2>&1 &
      SERVER_PID=$! ;;
    qemu-nbd-raw|qemu-nbd-qcow2)
      if [[ ! -f $raw ]]; then
        dd if=/dev/urandom of="$raw" bs=1M count="$SIZE_MIB" status=none
      fi
      local img=$raw fmt=raw
      if [[ $name == qemu-nbd-qcow2 ]]; then
        img=$IMGDIR/disk.qcow2 fmt=qcow2
        rm -f "$img"
        qemu-img convert -f raw -O qcow2 "$raw" "$img"
      fi
      # --shared: every target's connections at once (it then advertises multi-conn)
      setsid qemu-nbd --format=$fmt --socket="$SOCK" --persistent --shared=16 --cache=writeback \
        "$img" </dev/null >"$log" 2>&1 &
      SERVER_PID=$! ;;
  esac
  printf '%s\t%s\n' "$name.cmd" "$(tr '\0' ' ' </proc/$SERVER_PID/cmdline 2>/dev/null)" >>"$OUT/meta.tsv"
  wait_socket || die "$name did not serve on $SOCK within ${START_TIMEOUT}s: $(tail -c 300 "$log")"
  if [[ $name == nbdkit-memory ]]; then
    # non-zero data everywhere, as on the images, so reads hit real data
    fio --name=fill --ioengine=nbd --uri="$URI" --rw=write --bs=1M --iodepth=8 --size="${SIZE_MIB}M" \
      --refill_buffers --output="$OUT/$name.fill.log" >/dev/null 2>&1 || note "$name: filling the disk failed (see $name.fill.log)"
  fi
}

# ---------------------------------------------------------------------------
# Daemons (FUSE targets), all up at once on the running server
# ---------------------------------------------------------------------------
start_daemon() {   # start_daemon TARGET SERVER
  local t=$1 s=$2 i
  local file=$WORK/$t.file log=$OUT/$s-$t.log
  touch "$file"
  DFILE[$t]=$file
  case $t in
    furing-uring)  setsid "$FURING" export --io-uring=on --writable ${FURING_EXTRA_ARGS:-} "$URI" "$file" </dev/null >"$log" 2>&1 & ;;
    furing-legacy) setsid "$FURING" export --io-uring=off --writable ${FURING_EXTRA_ARGS:-} "$URI" "$file" </dev/null >"$log" 2>&1 & ;;
    furing-ref)    setsid "$FURING_REF_BIN" export --io-uring=on --writable ${FURING_EXTRA_ARGS:-} "$URI" "$file" </dev/null >"$log" 2>&1 & ;;
    nbdfuse)       setsid nbdfuse "$file" "$URI" </dev/null >"$log" 2>&1 & ;;
    qsd)           setsid qemu-storage-daemon \
                     --blockdev "driver=nbd,node-name=n0,server.type=unix,server.path=$SOCK" \
                     --export "type=fuse,id=e0,node-name=n0,mountpoint=$file,writable=on" </dev/null >"$log" 2>&1 & ;;
    qsd11)         local n=${BENCH_QEMU11_IOTHREADS:-2} it=() exp="type=fuse,id=e0,node-name=n0,mountpoint=$file,writable=on"
                   for ((i = 0; i < n; i++)); do it+=(--object "iothread,id=iot$i"); exp+=",iothread.$i=iot$i"; done
                   setsid "$SCRIPT_DIR/sid-root.sh" exec /usr/bin/qemu-storage-daemon "${it[@]}" \
                     --blockdev "driver=nbd,node-name=n0,server.type=unix,server.path=$SOCK" \
                     --export "$exp" </dev/null >"$log" 2>&1 & ;;
  esac
  DPID[$t]=$!
  printf '%s\t%s\n' "$s-$t.cmd" "$(tr '\0' ' ' </proc/${DPID[$t]}/cmdline 2>/dev/null)" >>"$OUT/meta.tsv"
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ $(mount_fstype "$file") == fuse* ]] && return 0
    proc_alive "${DPID[$t]}" || break
    sleep 0.1
  done
  die "$t on $s did not mount within ${START_TIMEOUT}s: $(tail -c 400 "$log")"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo -; }

run_fio() {   # run_fio SERVER JOB TARGET REP
  local s=$1 job=$2 t=$3 rep=$4 spec rw bs qd json c0 c1 rc=0
  spec=$(printf '%s\n' "${ALL_JOBS[@]}" | grep "^$job:")
  IFS=: read -r _ rw bs qd <<<"$spec"
  json=fio/$s.$job.$t.r$rep.json
  local -a args=(--name="$job" --rw="$rw" --bs="$bs" --iodepth="$qd" --numjobs=1 --size="${SIZE_MIB}M"
                 --runtime="$RUNTIME" --ramp_time="$RAMP" --time_based --norandommap --group_reporting
                 --lat_percentiles=1 --output-format=json --output="$OUT/$json")
  if [[ $t == fio-nbd ]]; then
    args+=(--ioengine=nbd --uri="$URI")
  else
    args+=(--ioengine=libaio --direct=1 --filename="${DFILE[$t]}")
  fi
  c0=-
  fio "${args[@]}" >"$OUT/$json.stderr" 2>&1 &
  FIO_PID=$!
  if [[ -n ${DPID[$t]:-} ]]; then sleep "$RAMP"; c0=$(cpu_ticks "${DPID[$t]}"); fi
  wait "$FIO_PID" || rc=$?
  FIO_PID=""
  c1=-
  [[ -n ${DPID[$t]:-} && $c0 != - ]] && c1=$(cpu_ticks "${DPID[$t]}")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$job" "$t" "$rep" "$json" "$rc" \
    "$( [[ $c0 != - && $c1 != - ]] && echo $((c1 - c0)) || echo - )" >>"$OUT/runs.tsv"
  "$PY" - "$OUT/$json" "$s" "$job" "$t" <<'PYEOF' || true
import json, sys
try:
    t = open(sys.argv[1]).read(); d = json.loads(t[t.index('{'):])['jobs'][0]
    v = d['read']['iops'] + d['write']['iops']
    print('  %-15s %-18s %-14s %10.0f IOPS%s' % (sys.argv[2], sys.argv[3], sys.argv[4], v, '' if d['error'] == 0 else '  error=%d' % d['error']))
except Exception as e:
    print('  %s %s %s: FAILED (%s)' % (sys.argv[2], sys.argv[3], sys.argv[4], e))
PYEOF
}

# ---------------------------------------------------------------------------
# The run: per server, per job, per repetition, every target in turn
# ---------------------------------------------------------------------------
say "output: $OUT"
say "uptime: $(uptime)"
for s in "${SERVERS[@]}"; do
  say "== server $s"
  start_server "$s"
  for t in "${TARGETS[@]}"; do [[ $t == fio-nbd ]] || start_daemon "$t" "$s"; done
  for job in "${JOB_NAMES[@]}"; do
    for ((rep = 1; rep <= REPEAT; rep++)); do
      n=${#TARGETS[@]}
      for ((k = 0; k < n; k++)); do   # each repetition starts at another target
        run_fio "$s" "$job" "${TARGETS[$(((k + rep - 1) % n))]}" "$rep"
      done
    done
  done
  for t in "${!DPID[@]}"; do
    if [[ $t == furing* ]]; then
      stop_pid "${DPID[$t]}"; unset "DPID[$t]"
      grep -h '^furing: summary' "$OUT/$s-$t.log" | sed "s/^/$s-$t: /" >>"$OUT/summaries.txt" || note "$s/$t: no summary line"
    fi
  done
  stop_daemons
  stop_pid "$SERVER_PID"; SERVER_PID=""
done
printf 'uptime_end\t%s\n' "$(uptime)" >>"$OUT/meta.tsv"
say "uptime: $(uptime)"

# ---------------------------------------------------------------------------
# Report: medians per server/job/target, ratios of furing-uring to the peers
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
             'p50': p.get('50.000000', 0) / 1000, 'p99': p.get('99.000000', 0) / 1000}
        if r['cpu_ticks'] not in ('', '-') and ios:
            s['cpu'] = int(r['cpu_ticks']) / clk * 1e6 / ios
        samples.setdefault((r['server'], r['job'], r['target']), []).append(s)
    except (OSError, ValueError, KeyError, IndexError):
        pass
def med(key, m):
    v = [s[m] for s in samples.get(key, []) if m in s]
    return statistics.median(v) if v else None
targets = meta['targets'].split()
jobs = meta['jobs'].split()
print('furing NBD benchmark: %s, %s CPUs, kernel %s, %s s per job, %s disk, medians of %s' % (
    meta['date'], meta['cpus'], meta['kernel'], meta['runtime'], meta['size'], meta['repeat']))
print('start: %s' % meta.get('uptime_start', '?').strip())
print('end:   %s' % meta.get('uptime_end', '?').strip())
for srv in meta['servers'].split():
    print('\n== %s  (IOPS; 1M job: MiB/s; qd1: lat p50 us; cpu = daemon CPU us per I/O)' % srv)
    hdr = ['job'] + targets + ['uring/nbdfuse', 'uring/qsd', 'uring/qsd11', 'uring/fio-nbd', 'ref/fio-nbd']
    rows = []
    for job in jobs:
        unit = 'mib' if '-1m-' in job else 'iops'
        row = [job]
        for t in targets:
            v = med((srv, job, t), unit)
            cell = '-' if v is None else ('%.0f' % v if unit == 'mib' else '%.1fk' % (v / 1000))
            if v is not None and job.endswith('qd1'):
                cell += ' p50 %.0f' % med((srv, job, t), 'p50')
            c = med((srv, job, t), 'cpu')
            if c is not None and unit == 'iops':
                cell += ' cpu %.1f' % c
            row.append(cell)
        u = med((srv, job, 'furing-uring'), unit)
        for peer, goal in (('nbdfuse', 2.0), ('qsd', 2.0), ('qsd11', 1.5), ('fio-nbd', 0.9)):
            p = med((srv, job, peer), unit)
            if u is None or not p:
                row.append('-')
            else:
                ok = '' if '-4k-qd32' not in job else (' ok' if u / p >= goal else ' MISS')
                row.append('%.2f%s' % (u / p, ok))
        r, p = med((srv, job, 'furing-ref'), unit), med((srv, job, 'fio-nbd'), unit)
        row.append('%.2f' % (r / p) if r is not None and p else '-')
        rows.append(row)
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    for r in [hdr] + rows:
        print('  '.join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
print('\ntargets at 4k qd32: furing-uring >= 2x nbdfuse, >= 2x qsd, >= 1.5x qsd11, >= 0.9x fio-nbd ("ok"/"MISS")')
notes = open(os.path.join(out, 'notes.txt')).read().strip()
if notes:
    print('notes:\n' + notes)
PYEOF
