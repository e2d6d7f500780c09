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
  local out=$1
  "$PY" - "$out" <<'PYEOF'
import json, os, re, statistics, sys

out = sys.argv[1]
def rd_tsv(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        hdr = f.readline().rstrip('\n').split('\t')
        for line in f:
            if line.strip():
                rows.append(dict(zip(hdr, line.rstrip('\n').split('\t'))))
    return rows

meta = dict((r['key'], r['value']) for r in rd_tsv(os.path.join(out, 'meta.tsv')))
runs = rd_tsv(os.path.join(out, 'runs.tsv'))
daemons = rd_tsv(os.path.join(out, 'daemons.tsv'))
if not runs:
    sys.exit('no runs recorded in %s' % out)

targets_order = meta.get('targets', '').split()
jobs_order = meta.get('jobs', '').split()
images_order = meta.get('images', '').split()
clk = float(meta.get('clk_tck', '100'))
DAEMON = lambda t: t.startswith('qemu') or t.startswith('furing') or t.startswith('libfuse')
def unit_of(job):            # 1M jobs report MiB/s, the rest IOPS
    return 'MiB/s' if '-1m-' in job else 'IOPS'

# --- collect per (image, job, target) a list of samples --------------------
samples = {}
NA = set()   # (image, job, target) not applicable: a write job on a read-only target
for r in runs:
    key = (r['image'], r['job'], r['target'])
    if r['rc'] == 'na':
        NA.add(key)
        continue
    s = {'rc': int(r['rc']), 'json': r['json']}
    try:
        with open(os.path.join(out, r['json'])) as f:
            txt = f.read()
        # fio may print warnings before the JSON object
        d = json.loads(txt[txt.index('{'):])
        j = d['jobs'][0]
        rdw = [j['read'], j['write']]
        s['iops'] = sum(x['iops'] for x in rdw)
        s['mib'] = sum(x['bw_bytes'] for x in rdw) / 2**20
        s['ios'] = sum(x['total_ios'] for x in rdw)
        s['err'] = j.get('error', 0)
        main = j['read'] if j['read']['total_ios'] >= j['write']['total_ios'] else j['write']
        pct = main['clat_ns'].get('percentile', {})
        s['p50'] = pct.get('50.000000', 0) / 1000.0
        s['p99'] = pct.get('99.000000', 0) / 1000.0
        lpct = main['lat_ns'].get('percentile', {})   # needs fio --lat_percentiles=1
        s['lp50'] = lpct['50.000000'] / 1000.0 if '50.000000' in lpct else None
        s['lp99'] = lpct['99.000000'] / 1000.0 if '99.000000' in lpct else None
        s['ok'] = s['rc'] == 0 and s['err'] == 0 and s['ios'] > 0
    except (OSError, ValueError, KeyError, IndexError):
        s['ok'] = False
    if s.get('ok') and r.get('cpu_ticks', '') not in ('', '-'):
        s['cpu_us_io'] = float(r['cpu_ticks']) / clk * 1e6 / s['ios']
    if s.get('ok') and r.get('iowq_ns', '') not in ('', '-', None):
        s['iowq_us_io'] = float(r['iowq_ns']) / 1000 / s['ios']
        s['iowq_n'] = int(r['iowq_threads'])
    samples.setdefault(key, []).append(s)

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

res = {}   # (image, job, target) -> dict of medians
for key in NA:
    if key not in samples:
        res[key] = {'fail': False, 'na': True, 'n': 0}
for key, ss in samples.items():
    good = [s for s in ss if s.get('ok')]
    if not good:
        res[key] = {'fail': True, 'n': 0}
        continue
    res[key] = {'fail': False, 'n': len(good), 'failed_reps': len(ss) - len(good)}
    for m in ('iops', 'mib', 'p50', 'p99', 'lp50', 'lp99', 'cpu_us_io', 'ios', 'iowq_us_io', 'iowq_n'):
        res[key][m] = med([s.get(m) for s in good])

rss = {}   # (image, target) -> max VmHWM KiB
summ = {}  # (image, target) -> furing summary fields
idle = {}  # (image, target) -> daemon CPU while idle, µs per second (after the image's last job)
for d in daemons:
    k = (d['image'], d['target'])
    if d.get('idle_cpu_us_s', '-') not in ('', '-'):
        idle[k] = d['idle_cpu_us_s']
    try:
        rss[k] = max(rss.get(k, 0), int(d['vmhwm_kib']))
    except ValueError:
        pass
    if d.get('summary') and d['summary'] != '-':
        f = summ.setdefault(k, {'instances': 0})
        f['instances'] += 1
        for tok in d['summary'].split():
            if '=' in tok:
                a, b = tok.split('=', 1)
                if b.isdigit():
                    f[a] = int(f.get(a, 0)) + int(b)
                else:                      # e.g. libfuse's io_uring=on
                    f[a] = b if f.get(a, b) == b else f[a] + ',' + b

def val(image, job, target):
    r = res.get((image, job, target))
    if not r or r['fail'] or r.get('na'):
        return None
    return r['mib'] if unit_of(job) == 'MiB/s' else r['iops']

def is_na(image, job, target):
    return bool(res.get((image, job, target), {}).get('na'))

def fmt_val(v, unit, na=False):
    if na:
        return 'n/a'
    if v is None:
        return 'FAIL'
    if unit == 'IOPS':
        return '%.1fk' % (v / 1000) if v >= 1000 else '%.0f' % v
    return '%.0f' % v

def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b

def fmt_ratio(x, na=False):
    return 'n/a' if na else '-' if x is None else '%.2f' % x

def table(headers, rows):
    w = [max([len(str(h))] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    lines = ['  '.join(str(h).ljust(w[i]) if i == 0 else str(h).rjust(w[i]) for i, h in enumerate(headers))]
    for r in rows:
        lines.append('  '.join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
    return '\n'.join(lines)

def mdtable(headers, rows):
    l = ['| ' + ' | '.join(map(str, headers)) + ' |',
         '|' + '|'.join(['---'] + ['---:'] * (len(headers) - 1)) + '|']
    for r in rows:
        l.append('| ' + ' | '.join(map(str, r)) + ' |')
    return '\n'.join(l)

PAIRS = [('furing-uring', 'furing-legacy', 'uring/legacy'),
         ('furing-uring', 'qemu', 'uring/qemu'),
         ('furing-uring', 'qemu11', 'uring/qemu11'),
         ('furing-uring', 'loop', 'uring/loop'),
         ('furing-uring-pin', 'qemu', 'uring-pin/qemu'),
         ('furing-uring-pin', 'loop', 'uring-pin/loop'),
         ('furing-uring', 'furing-uring-float', 'uring/float'),
         ('furing-uring-bd', 'furing-legacy-bd', 'uring-bd/legacy-bd'),
         ('furing-uring-bd', 'qemu', 'uring-bd/qemu'),
         ('furing-uring-bd', 'loop', 'uring-bd/loop'),
         ('furing-uring', 'furing-uring-nopoll', 'uring/nopoll'),
         ('furing-uring-kpt', 'direct', 'kpt/direct'),
         ('furing-uring-kpt', 'libfuse-passthrough', 'kpt/lf-passthrough'),
         ('furing-uring-kpt-rw', 'direct', 'kpt-rw/direct'),
         ('furing-uring-kpt-rw', 'loop', 'kpt-rw/loop'),
         ('furing-uring', 'libfuse-uring', 'uring/lf-uring'),
         ('furing-uring', 'libfuse-legacy', 'uring/lf-legacy'),
         ('furing-uring', 'libfuse-passthrough', 'uring/lf-passthrough'),
         ('furing-legacy', 'libfuse-legacy', 'legacy/lf-legacy')]

text, md = [], []
md.append('# furing benchmark results\n')
md.append('```\n' + '\n'.join('%s: %s' % (k, v) for k, v in meta.items()) + '\n```\n')
tsv = ['\t'.join(['image', 'job', 'target', 'unit', 'value', 'ratio_direct', 'iops', 'mib_s',
                  'clat_p50_us', 'clat_p99_us', 'lat_p50_us', 'lat_p99_us', 'cpu_us_per_io', 'ios', 'reps_ok', 'reps_failed',
                  'peak_rss_kib', 'status'])]
chart = {}

def job_rows(image, ts, key, fmt):
    """One row per job: fmt(result) per target, 'n/a' where not run, '-' where failed or without @key."""
    rows = []
    for j in jobs:
        row = [j]
        for t in ts:
            r = res.get((image, j, t))
            row.append('n/a' if r and r.get('na') else '-' if not r or r['fail'] or r.get(key) is None else fmt(r))
        rows.append(row)
    return rows

for image in images_order:
    targets = [t for t in targets_order if any((image, j, t) in res for j in jobs_order)]
    jobs = [j for j in jobs_order if any((image, j, t) in res for t in targets)]
    if not targets:
        continue
    title = '%s image: %s (%s), %s s/job + %s s ramp, repeat %s' % (
        image, meta.get('image_' + image, '?'), meta.get('size', '?'),
        meta.get('runtime', '?'), meta.get('ramp', '?'), meta.get('repeat', '1'))
    text.append('=' * len(title)); text.append(title); text.append('=' * len(title))
    md.append('## ' + title + '\n')

    # throughput with / direct
    hdr = ['job', 'unit'] + targets
    rows = []
    for j in jobs:
        u = unit_of(j)
        base = val(image, j, 'direct')
        row = [j, u]
        for t in targets:
            if (image, j, t) not in res:
                row.append('-'); continue
            v = val(image, j, t)
            c = fmt_val(v, u, is_na(image, j, t))
            if t != 'direct' and v is not None and base:
                c += ' (%.2f)' % (v / base)
            row.append(c)
        rows.append(row)
        chart.setdefault(image, []).append((j, [ratio(val(image, j, t), base) for t in targets]))
    text.append('Throughput: IOPS for 4k jobs, MiB/s for 1M jobs; (x.xx) = target / direct')
    text.append(table(hdr, rows)); text.append('')
    md.append('Throughput: IOPS for 4k jobs, MiB/s for 1M jobs; (x.xx) = target / direct\n')
    md.append(mdtable(hdr, rows) + '\n')

    # furing ratios
    pairs = [p for p in PAIRS if p[0] in targets and p[1] in targets]
    if pairs:
        hdr = ['job'] + [p[2] for p in pairs]
        rows = [[j] + [fmt_ratio(ratio(val(image, j, a), val(image, j, b)),
                                 is_na(image, j, a) or is_na(image, j, b)) for a, b, _ in pairs] for j in jobs]
        text.append('Ratios (throughput)')
        text.append(table(hdr, rows)); text.append('')
        md.append('Ratios (throughput)\n'); md.append(mdtable(hdr, rows) + '\n')

    # qd1 latency
    qd1 = [j for j in jobs if re.search(r'-qd1(-|$)', j)]
    if qd1:
        hdr = ['job: p50/p99 us'] + targets
        rows = []
        for j in qd1:
            for label, a, b in (('lat', 'lp50', 'lp99'), ('clat', 'p50', 'p99')):
                row = [j + ' ' + label]
                for t in targets:
                    r = res.get((image, j, t))
                    row.append('n/a' if r and r.get('na') else '-' if not r or r['fail'] or r.get(a) is None
                               else '%.1f/%.1f' % (r[a], r[b]))
                rows.append(row)
        expl = ('Latency at qd1, p50/p99 in microseconds: lat = submit to completion (fio lat), '
                'clat = fio clat (excludes the time spent inside io_submit, '
                'which is most of it when the I/O completes during submission)')
        text.append(expl)
        text.append(table(hdr, rows)); text.append('')
        md.append(expl.replace('microseconds', 'µs') + '\n'); md.append(mdtable(hdr, rows) + '\n')
        # lat p50 ratios (lower is faster): the issue's latency targets
        lpairs = [p for p in (('furing-uring', 'furing-legacy', 'uring/legacy'),
                              ('furing-uring', 'libfuse-uring', 'uring/lf-uring'),
                              ('furing-uring', 'furing-uring-nopoll', 'uring/nopoll'),
                              ('furing-uring-nopoll', 'libfuse-uring', 'nopoll/lf-uring'),
                              ('furing-legacy', 'libfuse-legacy', 'legacy/lf-legacy'))
                  if p[0] in targets and p[1] in targets]
        if lpairs:
            def lr(j, a, b):
                ra, rb = res.get((image, j, a)), res.get((image, j, b))
                if not ra or not rb or ra['fail'] or rb['fail'] or not ra.get('lp50') or not rb.get('lp50'):
                    return '-'
                return '%.2f' % (ra['lp50'] / rb['lp50'])
            hdr = ['job: lat p50 ratio'] + [p[2] for p in lpairs]
            rows = [[j] + [lr(j, a, b) for a, b, _ in lpairs] for j in qd1]
            expl = 'Latency ratios at qd1: lat p50 of the first over the second (below 1.00: the first is faster)'
            text.append(expl); text.append(table(hdr, rows)); text.append('')
            md.append(expl + '\n'); md.append(mdtable(hdr, rows) + '\n')

    # CPU per IO and RSS for daemons
    dts = [t for t in targets if DAEMON(t)]
    if dts:
        hdr = ['job: daemon CPU us/IO'] + dts
        rows = job_rows(image, dts, 'cpu_us_io', lambda r: '%.2f' % r['cpu_us_io'])
        rows.append(['peak RSS (VmHWM) MiB'] + ['%.1f' % (rss[(image, t)] / 1024) if (image, t) in rss else '-' for t in dts])
        if any((image, t) in idle for t in dts):
            rows.append(['idle CPU us/s, all/io-wq (%s s)' % meta.get('idle_s', '?')] +
                        [idle[(image, t)] if (image, t) in idle else '-' for t in dts])
        text.append('Daemon CPU time per I/O (utime+stime of the daemon over the measured part of the job / I/Os; '
                    'for 1M jobs: per MiB), peak RSS, and CPU while idle after the last job')
        text.append(table(hdr, rows)); text.append('')
        md.append('Daemon CPU time per I/O (user+sys µs / I/O; 1M jobs: µs per MiB), peak RSS, idle CPU (µs per second '
                  'over %s s starting 1 s after the last job: all threads / of which io_uring io-wq workers)\n' % meta.get('idle_s', '?')); md.append(mdtable(hdr, rows) + '\n')

    # io-wq: where the backend's I/O was punted to io_uring's worker threads
    wts = [t for t in dts if any(res.get((image, j, t), {}).get('iowq_n') for j in jobs)]
    if wts:
        hdr = ['job: io-wq us/IO (threads)'] + wts
        rows = job_rows(image, wts, 'iowq_n', lambda r: '%.2f (%d)' % (r['iowq_us_io'], r['iowq_n']))
        expl = ('io_uring io-wq workers of the daemon (iou-wrk-* threads): their CPU time per I/O (per MiB for 1M jobs; '
                'part of the daemon CPU above) and how many there were at fio\'s exit')
        text.append(expl); text.append(table(hdr, rows)); text.append('')
        md.append(expl.replace('us/IO', 'µs/IO') + '\n'); md.append(mdtable(hdr, rows) + '\n')

    # the issue's targets, checked on this run's medians
    chk = []
    def chkline(what, x, goal, ok):
        chk.append('  %-62s %s  (target %s): %s' % (what, '-' if x is None else '%.2f' % x, goal,
                                                    '-' if x is None else ('met' if ok(x) else 'MISSED')))
    for j in qd1:
        if 'furing-uring' in targets and 'furing-legacy' in targets:
            chkline('%s: furing-uring / furing-legacy IOPS' % j,
                    ratio(val(image, j, 'furing-uring'), val(image, j, 'furing-legacy')), '>= 1.00', lambda x: x >= 1.0)
        if 'furing-uring' in targets and 'libfuse-uring' in targets:
            ra, rb = res.get((image, j, 'furing-uring')), res.get((image, j, 'libfuse-uring'))
            x = (ra['lp50'] / rb['lp50'] if ra and rb and not ra['fail'] and not rb['fail']
                 and ra.get('lp50') and rb.get('lp50') else None)
            chkline('%s: lat p50 furing-uring / libfuse-uring' % j, x, '<= 0.50', lambda x: x <= 0.5)
    for j in jobs:
        if '-1m-' in j and 'furing-uring' in targets:
            chkline('%s: furing-uring / direct' % j, ratio(val(image, j, 'furing-uring'), val(image, j, 'direct')),
                    '>= 0.80', lambda x: x >= 0.8)
        if '-4k-qd32' in j and 'furing-uring' in targets and 'loop' in targets:
            chkline('%s: furing-uring / loop' % j, ratio(val(image, j, 'furing-uring'), val(image, j, 'loop')),
                    '>= 1.00', lambda x: x >= 1.0)
        if '-1m-' in j and 'furing-uring-kpt-rw' in targets:
            chkline('%s: furing-uring-kpt-rw / direct' % j,
                    ratio(val(image, j, 'furing-uring-kpt-rw'), val(image, j, 'direct')), '>= 0.80', lambda x: x >= 0.8)
        if '-4k-qd32' in j and 'furing-uring-kpt-rw' in targets and 'loop' in targets:
            chkline('%s: furing-uring-kpt-rw / loop' % j,
                    ratio(val(image, j, 'furing-uring-kpt-rw'), val(image, j, 'loop')), '>= 1.00', lambda x: x >= 1.0)
        if 'furing-uring-kpt' in targets and not is_na(image, j, 'furing-uring-kpt'):
            chkline('%s: furing-uring-kpt / direct' % j,
                    ratio(val(image, j, 'furing-uring-kpt'), val(image, j, 'direct')), '~ 1', lambda x: x >= 0.9)
    if chk:
        text.append('The issue\'s targets (this run\'s medians):'); text += chk; text.append('')
        md.append('The issue\'s targets (this run\'s medians):\n'); md.append('```\n' + '\n'.join(chk) + '\n```\n')

    fs = [(t, summ[(image, t)]) for t in targets if (image, t) in summ]
    if fs:
        text.append('furing summaries and libfuse checks (whole daemon lifetime):')
        md.append('furing summaries and libfuse checks (whole daemon lifetime):\n')
        for t, f in fs:
            if t.startswith('libfuse'):
                ios = sum(x['ios'] for j in jobs for x in samples.get((image, j, t), []) if x.get('ok'))
                line = '  %-20s io_uring=%s ring_cqes=%s passthrough=%s (fio I/Os measured: %d)' % (
                    t, f.get('io_uring', '?'), f.get('ring_cqes', '?'), f.get('passthrough', '?'), ios)
            else:
                line = '  %-20s requests=%s errors=%s dev=%s ring=%s' % (
                    t, f.get('requests', '?'), f.get('errors', '?'), f.get('dev', '?'), f.get('ring', '?'))
            if f['instances'] > 1:
                line += '  (sum over %d daemon instances)' % f['instances']
            text.append(line); md.append('    ' + line.strip())
        text.append(''); md.append('')

    fails = ['%s/%s' % (j, t) for j in jobs for t in targets
             if (image, j, t) in res and (res[(image, j, t)]['fail'] or res[(image, j, t)].get('failed_reps'))]
    nas = ['%s/%s' % (j, t) for j in jobs for t in targets if is_na(image, j, t)]
    if nas:
        text.append('n/a (write jobs on read-only targets, not run): ' + ', '.join(nas)); text.append('')
        md.append('n/a (write jobs on read-only targets, not run): ' + ', '.join(nas) + '\n')
    if fails:
        text.append('FAILED runs (see fio JSON / logs): ' + ', '.join(fails)); text.append('')
        md.append('FAILED runs: ' + ', '.join(fails) + '\n')

    for j in jobs:
        for t in targets:
            r = res.get((image, j, t))
            if not r:
                continue
            v = val(image, j, t)
            rr = ratio(v, val(image, j, 'direct'))
            g = lambda m, f='%.3f': '' if r['fail'] or r.get('na') or r.get(m) is None else f % r[m]
            tsv.append('\t'.join([image, j, t, unit_of(j), '' if v is None else '%.3f' % v,
                                  '' if rr is None else '%.4f' % rr, g('iops'), g('mib'),
                                  g('p50'), g('p99'), g('lp50'), g('lp99'), g('cpu_us_io'), g('ios', '%d'),
                                  str(r['n']), str(r.get('failed_reps', 0)),
                                  str(rss.get((image, t), '')) if DAEMON(t) else '',
                                  'n/a' if r.get('na') else 'FAIL' if r['fail'] else 'ok']))

notes = os.path.join(out, 'notes.txt')
if os.path.exists(notes):
    with open(notes) as f:
        nl = [l.rstrip('\n') for l in f if l.strip()]
    if nl:
        text.append('Notes:'); text += ['  ' + l for l in nl]
        md.append('## Notes\n'); md += ['- ' + l.replace('NOTE: ', '', 1) for l in nl]; md.append('')

print('\n'.join(text))
with open(os.path.join(out, 'results.md'), 'w') as f:
    f.write('\n'.join(md) + '\n')
with open(os.path.join(out, 'results.tsv'), 'w') as f:
    f.write('\n'.join(tsv) + '\n')

# chart data: one block per image, rows = jobs, columns = targets (normalised to direct)
panels = []
for image in images_order:
    if image not in chart:
        continue
    targets = [t for t in targets_order if any((image, j, t) in res for j in jobs_order)]
    if 'direct' not in targets:
        continue
    fn = 'chart-%s.dat' % image
    with open(os.path.join(out, fn), 'w') as f:
        f.write('job\t' + '\t'.join(targets) + '\n')
        for j, rs in chart[image]:
            f.write(j + '\t' + '\t'.join('NaN' if x is None else '%.4f' % x for x in rs) + '\n')
    panels.append((image, fn, len(targets), len(chart[image])))
if panels:
    g = ['set terminal pngcairo size 1600,%d noenhanced font "sans,10"' % (500 * len(panels)),
         'set output "chart.png"',
         'set multiplot layout %d,1' % len(panels),
         'set style data histogram', 'set style histogram clustered gap 1',
         'set style fill solid 0.85 border -1', 'set boxwidth 0.9',
         'set grid ytics', 'set key outside right top vertical',
         'set ylabel "IOPS or MiB/s, relative to direct (cut at 2)"',
         'set xtics noenhanced', 'set datafile missing "NaN"', 'set key autotitle columnhead',
         'set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "black" front']
    # distinct colours for up to 16 targets (gnuplot's default set has 8)
    for i, c in enumerate(['#4d4d4d', '#999999', '#e6ab02', '#1f78b4', '#e31a1c', '#fb9a99', '#a6cee3',
                           '#33a02c', '#b2df8a', '#ff7f00', '#6a3d9a', '#cab2d6', '#b15928', '#17becf',
                           '#ffff99', '#000000'], 1):
        g.append('set linetype %d lc rgb "%s"' % (i, c))
    YCAP = 2.0   # bars above are cut at the top and carry their value
    g.append('set yrange [0:%g]' % YCAP)
    for image, fn, n, njobs in panels:
        g.append('set xrange [-0.6:%.1f]' % (njobs - 0.4))
        g.append('set title "%s image %s (%s), %s, fio %s s/job, medians of %s; 4k jobs: IOPS, 1M jobs: MiB/s; '
                 'direct = 1.0; missing bar: n/a (read-only target)"'
                 % (image, meta.get('image_' + image, ''), meta.get('size', ''), meta.get('date', '')[:10],
                    meta.get('runtime', ''), meta.get('repeat', '1')))
        # bar k (0-based) of cluster j sits at j + (k - (n - 1) / 2) / (n + gap), gap = 1
        g.append('plot for [i=2:%d] "%s" using (column(i) > %g ? %g : column(i)):xtic(1) title columnheader(i), '
                 'for [i=2:%d] "%s" using ($0 + (i - 2 - (%d - 1) / 2.0) / (%d + 1)):(%g):'
                 '(column(i) > %g ? sprintf("%%.1f", column(i)) : "") with labels rotate by 90 right '
                 'offset 0,-0.3 font "sans,8" notitle'
                 % (n + 1, fn, YCAP, YCAP, n + 1, fn, n, n, YCAP, YCAP))
    g.append('unset multiplot')
    with open(os.path.join(out, 'chart.gp'), 'w') as f:
        f.write('\n'.join(g) + '\n')
PYEOF
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

remove_target() {   # remove_target NAME...: drop exact matches from TARGETS
  local -a keep=()
  local t
  for t in "${TARGETS[@]}"; do contains "$t" "$@" || keep+=("$t"); done
  TARGETS=("${keep[@]}")
}
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
# Daemons
# ---------------------------------------------------------------------------
QEMU_AIO=io_uring
QEMU11_IOTHREADS=${BENCH_QEMU11_IOTHREADS:-2}
qemu_cmd() {  # qemu_cmd TARGET IMAGE MNT AIO
  local t=$1 n=0 i it=() exp
  case $t in
    qemu) echo qemu-storage-daemon ;;
    qemu11) n=$QEMU11_IOTHREADS ;;
    qemu11-it*) n=${t#qemu11-it} ;;
  esac
  # QEMU 11's FUSE export takes a list of iothreads and spreads requests
  # over them round-robin (iothread.0=..., iothread.1=...).
  exp="type=fuse,id=exp0,node-name=fmt0,mountpoint=$3,writable=on"
  for ((i = 0; i < n; i++)); do it+=(--object "iothread,id=iot$i"); exp+=",iothread.$i=iot$i"; done
  ((n == 0)) || echo "$SCRIPT_DIR/sid-root.sh" exec /usr/bin/qemu-storage-daemon "${it[@]}"
  echo --blockdev "node-name=file0,driver=file,filename=$2,aio=$4,cache.direct=on" \
    --blockdev node-name=fmt0,driver=raw,file=file0 \
    --export "$exp"
}
furing_args() {  # furing_args TARGET
  case $1 in
    furing-legacy)    echo --io-uring=off --writable ;;
    furing-uring)     echo --io-uring=on --writable ;;
    furing-uring-pin) echo --io-uring=on --writable --pin ;;
    furing-uring-float) echo --io-uring=on --writable --pin=off ;;
    furing-legacy-bd) echo --io-uring=off --writable --backend-direct ;;
    furing-uring-bd)  echo --io-uring=on --writable --backend-direct ;;
    furing-uring-nopoll) echo --io-uring=on --writable --busy-poll=0 ;;
    # read-only: kernel passthrough serves the reads; "on" refuses to start without it
    furing-uring-kpt) echo --io-uring=on --kernel-passthrough=on ;;
    furing-uring-kpt-rw) echo --io-uring=on --writable --kernel-passthrough=on ;;
    furing-uring-bp*) echo --io-uring=on --writable "--busy-poll=${1#furing-uring-bp}" ;;
  esac
}
# passthrough_hp: --foreground keeps it our child (it logs to stderr, not syslog);
# FUSE_INIT_STATUS=1 makes libfuse log what FUSE_INIT negotiated ("FUSE_INIT:
# io_uring=on", "FUSE_INIT: FUSE_CAP_PASSTHROUGH"), which stop_daemon checks.
libfuse_args() {  # libfuse_args TARGET
  case $1 in
    libfuse-legacy)      echo --foreground --nopassthrough ;;
    libfuse-uring)       echo --foreground --nopassthrough -o io_uring ;;
    libfuse-passthrough) echo --foreground ;;
  esac
}
ring_cqes() {   # completions reaped so far on all io_uring instances of PID (sum of CqHead)
  local fd n=0 c
  for fd in /proc/"$1"/fd/*; do
    [[ $(readlink "$fd" 2>/dev/null) == 'anon_inode:[io_uring]' ]] || continue
    c=$(awk '$1 == "CqHead:" { print $2 }' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null) || continue
    n=$((n + ${c:-0}))
  done
  echo "$n"
}

ensure_enable_uring() {   # another user of the machine may have switched it off
  local v
  v=$(cat "$ENABLE_URING_PARAM" 2>/dev/null || echo '?')
  [[ $v == Y ]] && return 0
  echo Y >"$ENABLE_URING_PARAM" || die "cannot write Y to $ENABLE_URING_PARAM"
  say "  $ENABLE_URING_PARAM was $v again (changed by someone else?), set it back to Y"
}

# start_daemon TARGET IMAGE TAG -> DPID/DMNT/DLOG set; dies if not up in 10 s
start_daemon() {
  local t=$1 img=$2 tag=$3
  local mnt=$WORK/$tag-$t.mnt log=$OUT/$tag-$t.log fstype pid i
  local -a cmd
  case $t in
    qemu|qemu11*)
      rm -f "$mnt"
      touch "$mnt"   # qemu needs an existing regular file
      # shellcheck disable=SC2207
      cmd=($(qemu_cmd "$t" "$img" "$mnt" "${QEMU_AIO[$t]}"))
      fstype=fuse ;;
    furing-*)
      rm -f "$mnt"
      if [[ $t == furing-uring* ]]; then ensure_enable_uring; fi
      # shellcheck disable=SC2206,SC2207
      cmd=("$FURING" export $(furing_args "$t") ${FURING_EXTRA_ARGS:-} "$img" "$mnt")
      fstype=fuse.furing ;;
    libfuse-*)
      # passthrough_hp mirrors a directory: the image's own directory (which
      # holds nothing else) appears under the mountpoint directory
      mkdir -p "$mnt"
      if [[ $t == libfuse-uring ]]; then ensure_enable_uring; fi
      # shellcheck disable=SC2206,SC2207
      cmd=(env "LD_LIBRARY_PATH=$LIBFUSE_DIR/lib" FUSE_INIT_STATUS=1
           "$LIBFUSE_HP" $(libfuse_args "$t") ${BENCH_LIBFUSE_ARGS:-} "$(dirname "$img")" "$mnt")
      fstype=fuse ;;
  esac
  printf '%s\n' "${cmd[*]}" >>"$log.cmd"
  setsid "${cmd[@]}" </dev/null >>"$log" 2>&1 &
  pid=$!
  DPID[$t]=$pid; DMNT[$t]=$mnt; DLOG[$t]=$log; DFST[$t]=$fstype
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ $(mount_fstype "$mnt") == "$fstype" ]] && break
    if ! proc_alive "$pid"; then
      say "---- $log:"; tail -n 20 "$log"
      die "$t exited before mounting $mnt (command: ${cmd[*]})"
    fi
    sleep 0.1
  done
  if [[ $(mount_fstype "$mnt") != "$fstype" ]]; then
    say "---- $log:"; tail -n 20 "$log"
    die "$t did not come up within ${START_TIMEOUT} s ($mnt with fstype $fstype not in /proc/self/mountinfo; command: ${cmd[*]})"
  fi
  say "  $t up: pid $pid, $mnt"
}

daemon_file() {   # daemon_file TARGET IMAGE: what fio opens for a daemon target
  case $1 in
    libfuse-*) FILE[$1]=${DMNT[$1]}/${2##*/} ;;   # the image inside the mirrored directory
    *)         FILE[$1]=${DMNT[$1]} ;;
  esac
}

daemon_ok() {   # daemon of TARGET alive and its mount in place
  proc_alive "${DPID[$1]}" && [[ $(mount_fstype "${DMNT[$1]}") == "${DFST[$1]}" ]]
}

# stop_daemon TARGET TAG [quiet]: records VmHWM + furing summary into daemons.tsv
stop_daemon() {
  local t=$1 tag=$2 pid=${DPID[$1]} hwm="-" summary="-" quiet=${3:-} cqes="?" pt
  if proc_alive "$pid"; then
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo -)
    if [[ $t == libfuse-* ]]; then cqes=$(ring_cqes "$pid"); fi
  elif [[ -z $quiet ]]; then
    say "WARNING: $t (pid $pid) died during the run; see ${DLOG[$t]}"
    note "$tag/$t: daemon died during the run (see $(basename "${DLOG[$t]}"))"
  fi
  stop_pid "$pid"
  unset "DPID[$t]"
  force_umount "${DMNT[$t]}"
  unset "DMNT[$t]"
  if [[ $t == furing-* ]]; then
    summary=$(grep 'furing: summary' "${DLOG[$t]}" | tail -n 1 || true)
    if [[ -n $summary ]]; then
      printf '%s\n' "$summary" >>"$OUT/$tag-$t.summary"
      if [[ $t == furing-uring* && $summary =~ \ ring=0( |$) ]]; then
        note "$tag/$t: furing summary says ring=0 - no request went over io_uring"
      elif [[ $t == furing-legacy* && ! $summary =~ \ ring=0( |$) ]]; then
        note "$tag/$t: furing summary has ring!=0 although --io-uring=off"
      fi
      summary=${summary#furing: summary }
    else
      note "$tag/$t: no 'furing: summary' line in $(basename "${DLOG[$t]}")"
      summary="-"
    fi
  elif [[ $t == libfuse-* ]]; then
    # what FUSE_INIT negotiated (FUSE_INIT_STATUS=1), and whether requests used the ring
    summary=$(grep -o 'FUSE_INIT: io_uring=[^ ]*' "${DLOG[$t]}" | tail -n 1 || true)
    summary=${summary#FUSE_INIT: }
    pt=no   # passthrough_hp negotiates FUSE_CAP_PASSTHROUGH even with --nopassthrough
    if [[ $t == libfuse-passthrough ]] && grep -q 'FUSE_INIT: FUSE_CAP_PASSTHROUGH' "${DLOG[$t]}" &&
       ! grep -q 'disabling rw passthrough' "${DLOG[$t]}"; then pt=yes; fi
    summary="${summary:-io_uring=?} ring_cqes=$cqes passthrough=$pt"
    case $t in
      libfuse-uring)
        [[ $summary == *io_uring=on* ]] || note "$tag/$t: libfuse did not report 'FUSE_INIT: io_uring=on' (${summary%% *}; see $(basename "${DLOG[$t]}"))"
        [[ $cqes != 0 ]] || note "$tag/$t: ring_cqes=0 - no request went over io_uring" ;;
      libfuse-legacy)
        [[ $cqes == 0 || $cqes == '?' ]] || note "$tag/$t: ring_cqes=$cqes although io_uring was not asked for" ;;
      libfuse-passthrough)
        [[ $pt == yes ]] || note "$tag/$t: kernel passthrough not in use (no FUSE_CAP_PASSTHROUGH or 'disabling rw passthrough' in $(basename "${DLOG[$t]}"))" ;;
    esac
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$tag" "$t" "${hwm:--}" "${summary:--}" "${IDLE_US_S[$t]:--}" >>"$OUT/daemons.tsv"
  unset "IDLE_US_S[$t]"
}

declare -A QEMU_AIO=()
qemu_version() {  # qemu_version TARGET: "qemu-storage-daemon 11.1.3"
  local v
  if [[ $1 == qemu ]]; then v=$(qemu-storage-daemon --version | head -1); else v=$("$SCRIPT_DIR/sid-root.sh" exec /usr/bin/qemu-storage-daemon --version | head -1); fi
  echo "qemu-storage-daemon $(awk '{print $3}' <<<"$v")"
}
qemu_threads() {  # qemu_threads TARGET: ", N iothreads" for QEMU 11's targets
  case $1 in
    qemu11) echo ", $QEMU11_IOTHREADS iothreads" ;;
    qemu11-it*) echo ", ${1#qemu11-it} iothreads" ;;
  esac
}
probe_qemu() {   # probe_qemu TARGET: check the fuse export and aio=io_uring on a small image
  local t=$1 img=$WORK/probe.img mnt=$WORK/probe.mnt aio pid i ok
  truncate -s 16M "$img"
  for aio in io_uring native; do
    touch "$mnt"
    # shellcheck disable=SC2046
    setsid $(qemu_cmd "$t" "$img" "$mnt" "$aio") </dev/null >"$WORK/probe.log" 2>&1 &
    pid=$!
    ok=0
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
      [[ $(mount_fstype "$mnt") == fuse ]] && { ok=1; break; }
      proc_alive "$pid" || break
      sleep 0.1
    done
    stop_pid "$pid"
    force_umount "$mnt"
    if ((ok)); then
      QEMU_AIO[$t]=$aio
      [[ $aio == io_uring ]] || note "$t: aio=io_uring not supported here, using aio=native ($(head -c 200 "$WORK/probe.log" | tr '\n' ' '))"
      rm -f "$img" "$mnt"
      return 0
    fi
    if ! grep -qiE 'io_uring|aio' "$WORK/probe.log"; then
      break
    fi
  done
  cp "$WORK/probe.log" "$OUT/$t-probe.log"
  note "$t: qemu-storage-daemon's FUSE export does not work here: $(head -c 300 "$WORK/probe.log" | tr '\n' ' '); $t target skipped"
  rm -f "$img" "$mnt"
  return 1
}
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
