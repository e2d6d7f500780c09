#!/usr/bin/env bash
# bench/passthrough.sh - furing passthrough against libfuse's passthrough_hp
# (legacy /dev/fuse, io_uring, kernel passthrough) and against the source
# directory itself, on a tmpfs and a disk source, with fio and a metadata
# job (bench/metabench.c). Same conventions as bench/run.sh: one interleaved
# run (for each job, every target in turn), daemons started fresh per source
# and kept across its jobs, medians with --repeat, a report with ratios.
#
#   bench/passthrough.sh [--quick] [--runtime S] [--size SIZE] [--targets LIST]
#                        [--sources LIST] [--jobs LIST] [--repeat N] [--out DIR]
#   bench/passthrough.sh --report-only DIR
#
# Needs root. Installs fio with apt-get when missing.
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
PY=/usr/bin/python3

ALL_TARGETS=(direct furing-legacy furing-uring furing-uring-nopoll furing-uring-always furing-uring-pin furing-uring-float furing-uring-ring
             furing-kpt furing-kpt-noxattr libfuse-legacy libfuse-uring libfuse-passthrough)
ALL_SOURCES=(tmpfs disk)
# name:kind:rw:bs:iodepth:numjobs   (kind fio: libaio, direct=1; kind meta: metabench)
ALL_JOBS=(
  "randread-4k-qd1:fio:randread:4k:1:1"
  "randwrite-4k-qd1:fio:randwrite:4k:1:1"
  "randread-4k-qd32x2:fio:randread:4k:32:2"
  "randwrite-4k-qd32x2:fio:randwrite:4k:32:2"
  "read-1m-qd8:fio:read:1M:8:1"
  "write-1m-qd8:fio:write:1M:8:1"
  "meta-4t:meta:-:-:4:500"
)

RUNTIME=5
RAMP=1
SIZE=1G
REPEAT=1
TARGETS_ARG="" SOURCES_ARG="" JOBS_ARG="" OUT="" REPORT_ONLY=""


usage() {
  cat <<EOF
Usage: bench/passthrough.sh [OPTIONS]

furing passthrough vs libfuse passthrough_hp vs the source directory itself,
interleaved (for each job, every target in turn), on a tmpfs and a disk source.

  --quick            smoke run: --runtime 2 --size 256M (unless given)
  --runtime S        seconds per job after a ${RAMP} s ramp (default $RUNTIME)
  --size SIZE        size of the fio data file, e.g. 1G, 256M (default $SIZE)
  --targets LIST     comma list out of: ${ALL_TARGETS[*]} (default: all)
  --sources LIST     comma list out of: tmpfs disk (default: both;
                     tmpfs = $TMPFS_DIR, disk = $DISK_DIR)
  --jobs LIST        comma list out of: $(printf '%s ' "${ALL_JOBS[@]%%:*}")
  --repeat N         run every job/target cycle N times, report medians (default 1)
  --out DIR          output directory (default bench/results/passthrough-<timestamp>)
  --report-only DIR  only (re)build the report of an earlier run in DIR
  -h, --help         this text

Environment: FURING_BIN (default build/furing, built from this tree first),
FURING_EXTRA_ARGS (added to every furing passthrough), BENCH_TMPFS_DIR,
BENCH_DISK_DIR, BENCH_LIBFUSE_DIR (default $LIBFUSE_DIR), BENCH_LIBFUSE_ARGS.
EOF
}

# (read by parse_bench_options in lib.sh)
# shellcheck disable=SC2034
BENCH_VALUE_OPTS=([--sources]=SOURCES_ARG [--report-only]=REPORT_ONLY)
parse_bench_options "$@"

# ---------------------------------------------------------------------------
# Report: runs.tsv + fio JSON / metabench lines -> tables, ratios, targets.
# ---------------------------------------------------------------------------
make_report() {
  "$PY" - "$1" <<'PYEOF'
import json, os, statistics, sys

out = sys.argv[1]
def rd(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            hdr = f.readline().rstrip('\n').split('\t')
            rows = [dict(zip(hdr, l.rstrip('\n').split('\t'))) for l in f if l.strip()]
    return rows
meta = {r['key']: r['value'] for r in rd(os.path.join(out, 'meta.tsv'))}
runs = rd(os.path.join(out, 'runs.tsv'))
daemons = rd(os.path.join(out, 'daemons.tsv'))
if not runs:
    sys.exit('no runs recorded in %s' % out)
targets = meta.get('targets', '').split()
jobs = meta.get('jobs', '').split()
sources = meta.get('sources', '').split()
clk = float(meta.get('clk_tck', '100'))
unit = lambda j: 'ops/s' if j.startswith('meta') else 'MiB/s' if '-1m-' in j else 'IOPS'

samples = {}
for r in runs:
    s = {'ok': False}
    p = os.path.join(out, r['result'])
    try:
        if r['job'].startswith('meta'):
            kv = dict(t.split('=') for t in open(p).read().split())
            s.update(value=float(kv['total']), create=float(kv['create']), stat=float(kv['stat']),
                     unlink=float(kv['unlink']), ios=float(kv['files']) * 3)
        else:
            t = open(p).read()
            j = json.loads(t[t.index('{'):])['jobs'][0]
            rw = [j['read'], j['write']]
            s['ios'] = sum(x['total_ios'] for x in rw)
            s['value'] = sum(x['bw_bytes'] for x in rw) / 2**20 if '-1m-' in r['job'] else sum(x['iops'] for x in rw)
            main = j['read'] if j['read']['total_ios'] >= j['write']['total_ios'] else j['write']
            lp = main['lat_ns'].get('percentile', {})
            s['p50'] = lp['50.000000'] / 1000 if '50.000000' in lp else None
        s['ok'] = r['rc'] == '0' and s['ios'] > 0
        if s['ok'] and r.get('cpu_ticks', '-') not in ('', '-'):
            s['cpu'] = float(r['cpu_ticks']) / clk * 1e6 / s['ios']
    except (OSError, ValueError, KeyError, IndexError):
        pass
    samples.setdefault((r['source'], r['job'], r['target']), []).append(s)

def med(key, field='value'):
    v = [s.get(field) for s in samples.get(key, []) if s['ok'] and s.get(field) is not None]
    return statistics.median(v) if v else None
def fmt(v, u):
    if v is None:
        return 'FAIL'
    return '%.1fk' % (v / 1000) if u != 'MiB/s' and v >= 1000 else '%.0f' % v
def ratio(a, b):
    return None if a is None or not b else a / b
def table(hdr, rows):
    w = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
    return '\n'.join('  '.join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r))
                     for r in [hdr] + rows)
def md(hdr, rows):
    return '\n'.join(['| ' + ' | '.join(map(str, hdr)) + ' |', '|' + '|'.join(['---'] + ['---:'] * (len(hdr) - 1)) + '|'] +
                     ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])

PAIRS = [('furing-uring', 'libfuse-uring', 'uring/lf-uring'), ('furing-uring', 'libfuse-legacy', 'uring/lf-legacy'),
         ('furing-legacy', 'libfuse-legacy', 'legacy/lf-legacy'), ('furing-uring', 'furing-uring-ring', 'uring/uring-ring'),
         ('furing-uring', 'furing-legacy', 'uring/legacy'), ('furing-uring', 'furing-uring-nopoll', 'uring/nopoll'),
         ('furing-uring-nopoll', 'libfuse-uring', 'nopoll/lf-uring'), ('furing-uring-pin', 'libfuse-uring', 'uring-pin/lf-uring'),
         ('furing-uring-float', 'libfuse-uring', 'uring-float/lf-uring'),
         ('furing-uring-always', 'libfuse-uring', 'uring-always/lf-uring'), ('furing-kpt', 'direct', 'kpt/direct'),
         ('libfuse-passthrough', 'direct', 'lf-pt/direct'), ('furing-kpt', 'libfuse-passthrough', 'kpt/lf-pt'),
         ('furing-kpt-noxattr', 'direct', 'kpt-noxattr/direct')]
text, mdl = [], ['# furing passthrough benchmark\n', '```\n' + '\n'.join('%s: %s' % kv for kv in meta.items()) + '\n```\n']
checks = []
for src in sources:
    ts = [t for t in targets if any((src, j, t) in samples for j in jobs)]
    js = [j for j in jobs if any((src, j, t) in samples for t in ts)]
    if not ts:
        continue
    title = '%s source (%s), %s s/job + %s s ramp, repeat %s' % (src, meta.get('source_' + src, '?'),
                                                              meta.get('runtime'), meta.get('ramp'), meta.get('repeat'))
    text += ['=' * len(title), title, '=' * len(title)]
    mdl.append('## ' + title + '\n')
    rows = []
    for j in js:
        base = med((src, j, 'direct'))
        row = [j, unit(j)]
        for t in ts:
            v = med((src, j, t))
            row.append('-' if (src, j, t) not in samples else fmt(v, unit(j)) +
                       ('' if t == 'direct' or v is None or not base else ' (%.2f)' % (v / base)))
        rows.append(row)
    hdr = ['job', 'unit'] + ts
    text += ['Throughput (x.xx = / direct); meta-4t: create+stat+unlink ops/s', table(hdr, rows), '']
    mdl += ['Throughput (x.xx = / direct); meta-4t: create+stat+unlink ops/s\n', md(hdr, rows) + '\n']
    pairs = [p for p in PAIRS if p[0] in ts and p[1] in ts]
    if pairs:
        rows = [[j] + ['-' if ratio(med((src, j, a)), med((src, j, b))) is None else
                       '%.2f' % ratio(med((src, j, a)), med((src, j, b))) for a, b, _ in pairs] for j in js]
        hdr = ['job'] + [p[2] for p in pairs]
        text += ['Ratios', table(hdr, rows), '']
        mdl += ['Ratios\n', md(hdr, rows) + '\n']
    metas = [j for j in js if j.startswith('meta')]
    if metas:
        rows = [[j + ' ' + f] + [fmt(med((src, j, t), f), 'ops/s') for t in ts] for j in metas
                for f in ('create', 'stat', 'unlink')]
        text += ['Metadata phases (ops/s)', table(['phase'] + ts, rows), '']
        mdl += ['Metadata phases (ops/s)\n', md(['phase'] + ts, rows) + '\n']
    dts = [t for t in ts if t != 'direct']
    rows = [[j] + ['-' if med((src, j, t), 'cpu') is None else '%.1f' % med((src, j, t), 'cpu') for t in dts] for j in js]
    rows += [[j + ' lat p50 us'] + ['-' if med((src, j, t), 'p50') is None else '%.1f' % med((src, j, t), 'p50')
                                    for t in dts] for j in js if 'qd1' in j]
    text += ['Daemon CPU us per I/O (per 1 MiB for 1M jobs, per operation for meta), qd1 latency', table(['job'] + dts, rows), '']
    mdl += ['Daemon CPU µs per I/O, qd1 latency p50\n', md(['job'] + dts, rows) + '\n']
    # the issue's targets
    for j in js:
        r = ratio(med((src, j, 'furing-uring')), med((src, j, 'libfuse-uring')))
        if src == 'tmpfs' and ('-4k-' in j or j.startswith('meta')) and r is not None:
            checks.append('%s %s: furing-uring/libfuse-uring %.2f (target >= 1.2): %s' % (src, j, r, 'met' if r >= 1.2 else 'MISSED'))
        if src == 'disk' and 'qd32' in j and r is not None:
            checks.append('%s %s: furing-uring/libfuse-uring %.2f (target >= 3): %s' % (src, j, r, 'met' if r >= 3 else 'MISSED'))
        k = ratio(med((src, j, 'furing-kpt')), med((src, j, 'direct')))
        if 'read' in j and k is not None:
            checks.append('%s %s: furing-kpt/direct %.2f (target >= 0.9): %s' % (src, j, k, 'met' if k >= 0.9 else 'MISSED'))
    for d in daemons:
        if d['source'] == src:
            text.append('  %-20s %s' % (d['target'], d['summary']))
    text.append('')
if checks:
    text += ['Targets'] + ['  ' + c for c in checks] + ['']
    mdl += ['## Targets\n'] + ['- ' + c for c in checks] + ['']
notes = os.path.join(out, 'notes.txt')
if os.path.exists(notes):
    nl = [l.strip() for l in open(notes) if l.strip()]
    if nl:
        text += ['Notes:'] + ['  ' + l for l in nl]
        mdl += ['## Notes\n'] + ['- ' + l.replace('NOTE: ', '', 1) for l in nl]
print('\n'.join(text))
open(os.path.join(out, 'results.md'), 'w').write('\n'.join(mdl) + '\n')
PYEOF
}

if [[ -n $REPORT_ONLY ]]; then
  [[ -f $REPORT_ONLY/runs.tsv ]] || die "$REPORT_ONLY: no runs.tsv"
  make_report "$REPORT_ONLY"
  exit 0
fi

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------
((EUID == 0)) || die "must run as root (mounts, /sys/module/fuse, kernel passthrough)"
pick() {   # pick ARG ALL...: the comma list ARG (default: all), checked
  local arg=$1; shift
  local -a all=("$@") out=()
  local x
  [[ -n $arg ]] || { printf '%s\n' "${all[@]}"; return; }
  for x in ${arg//,/ }; do
    local found=""
    for y in "${all[@]}"; do [[ ${y%%:*} == "$x" ]] && found=$y; done
    [[ -n $found ]] || die "unknown '$x' (known: ${all[*]%%:*})"
    out+=("$found")
  done
  printf '%s\n' "${out[@]}"
}
mapfile -t TARGETS < <(pick "$TARGETS_ARG" "${ALL_TARGETS[@]}")
mapfile -t SOURCES < <(pick "$SOURCES_ARG" "${ALL_SOURCES[@]}")
mapfile -t JOBS < <(pick "$JOBS_ARG" "${ALL_JOBS[@]}")
SIZE_BYTES=$(numfmt --from=iec "${SIZE%iB}" 2>/dev/null) || die "cannot parse --size '$SIZE'"
((SIZE_BYTES >= 16 * 1048576 && SIZE_BYTES % 1048576 == 0)) || die "--size must be a multiple of 1 MiB, >= 16 MiB"

OUT=${OUT:-$SCRIPT_DIR/results/passthrough-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/notes.txt"
say "furing passthrough bench: output in $OUT"
T_START=$(date +%s)

command -v fio >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fio >"$OUT/apt.log" 2>&1 || die "fio missing and could not be installed"; }
command -v cc >/dev/null || die "cc missing (apt-get install gcc)"

furing_binary
timeout 10 "$FURING" passthrough --help >/dev/null 2>&1 || die "$FURING has no passthrough subcommand"

LIBFUSE_DESC=""
if [[ " ${TARGETS[*]} " == *" libfuse-"* ]]; then
  if [[ ! -x $LIBFUSE_HP ]]; then
    note "no libfuse passthrough_hp at $LIBFUSE_HP (bench/README.md says how to build it): libfuse targets skipped"
    remove_target libfuse-legacy libfuse-uring libfuse-passthrough
  else
    lf_help=$(timeout 10 env LD_LIBRARY_PATH="$LIBFUSE_DIR/lib" "$LIBFUSE_HP" --help 2>&1 || true)
    if [[ $lf_help != *"-o io_uring "* ]]; then
      note "$LIBFUSE_HP has no -o io_uring: libfuse-uring skipped"
      remove_target libfuse-uring
    fi
    LIBFUSE_DESC="$(git -C "$LIBFUSE_DIR" log -1 --format='%h %cs' 2>/dev/null || echo 'revision unknown')"
  fi
fi
if [[ -w $ENABLE_URING_PARAM ]]; then
  echo Y >"$ENABLE_URING_PARAM"
else
  note "$ENABLE_URING_PARAM not writable: io_uring targets skipped"
  remove_target furing-uring furing-uring-nopoll furing-uring-always furing-uring-pin furing-uring-float furing-uring-ring furing-kpt furing-kpt-noxattr libfuse-uring
fi
((${#TARGETS[@]})) || die "no targets left"

WORK=$(mktemp -d /tmp/furing-ptbench.XXXXXX)
cc -O2 -Wall -pthread -o "$WORK/metabench" "$SCRIPT_DIR/metabench.c" || die "building bench/metabench.c failed"
declare -A DPID=() DMNT=() DLOG=()
SRCDIRS=()
FIO_PID=""
CLEANED=0

cleanup() {
  local rc=$? t d
  ((CLEANED)) && return 0
  CLEANED=1
  set +e
  trap '' INT TERM
  [[ -n $FIO_PID ]] && stop_pid "$FIO_PID"
  for t in "${!DPID[@]}"; do stop_pid "${DPID[$t]}"; done
  for t in "${!DMNT[@]}"; do force_umount "${DMNT[$t]}"; done
  for d in "${SRCDIRS[@]}"; do rm -rf "$d"; done
  local left
  left=$(awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  for d in $left; do umount -l "$d" 2>/dev/null; done
  left=$(awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo)
  if [[ -n $left ]]; then printf 'ERROR: mounts left behind: %s\n' "$left" >&2; rc=1; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say ""; say "interrupted, cleaning up"; exit 130' INT TERM

# What each target runs: furing with its defaults (--cache=auto) unless the
# target says otherwise; furing-uring-always has passthrough_hp's caching
# (entry/attribute timeouts of a day, writeback cache).
daemon_cmd() {   # daemon_cmd TARGET SRC MNT
  local f="$FURING passthrough ${FURING_EXTRA_ARGS:-}" lf="env LD_LIBRARY_PATH=$LIBFUSE_DIR/lib FUSE_INIT_STATUS=1 $LIBFUSE_HP --foreground ${BENCH_LIBFUSE_ARGS:-}"
  case $1 in
    furing-legacy)       echo $f --io-uring=off "$2" "$3" ;;
    furing-uring)        echo $f --io-uring=on "$2" "$3" ;;
    furing-uring-nopoll) echo $f --io-uring=on --busy-poll=0 "$2" "$3" ;;
    furing-uring-always) echo $f --io-uring=on --cache=always "$2" "$3" ;;
    furing-uring-pin)    echo $f --io-uring=on --pin "$2" "$3" ;;
    furing-uring-float)  echo $f --io-uring=on --pin=off "$2" "$3" ;;
    furing-uring-ring)   echo $f --io-uring=on --backend-io=ring "$2" "$3" ;;
    furing-kpt)          echo $f --io-uring=on --kernel-passthrough "$2" "$3" ;;
    furing-kpt-noxattr)  echo $f --io-uring=on --kernel-passthrough --no-xattr "$2" "$3" ;;
    libfuse-legacy)      echo $lf --nopassthrough "$2" "$3" ;;
    libfuse-uring)       echo $lf --nopassthrough -o io_uring "$2" "$3" ;;
    libfuse-passthrough) echo $lf "$2" "$3" ;;
  esac
}

start_daemon() {   # start_daemon TARGET SRC TAG
  local t=$1 src=$2 tag=$3 mnt=$WORK/$3-$1.mnt log=$OUT/$3-$1.log pid i
  local -a cmd
  mkdir -p "$mnt"
  # shellcheck disable=SC2207
  cmd=($(daemon_cmd "$t" "$src" "$mnt"))
  printf '%s\n' "${cmd[*]}" >>"$log.cmd"
  setsid "${cmd[@]}" </dev/null >>"$log" 2>&1 &
  pid=$!
  DPID[$t]=$pid; DMNT[$t]=$mnt; DLOG[$t]=$log
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ $(mount_fstype "$mnt") == fuse* ]] && break
    proc_alive "$pid" || { tail -n 5 "$log"; die "$t exited before mounting (see $log)"; }
    sleep 0.1
  done
  [[ $(mount_fstype "$mnt") == fuse* ]] || { tail -n 5 "$log"; die "$t did not mount within ${START_TIMEOUT} s"; }
  say "  $t up: pid $pid"
}

cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }; s=${s##*) }; set -- $s; echo $((${12} + ${13})); }

stop_daemon() {   # stop_daemon TARGET TAG: records what the daemon says about itself
  local t=$1 tag=$2 summary
  stop_pid "${DPID[$t]}"
  force_umount "${DMNT[$t]}"
  case $t in
    furing-*) summary=$(grep 'furing: summary' "${DLOG[$t]}" | tail -n 1 | cut -c1-160 || true) ;;
    libfuse-*) summary=$(grep -o 'FUSE_INIT: io_uring=[^ ]*' "${DLOG[$t]}" | tail -n 1 || true)
               [[ $t != libfuse-uring || $summary == *io_uring=on* ]] || note "$tag/$t: libfuse did not report io_uring=on" ;;
  esac
  printf '%s\t%s\t%s\n' "$tag" "$t" "${summary:--}" >>"$OUT/daemons.tsv"
  unset "DPID[$t]" "DMNT[$t]"
}

# run_job TAG JOBSPEC TARGET ROOT REP
run_job() {
  local tag=$1 spec=$2 t=$3 root=$4 rep=$5 name kind rw bs qd nj res rc=0 pid=${DPID[$3]:-} c1=-1 c2=-1 ticks=- sampler=
  IFS=: read -r name kind rw bs qd nj <<<"$spec"
  mkdir -p "$OUT/r/$tag"
  res=r/$tag/$name.$t.r$rep
  if [[ $kind == fio ]]; then
    # the daemon's CPU time when fio's ramp ends, and when fio exits
    if [[ -n $pid ]]; then ( sleep "$RAMP"; cpu_ticks "$pid" >"$WORK/cpu1" ) & sampler=$!; fi
    fio --name="$name" --filename="$root/data.img" --ioengine=libaio --direct=1 --rw="$rw" --bs="$bs" \
        --iodepth="$qd" --numjobs="$nj" --group_reporting --time_based --runtime="$RUNTIME" \
        --ramp_time="$RAMP" --norandommap --randrepeat=0 --lat_percentiles=1 --output-format=json \
        --output="$OUT/$res.json" </dev/null >"$OUT/$res.stderr" 2>&1 &
    FIO_PID=$!
    wait "$FIO_PID" || rc=$?
    FIO_PID=""
    res=$res.json
    if [[ -n $pid ]]; then
      c2=$(cpu_ticks "$pid")
      wait "$sampler" 2>/dev/null || true
      c1=$(cat "$WORK/cpu1" 2>/dev/null || echo -1)
    fi
  else
    # threads = qd field, files per thread = nj field
    if [[ -n $pid ]]; then c1=$(cpu_ticks "$pid"); fi
    "$WORK/metabench" "$root/meta-$t" "$qd" "$nj" "$RUNTIME" >"$OUT/$res" 2>"$OUT/$res.stderr" || rc=$?
    c2=-1
    if [[ -n $pid ]]; then c2=$(cpu_ticks "$pid"); fi
  fi
  if [[ -n $pid ]] && ((c1 >= 0 && c2 >= c1)); then ticks=$((c2 - c1)); fi
  [[ -s $OUT/$res.stderr ]] || rm -f "$OUT/$res.stderr"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$name" "$t" "$rep" "$res" "$rc" "$ticks" >>"$OUT/runs.tsv"
  sync
  LAST_RC=$rc LAST_RES=$res
}

quick_val() {   # one line for the progress output
  "$PY" - "$OUT/$1" <<'PYEOF' 2>/dev/null || echo "?"
import json, sys
p = sys.argv[1]
t = open(p).read()
if p.endswith('.json'):
    j = json.loads(t[t.index('{'):])['jobs'][0]
    io = j['read']['iops'] + j['write']['iops']; bw = (j['read']['bw_bytes'] + j['write']['bw_bytes']) / 2**20
    print('%.1fk IOPS, %.0f MiB/s' % (io / 1000, bw))
else:
    print(t.strip())
PYEOF
}

# ---------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
{
  printf 'key\tvalue\n'
  printf 'date\t%s\n' "$(date -Is)"
  printf 'host\t%s, kernel %s, %s CPUs\n' "$(hostname)" "$(uname -r)" "$(nproc)"
  printf 'load_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'fio\t%s\n' "$(fio --version)"
  printf 'furing\t%s (%s)\n' "$FURING" "$(timeout 10 "$FURING" --version 2>&1 | head -1)"
  [[ -n $LIBFUSE_DESC ]] && printf 'libfuse\tpassthrough_hp %s (%s)\n' "$LIBFUSE_HP" "$LIBFUSE_DESC"
  printf 'size\t%s MiB\n' "$((SIZE_BYTES / 1048576))"
  printf 'runtime\t%s\nramp\t%s\nrepeat\t%s\n' "$RUNTIME" "$RAMP" "$REPEAT"
  printf 'targets\t%s\n' "${TARGETS[*]}"
  printf 'jobs\t%s\n' "$(printf '%s ' "${JOBS[@]%%:*}")"
  printf 'sources\t%s\n' "${SOURCES[*]}"
  printf 'clk_tck\t%s\n' "$CLK_TCK"
  for s in "${SOURCES[@]}"; do
    printf 'source_%s\t%s\n' "$s" "$([[ $s == tmpfs ]] && echo "$TMPFS_DIR" || echo "$DISK_DIR")/furing-ptbench-$$/src"
  done
} >"$OUT/meta.tsv"
printf 'source\tjob\ttarget\trep\tresult\trc\tcpu_ticks\n' >"$OUT/runs.tsv"
printf 'source\ttarget\tsummary\n' >"$OUT/daemons.tsv"

say "targets: ${TARGETS[*]}"
say "jobs:    ${JOBS[*]%%:*}"
say "sources: ${SOURCES[*]}, ${RUNTIME} s per job + ${RAMP} s ramp, repeat $REPEAT; load $(cut -d' ' -f1-3 /proc/loadavg)"
for tag in "${SOURCES[@]}"; do
  base=$([[ $tag == tmpfs ]] && echo "$TMPFS_DIR" || echo "$DISK_DIR")/furing-ptbench-$$
  src=$base/src
  SRCDIRS+=("$base")
  mkdir -p "$src"
  say ""
  say "== $tag source $src: data.img ($SIZE, random data)"
  fallocate -l "$SIZE_BYTES" "$src/data.img"
  dd if=/dev/urandom of="$src/data.img" bs=4M count=$((SIZE_BYTES / 4194304)) conv=notrunc,fsync status=none
  TS=()
  for t in "${TARGETS[@]}"; do
    TS+=("$t")
    mkdir -p "$src/meta-$t"
  done
  declare -A ROOT=()
  for t in "${TS[@]}"; do
    if [[ $t == direct ]]; then ROOT[$t]=$src; else start_daemon "$t" "$src" "$tag"; ROOT[$t]=${DMNT[$t]}; fi
  done
  NT=${#TS[@]}
  for spec in "${JOBS[@]}"; do
    name=${spec%%:*}
    for ((rep = 1; rep <= REPEAT; rep++)); do
      for ((k = 0; k < NT; k++)); do
        t=${TS[$(((k + rep - 1) % NT))]}
        printf '  %-20s %-20s r%d ... ' "$name" "$t" "$rep"
        run_job "$tag" "$spec" "$t" "${ROOT[$t]}" "$rep"
        if [[ $LAST_RC == 0 ]]; then quick_val "$LAST_RES"; else say "FAILED (rc=$LAST_RC, see $OUT/$LAST_RES*)"; fi
      done
    done
  done
  for t in "${TS[@]}"; do [[ $t == direct ]] || stop_daemon "$t" "$tag"; done
  rm -rf "$base"
  unset ROOT
done
printf 'load_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.tsv"
printf 'wall_time_s\t%s\n' "$(($(date +%s) - T_START))" >>"$OUT/meta.tsv"
say ""
make_report "$OUT" | tee "$OUT/report.txt"
say "results in $OUT (report.txt, results.md, runs.tsv, r/)"
