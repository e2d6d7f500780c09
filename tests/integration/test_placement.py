"""Worker placement (`--pin=auto|on|off`, FURING_PIN_AUTO): over io_uring,
with callers on every CPU each worker binds itself to its queue's CPU; one
caller alone moves nothing; `--pin=off` never moves a worker. Which
placement is faster is measured in bench/, not here."""

import os
import subprocess
import sys
import time

import pytest

from furing_helpers import KiB, online_cpus, thread_cpus

pytestmark = pytest.mark.timeout(60)

CPUS = online_cpus()

# A reader bound to one CPU: its requests all go to that CPU's queue.
READER = r"""
import mmap, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[2])})
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
m = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
end = time.monotonic() + float(sys.argv[3])
i = 0
while time.monotonic() < end:
    os.preadv(fd, [m], (i % 256) * 4096)
    i += 1
print(i)
"""


def readers(path, cpus, seconds):
    return [subprocess.Popen([sys.executable, "-c", READER, path, str(c), str(seconds)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cpus]


def finish(procs):
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert int(out) > 0


def worker_affinities(pid):
    """Cpus_allowed_list of the workers: the threads named like the main
    thread, which the kernel's io_uring helpers (iou-wrk-*, iou-sqp-*) are
    not."""
    threads = thread_cpus(pid)
    main_comm = threads[pid][0]
    return {tid: cpus for tid, (comm, cpus) in threads.items() if tid != pid and comm == main_comm}


def all_cpus():
    return ",".join(str(c) for c in CPUS) if len(CPUS) != CPUS[-1] - CPUS[0] + 1 else f"{CPUS[0]}-{CPUS[-1]}"


needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="placement needs two CPUs")


@pytest.fixture
def ring_furing(ring):
    """An export over io_uring (placement has nothing to decide on
    /dev/fuse) with a worker per CPU."""
    def start(image, *extra):
        return ring(image, "--threads", str(len(CPUS)), *extra)
    return start


@needs_two_cpus
def test_callers_on_every_cpu_bind_workers(ring_furing, make_image):
    img = make_image(1024 * KiB, "random", seed=11)
    f = ring_furing(img)
    procs = readers(f.mountpoint, CPUS, 3.0)
    bound = {}
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            aff = worker_affinities(f.pid)
            bound = {t: a for t, a in aff.items() if a in {str(c) for c in CPUS}}
            if len(bound) == len(CPUS):
                break
            time.sleep(0.05)
    finally:
        finish(procs)
    assert sorted(bound.values()) == sorted(str(c) for c in CPUS), \
        f"workers' CPUs under callers on every CPU: {worker_affinities(f.pid)}"
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["placement_changes"] >= len(CPUS), r.summary


@needs_two_cpus
def test_one_caller_moves_nothing(ring_furing, make_image):
    img = make_image(1024 * KiB, "random", seed=12)
    f = ring_furing(img)
    finish(readers(f.mountpoint, CPUS[:1], 1.0))
    aff = worker_affinities(f.pid)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["placement_changes"] == 0, r.summary
    assert set(aff.values()) == {all_cpus()}, aff


@needs_two_cpus
def test_pin_off_never_moves(ring_furing, make_image):
    img = make_image(1024 * KiB, "random", seed=13)
    f = ring_furing(img, "--pin=off")
    finish(readers(f.mountpoint, CPUS, 1.0))
    aff = worker_affinities(f.pid)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["placement_changes"] == 0, r.summary
    assert set(aff.values()) == {all_cpus()}, aff


def test_pin_bad_values(cli, image, workdir):
    for bad in ("sometimes", "", "1"):
        r = cli(["export", f"--pin={bad}", image, os.path.join(workdir, "mp")])
        assert r.rc == 2, (bad, r.stderr)
        assert "--pin" in r.stderr, r.stderr
