#!/usr/bin/env bash
# bench/linux73.sh - furing's Linux 7.3 buffer modes (per-entry buffers, buffer
# pools, zero-copy) against the image file itself and libfuse's passthrough_hp,
# with fio, in one Linux 7.3 VM (scripts/vm.sh, QEMU TCG).
#
#   sudo bench/linux73.sh [--runtime S] [--size SIZE] [--rounds N] [--pin LIST]
#                         [--jobs LIST] [--targets LIST] [--out DIR]
#
# --rounds: every job runs N times on every target (default 3), interleaved,
# and the tables give the median: one 3 s run under TCG swings by up to 2x.
# --pin: furing's --pin modes to run every furing target with, comma-separated
# (default auto, furing's default; with several, each target gets /MODE).
# --jobs, --targets: run only these (comma-separated names from the tables,
# e.g. --jobs randread-4k-qd1 --targets file,per-entry,pools --rounds 15).
# Boots the VM once; inside it one image on tmpfs (/dev/shm) is served by every
# target at once and the jobs run interleaved (for each job, every target in
# turn). Prints a summary table; the guest's console, per-run rows and the
# daemons' logs go to DIR (default bench/results/linux73-<timestamp>, git-ignored).
# Needs root, fio, qemu-system-x86 and virtiofsd (scripts/setup.sh), and a
# built build/furing (meson setup build && ninja -C build).
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
RUNTIME=3
RAMP=1
SIZE=256M
OUT=""
GUEST=0
VM_TIMEOUT=${BENCH_VM_TIMEOUT:-}
FURING_BIN=${FURING_BIN:-$REPO/build/furing}

# name:rw:bs:iodepth:ioengine
JOBS=(
  "randread-4k-qd1:randread:4k:1:psync"
  "randread-4k-qd32:randread:4k:32:io_uring"
  "randwrite-4k-qd32:randwrite:4k:32:io_uring"
  "read-1m-qd8:read:1M:8:io_uring"
  "write-1m-qd8:write:1M:8:io_uring"
)
# name|furing export flags (empty: the file itself; libfuse: passthrough_hp)
TARGETS=(
  "file|"
  "per-entry|--writable --io-uring=on --buffer-pool=off --zero-copy=off"
  "pools|--writable --io-uring=on --buffer-pool=on --zero-copy=off"
  "zero-copy|--writable --io-uring=on --buffer-pool=on --zero-copy=on"
  "libfuse|"
)
PINS=auto
ROUNDS=3
ONLY_JOBS=""
ONLY_TARGETS=""

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --runtime) RUNTIME=${2:?}; shift ;;
    --runtime=*) RUNTIME=${1#*=} ;;
    --size) SIZE=${2:?}; shift ;;
    --size=*) SIZE=${1#*=} ;;
    --rounds) ROUNDS=${2:?}; shift ;;
    --rounds=*) ROUNDS=${1#*=} ;;
    --pin) PINS=${2:?}; shift ;;
    --pin=*) PINS=${1#*=} ;;
    --jobs) ONLY_JOBS=${2?}; shift ;;
    --jobs=*) ONLY_JOBS=${1#*=} ;;
    --targets) ONLY_TARGETS=${2?}; shift ;;
    --targets=*) ONLY_TARGETS=${1#*=} ;;
    --out) OUT=${2:?}; shift ;;
    --out=*) OUT=${1#*=} ;;
    --guest) GUEST=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "linux73: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
[[ $RUNTIME =~ ^[0-9]+$ && $RUNTIME -ge 1 ]] || { echo "linux73: --runtime wants whole seconds >= 1" >&2; exit 2; }
[[ $SIZE =~ ^[0-9]+[KMG]?$ ]] || { echo "linux73: --size wants e.g. 256M or 1G" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || { echo "linux73: --rounds wants a whole number >= 1" >&2; exit 2; }
[[ $PINS =~ ^(auto|off|on)(,(auto|off|on))*$ ]] || { echo "linux73: --pin wants a list of auto, off, on (e.g. auto,off)" >&2; exit 2; }
IFS=, read -ra PIN_LIST <<<"$PINS"
# Keeps the entries of array $1 whose name (the text before $3) is in the
# comma list $2; an unknown name is an error.
only() {
  local -n arr=$1
  local want=$2 sep=$3 n e kept=()
  [[ -n $want ]] || return 0
  IFS=, read -ra names <<<"$want"
  for n in "${names[@]}"; do
    local found=0
    for e in "${arr[@]}"; do [[ ${e%%"$sep"*} == "$n" ]] && { kept+=("$e"); found=1; }; done
    ((found)) || { echo "linux73: no $1 entry named '$n' (have: $(for e in "${arr[@]}"; do printf '%s ' "${e%%"$sep"*}"; done))" >&2; exit 2; }
  done
  arr=("${kept[@]}")
}
only JOBS "$ONLY_JOBS" :
only TARGETS "$ONLY_TARGETS" '|'
# A round of the default five targets took about 4 min under TCG (fio and
# python start slowly there): allow 6 min per round and target set, plus boot.
[[ -n $VM_TIMEOUT ]] || VM_TIMEOUT=$((300 + ROUNDS * ${#PIN_LIST[@]} * (RUNTIME + RAMP) * 90))
# (a bound for the default five jobs and targets: a subset takes less)
# Every furing target once per pin mode, named NAME/MODE when there are several.
expand_targets() {
  local spec name flags pin out=()
  for spec in "${TARGETS[@]}"; do
    name=${spec%%|*} flags=${spec#*|}
    if [[ -z $flags ]]; then out+=("$spec"); continue; fi
    for pin in "${PIN_LIST[@]}"; do
      if ((${#PIN_LIST[@]} > 1)); then out+=("$name/$pin|$flags --pin=$pin"); else out+=("$name|$flags --pin=$pin"); fi
    done
  done
  TARGETS=("${out[@]}")
}
expand_targets

# ---------------------------------------------------------------------------
# Guest side: runs as PID 1's command inside the VM. The tree is read-only
# here, so results go to the console as tagged lines ("@73 ...") that the host
# picks out of it.
# ---------------------------------------------------------------------------
guest() {
  # Globals: the EXIT trap runs after this function has returned.
  dir=/dev/shm/furing-b73 mdir=/tmp/furing-b73
  img=$dir/image.img
  declare -gA PID=() LOG=() FILE=() MNT=()
  NAMES=()

  emit() { local IFS=$'\t'; printf '@73\t%s\n' "$*"; }
  note() { printf 'NOTE: %s\n' "$*"; emit note "$*"; }

  mounted() { [[ -n $(mount_fstype "$1") ]]; }
  # Each thread's allowed CPUs (TID:LIST ...): whether --pin=auto had bound
  # the workers when the job ended (they stay as they are until served again).
  thread_cpus() {
    local t out=()
    for t in /proc/"$1"/task/*; do
      out+=("${t##*/}:$(awk '/^Cpus_allowed_list:/ { print $2 }' "$t/status" 2>/dev/null)")
    done
    echo "${out[*]}"
  }
  stop_one() { stop_pid "$1"; force_umount "$2"; }
  cleanup() {
    local n
    for n in "${NAMES[@]}"; do
      [[ -z ${MNT[$n]:-} ]] || stop_one "${PID[$n]:-}" "${MNT[$n]}"
    done
    rm -rf "$dir" "$mdir"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  emit meta kernel "$(uname -r)"
  emit meta nproc "$(nproc)"
  emit meta runtime "$RUNTIME"
  emit meta rounds "$ROUNDS"
  emit meta size "$SIZE"
  emit meta enable_uring "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo '?')"
  mkdir -p "$dir" "$mdir"
  fallocate -l "$SIZE" "$img"
  local mib=$(( $(stat -c %s "$img") / 1048576 ))
  dd if=/dev/urandom of="$img" bs=1M count="$mib" conv=notrunc status=none
  echo "guest: Linux $(uname -r), $(nproc) CPUs, image $img ($mib MiB, random data)"

  # Start every target's daemon; each gets its own mountpoint.
  local spec name flags mnt i
  for spec in "${TARGETS[@]}"; do
    name=${spec%%|*} flags=${spec#*|}
    case $name in
      file) NAMES+=("$name"); FILE[$name]=$img ;;
      libfuse)
        local hp=$LIBFUSE_DIR/example/passthrough_hp
        if [[ ! -x $hp ]]; then
          note "libfuse skipped: no passthrough_hp in $LIBFUSE_DIR (BENCH_LIBFUSE_DIR)"; continue
        fi
        mnt=$mdir/libfuse; mkdir -p "$mnt"
        LOG[$name]=$mdir/$name.log
        LD_LIBRARY_PATH=$LIBFUSE_DIR/lib "$hp" --foreground --nopassthrough -o io_uring "$dir" "$mnt" \
          >"${LOG[$name]}" 2>&1 &
        PID[$name]=$! FILE[$name]=$mnt/image.img MNT[$name]=$mnt NAMES+=("$name")
        for ((i = 0; i < 150; i++)); do mounted "$mnt" && break; proc_alive "${PID[$name]}" || break; sleep 0.1; done
        if ! mounted "$mnt"; then
          note "libfuse skipped: passthrough_hp did not mount within 15 s: $(tail -n 1 "${LOG[$name]}")"
          stop_one "${PID[$name]}" "$mnt"; unset "PID[$name]" "MNT[$name]"; NAMES=("${NAMES[@]:0:${#NAMES[@]}-1}")
        fi ;;
      *)
        mnt=$mdir/${name//\//-}.mnt; : >"$mnt"
        LOG[$name]=$mdir/${name//\//-}.log
        # shellcheck disable=SC2086
        "$FURING_BIN" export $flags "$img" "$mnt" >"${LOG[$name]}" 2>&1 &
        PID[$name]=$! FILE[$name]=$mnt MNT[$name]=$mnt NAMES+=("$name")
        for ((i = 0; i < 150; i++)); do
          grep -q 'furing: serving' "${LOG[$name]}" && mounted "$mnt" && break
          proc_alive "${PID[$name]}" || break; sleep 0.1
        done
        if ! mounted "$mnt"; then
          note "$name skipped: furing did not serve within 15 s: $(tail -n 2 "${LOG[$name]}" | tr '\n' ' ')"
          stop_one "${PID[$name]}" "$mnt"; unset "PID[$name]" "MNT[$name]"; NAMES=("${NAMES[@]:0:${#NAMES[@]}-1}")
          continue
        fi
        emit buffers "$name" "$(grep -m1 -oE '(per-entry buffers|buffer pools): [^;]*(; zero-copy on [0-9]+ queues?)?' "${LOG[$name]}" || echo '?')" ;;
    esac
  done

  # Memory before the jobs: the daemon's own baseline (per-entry buffers are
  # touched on use, pools when registered).
  for name in "${NAMES[@]}"; do
    [[ -n ${PID[$name]:-} ]] || continue
    emit mem0 "$name" "$(awk '/^VmRSS:/ { print $2 }' "/proc/${PID[$name]}/status")"
  done

  # Rounds x jobs x targets, interleaved: a slow spell of the host hits
  # every target a little rather than one target a lot.
  local job jn rw bs qd eng out rc round
  for ((round = 1; round <= ROUNDS; round++)); do
  for job in "${JOBS[@]}"; do
    IFS=: read -r jn rw bs qd eng <<<"$job"
    for name in "${NAMES[@]}"; do
      out=$mdir/$jn.${name//\//-}.json
      rc=0
      timeout -k 5 $((RUNTIME + RAMP + 60)) fio --name="$jn" --filename="${FILE[$name]}" --rw="$rw" --bs="$bs" \
        --iodepth="$qd" --ioengine="$eng" --direct=1 --numjobs=1 --size="$SIZE" --time_based \
        --runtime="$RUNTIME" --ramp_time="$RAMP" --norandommap --randrepeat=0 --group_reporting \
        --output-format=json --output="$out" >"$mdir/fio.err" 2>&1 || rc=$?
      if ((rc)); then
        note "$jn on $name: fio failed (status $rc): $(tail -n 2 "$mdir/fio.err" | tr '\n' ' ')"
        emit result "$name" "$jn" fail fail 0 "$round"; continue
      fi
      python3 - "$out" "$name" "$jn" "$round" <<'PY' || emit result "$name" "$jn" fail fail 0 "$round"
import json, sys
d = json.load(open(sys.argv[1]))
j = d['jobs'][0]
iops = j['read']['iops'] + j['write']['iops']
bw = (j['read']['bw_bytes'] + j['write']['bw_bytes']) / 1048576.0
err = j.get('error', 0)
print('@73\tresult\t%s\t%s\t%.0f\t%.1f\t%s\t%s' % (sys.argv[2], sys.argv[3], iops, bw, err, sys.argv[4]))
PY
      [[ -z ${PID[$name]:-} || $name == libfuse ]] || emit cpus "$name" "$jn" "$(thread_cpus "${PID[$name]}")"
      printf '  round %d %-18s %-14s done\n' "$round" "$jn" "$name"
    done
  done
  done

  # Memory after the jobs, then stop and keep the daemons' logs.
  for name in "${NAMES[@]}"; do
    [[ -n ${PID[$name]:-} ]] || continue
    emit mem "$name" "$(awk '/^VmRSS:/ { print $2 }' "/proc/${PID[$name]}/status")" \
      "$(awk '/^VmHWM:/ { print $2 }' "/proc/${PID[$name]}/status")"
  done
  for name in "${NAMES[@]}"; do
    [[ -n ${PID[$name]:-} ]] || continue
    stop_one "${PID[$name]}" "${MNT[$name]}"
    unset "PID[$name]" "MNT[$name]"
    while IFS= read -r line; do emit log "$name" "$line"; done <"${LOG[$name]}"
  done
  echo "guest: done"
}

if ((GUEST)); then
  guest
  exit 0
fi

# ---------------------------------------------------------------------------
# Host side.
# ---------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || { echo "linux73: run as root (scripts/vm.sh needs it)" >&2; exit 2; }
command -v fio >/dev/null || { echo "linux73: fio is missing (apt-get install fio)" >&2; exit 2; }
[[ -x $FURING_BIN ]] || { echo "linux73: no $FURING_BIN: build first (meson setup build && ninja -C build)" >&2; exit 2; }
[[ -n $OUT ]] || OUT=$REPO/bench/results/linux73-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# vm.sh stops QEMU and virtiofsd on its own exit (its trap; its --timeout
# bounds the whole guest run); Ctrl-C reaches it in the same process group.
trap 'exit 130' INT TERM

echo "linux73: booting Linux 7.3 under scripts/vm.sh (TCG); ${#JOBS[@]} jobs x up to ${#TARGETS[@]} targets," \
  "${RUNTIME} s + ${RAMP} s ramp each; console in $OUT/console.log"
{
  echo "commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "start $(date -u +%FT%TZ)"
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "args --runtime $RUNTIME --size $SIZE --rounds $ROUNDS --pin $PINS --jobs '$ONLY_JOBS' --targets '$ONLY_TARGETS'"
} >"$OUT/host.txt"
# vm.sh passes only FURING_* variables into the guest: the rest go by env.
set +e
"$REPO/scripts/vm.sh" --smp=2 --mem=2048 --timeout="$VM_TIMEOUT" -- \
  env BENCH_LIBFUSE_DIR="$LIBFUSE_DIR" FURING_BIN="$FURING_BIN" \
  bench/linux73.sh --guest --runtime "$RUNTIME" --size "$SIZE" --rounds "$ROUNDS" --pin "$PINS" \
  --jobs "$ONLY_JOBS" --targets "$ONLY_TARGETS" 2>&1 |
  sed -u 's/\r$//' | tee "$OUT/console.log" | grep --line-buffered -v $'^@73\t'
vm_rc=${PIPESTATUS[0]}
set -e
echo "end $(date -u +%FT%TZ) vm_status $vm_rc" >>"$OUT/host.txt"
((vm_rc == 0)) || echo "linux73: the VM run ended with status $vm_rc (partial results follow)" >&2

grep $'^@73\t' "$OUT/console.log" | cut -f2- >"$OUT/rows.tsv" || true
python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import collections, os, sys
out = sys.argv[1]
res, mem, mem0, buf, meta, notes, cpus, order = {}, {}, {}, {}, {}, [], {}, []
for line in open(os.path.join(out, 'rows.tsv')):
    f = line.rstrip('\n').split('\t')
    if f[0] == 'result' and len(f) >= 6:
        res.setdefault((f[1], f[2]), []).append(f[3:5])
        if f[1] not in order:
            order.append(f[1])
    elif f[0] == 'mem' and len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
        mem[f[1]] = (int(f[2]), int(f[3]))
    elif f[0] == 'mem0' and len(f) >= 3 and f[2].isdigit():
        mem0[f[1]] = int(f[2])
    elif f[0] == 'buffers' and len(f) >= 3:
        buf[f[1]] = f[2]
    elif f[0] == 'meta' and len(f) >= 3:
        meta[f[1]] = f[2]
    elif f[0] == 'note':
        notes.append(f[1])
    elif f[0] == 'cpus' and len(f) >= 4:
        cpus[(f[1], f[2])] = f[3].split()
targets = order
jobs = [j for j in ['randread-4k-qd1', 'randread-4k-qd32', 'randwrite-4k-qd32', 'read-1m-qd8', 'write-1m-qd8']
        if any((t, j) in res for t in targets)]
# Pin modes in the run: '' when the targets have plain names, else '/auto', '/off'...
suffixes = sorted({t[t.index('/'):] for t in targets if '/' in t}) or ['']

def runs(t, j):
    """Every round's figure (MiB/s for 1m jobs, IOPS otherwise), failures left out."""
    return [float(r[1]) if '1m' in j else float(r[0]) for r in res.get((t, j), []) if r[0] != 'fail']

def val(t, j):
    v = sorted(runs(t, j))
    if not v or len(v) < len(res.get((t, j), [])):
        return None  # a failed round fails the cell
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

def fmt(v, j):
    if v is None:
        return 'fail'
    if '1m' in j:
        return '%.0f' % v
    return '%.1fk' % (v / 1000) if v >= 1000 else '%.0f' % v

print('Linux %s, %s vCPUs (TCG), image %s on tmpfs, %s s per job, median of %s rounds; IOPS (MiB/s for 1m), '
      'ratio to the file in brackets' % (meta.get('kernel', '?'), meta.get('nproc', '?'), meta.get('size', '?'),
                                         meta.get('runtime', '?'), meta.get('rounds', '1')))
print()
print('| job | ' + ' | '.join(targets) + ' |')
print('|---|' + '---:|' * len(targets))
for j in jobs:
    cells = []
    base = val('file', j)
    for t in targets:
        v = val(t, j)
        c = fmt(v, j)
        if t != 'file' and v is not None and base:
            c += ' (%.2f)' % (v / base)
        cells.append(c)
    print('| %s | %s |' % (j, ' | '.join(cells)))
print()
if meta.get('rounds', '1') != '1':
    print('Every round (in run order):')
    print()
    print('| job | ' + ' | '.join(targets) + ' |')
    print('|---|' + '---:|' * len(targets))
    for j in jobs:
        print('| %s | %s |' % (j, ' | '.join(' / '.join(fmt(v, j) for v in runs(t, j)) or 'fail' for t in targets)))
    print()
print('| target | buffer memory (serving line) | VmRSS before the jobs | VmRSS after | VmHWM |')
print('|---|---|---:|---:|---:|')
for t in targets:
    if t == 'file':
        continue
    m = mem.get(t)
    print('| %s | %s | %s | %s | %s |' % (t, buf.get(t, '-'), '%.1f MiB' % (mem0[t] / 1024) if t in mem0 else '?',
                                    '%.1f MiB' % (m[0] / 1024) if m else '?',
                                    '%.1f MiB' % (m[1] / 1024) if m else '?'))
print()
if cpus:
    # Threads' allowed CPUs when each job ended, counted: "0-1 x3, 0, 1" means
    # three threads free and two bound to one CPU each.
    def where(lst):
        c = collections.Counter(x.split(':', 1)[1] for x in lst if x.split(':', 1)[1])
        return ', '.join(k if n == 1 else '%s x%d' % (k, n) for k, n in sorted(c.items()))
    furing = [t for t in targets if t not in ('file', 'libfuse')]
    print('Threads\' allowed CPUs when the job ended (last round) (a worker bound by --pin=auto shows one CPU):')
    print()
    print('| job | ' + ' | '.join(furing) + ' |')
    print('|---|' + '---|' * len(furing))
    for j in jobs:
        print('| %s | %s |' % (j, ' | '.join(where(cpus.get((t, j), [])) or '?' for t in furing)))
    print()

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

def paired(a, b, j):
    """The median of the per-round ratios a/b: the two ran back to back in each
    round, so a slow spell of the host moves both (None if a round is missing)."""
    ra, rb = runs(a, j), runs(b, j)
    if not ra or len(ra) != len(rb) or 0 in rb:
        return None
    v = sorted(x / y for x, y in zip(ra, rb))
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

def verdict(ok):
    return '**met**' if ok else '**missed**'

import re
def buf_mib(t):
    m = re.search(r'= ([0-9.]+) MiB', buf.get(t, ''))
    return float(m.group(1)) if m else None

print('Targets:')
for sfx in suffixes:
    pe, po, zc = 'per-entry' + sfx, 'pools' + sfx, 'zero-copy' + sfx
    if sfx:
        print('- with --pin=%s:' % sfx[1:])
    ind = '  ' if sfx else ''
    for j in ['read-1m-qd8', 'write-1m-qd8']:
        r = ratio(val(zc, j), val('file', j))
        print(ind + '- zero-copy %s >= 0.9x the file: %s' % (j, 'n/a' if r is None else '%.2fx, %s' % (r, verdict(r >= 0.9))))
    bp, be = buf_mib(po), buf_mib(pe)
    r = ratio(bp, be)
    print(ind + '- pools <= 1/4 per-entry buffer memory (serving lines): %s' % ('n/a' if r is None else '%.1f / %.1f MiB = %.2f, %s' % (bp, be, r, verdict(r <= 0.25 + 1e-9))))
    if po in mem and pe in mem:
        r = mem[po][0] / mem[pe][0]
        print(ind + '- pools <= 1/4 per-entry RSS after the jobs: %.1f / %.1f MiB = %.2f, %s' % (mem[po][0] / 1024, mem[pe][0] / 1024, r, verdict(r <= 0.25)))
    for j in ['randread-4k-qd1', 'randread-4k-qd32', 'randwrite-4k-qd32']:
        r = ratio(val(po, j), val(pe, j))
        pr = paired(po, pe, j)
        print(ind + '- pools %s >= 0.95x per-entry IOPS: %s%s' % (j, 'n/a' if r is None else '%.2fx, %s' % (r, verdict(r >= 0.95)),
              '' if pr is None else ' (median of per-round ratios %.2fx)' % pr))
    for j in ['randread-4k-qd32', 'randwrite-4k-qd32']:
        for t in [pe, po, zc]:
            r = ratio(val(t, j), val('libfuse', j))
            if r is not None:
                print(ind + '- furing %s %s >= 1.5x libfuse: %.2fx, %s' % (t, j, r, verdict(r >= 1.5)))
        if val('libfuse', j) is None:
            print(ind + '- furing >= 1.5x libfuse at %s: n/a (no libfuse run)' % j)
for n in notes:
    print('NOTE: ' + n)
PY
exit "$vm_rc"
