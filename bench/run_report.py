#!/usr/bin/env python3
"""bench/run_report.py OUT: the report of a bench/run.sh run (stdlib only).

Reads OUT/runs.tsv, OUT/daemons.tsv, OUT/meta.tsv and the fio JSON files;
prints the tables and ratios; writes OUT/results.tsv, OUT/results.md and
the chart's data and gnuplot script (OUT/chart.gp). run.sh calls it after a
run and for --report-only.
"""
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
        # lat p50 ratios (lower is faster): the latency targets
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

    # the targets, checked on this run's medians
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
