"""Concurrent creates, writes, renames, links and unlinks through the mount,
from several processes at once in a shared directory and in their own,
while another process lists and stats everything; then the final tree -
through the mount and on SOURCE - must be exactly what the processes' own
records say, content included."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from pt_fixtures import passthrough, tree_state  # noqa: F401

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

WORKERS = 4
STEPS = 400

WORKER = r"""
import hashlib, json, os, random, sys
root, k, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(k)
dirs = ["shared", f"own{k}"]
os.makedirs(os.path.join(root, dirs[1]), exist_ok=True)
files = {}   # relative path -> bytearray content (this process's files only)
n = 0

def new_name():
    global n
    n += 1
    return os.path.join(rnd.choice(dirs), f"w{k}_{n}")

for step in range(steps):
    op = rnd.random()
    if op < 0.3 or not files:
        name = new_name()
        data = bytearray(rnd.randbytes(rnd.choice((0, 1, 100, 4096, 5000, 70000))))
        with open(os.path.join(root, name), "xb") as f:
            f.write(data)
        files[name] = data
    elif op < 0.5:
        name = rnd.choice(sorted(files))
        off = rnd.randrange(0, len(files[name]) + 10)
        data = rnd.randbytes(rnd.choice((1, 512, 8192)))
        fd = os.open(os.path.join(root, name), os.O_WRONLY)
        os.pwrite(fd, data, off)
        os.close(fd)
        buf = files[name]
        if off > len(buf):
            buf.extend(bytes(off - len(buf)))
        buf[off:off + len(data)] = data
    elif op < 0.7:
        name = rnd.choice(sorted(files))
        to = new_name()
        os.rename(os.path.join(root, name), os.path.join(root, to))
        files[to] = files.pop(name)
    elif op < 0.8:
        name = rnd.choice(sorted(files))
        to = new_name()
        os.link(os.path.join(root, name), os.path.join(root, to))
        files[to] = files[name]  # the same content object: a hard link
    elif op < 0.9:
        name = rnd.choice(sorted(files))
        os.unlink(os.path.join(root, name))
        files.pop(name)
    else:
        name = rnd.choice(sorted(files))
        size = rnd.randrange(0, 9000)
        os.truncate(os.path.join(root, name), size)
        buf = files[name]
        if size < len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))
print(json.dumps({p: [len(b), hashlib.sha256(bytes(b)).hexdigest()] for p, b in files.items()}))
"""

LISTER = r"""
import os, sys, time
root, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
rounds = 0
while time.monotonic() < until:
    for dirpath, dirs, names in os.walk(root):
        for n in names:
            try:
                os.stat(os.path.join(dirpath, n))
            except FileNotFoundError:
                pass
    rounds += 1
print(rounds)
"""


def expected_tree(models):
    """tree_state-like {path: (size, hash)} from the workers' records."""
    out = {}
    for m in models:
        out.update({p: tuple(v) for p, v in m.items()})
    return out


def actual_files(root):
    out = {}
    for rel, st in tree_state(root).items():
        if st[5] is not None:  # regular files: (size, sha256)
            out[rel] = st[5]
    return out


@pytest.mark.parametrize("cache", ["auto", "always"])
def test_concurrent_tree(passthrough, transport, cache):
    pt = passthrough(f"--cache={cache}")
    os.mkdir(os.path.join(pt.mountpoint, "shared"))
    lister = subprocess.Popen([sys.executable, "-c", LISTER, pt.mountpoint, "60"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, pt.mountpoint, str(k), str(STEPS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(WORKERS)]
    models = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err.decode(errors="replace")[-3000:]
        models.append(json.loads(out))
    lister.kill()
    lister.communicate(timeout=10)
    want = expected_tree(models)
    assert len(want) > WORKERS * 20, f"too few files survived to check much: {len(want)}"
    for where, root in (("mount", pt.mountpoint), ("SOURCE", pt.source)):
        got = actual_files(root)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(p for p in set(want) & set(got) if tuple(got[p]) != want[p])
        assert not (missing or extra or wrong), f"{where}: missing {missing[:5]} extra {extra[:5]} wrong {wrong[:5]}"
    # hard links: names the workers linked share an inode on SOURCE too
    inodes = {}
    for p in want:
        inodes.setdefault(os.stat(os.path.join(pt.source, p)).st_ino, []).append(p)
    linked = [ps for ps in inodes.values() if len(ps) > 1]
    for ps in linked:
        assert os.stat(os.path.join(pt.mountpoint, ps[0])).st_nlink == len(ps), ps
    r = pt.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["errors"] < r.summary["requests"], r.summary
