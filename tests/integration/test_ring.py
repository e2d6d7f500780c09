"""FUSE-over-io_uring specifics: the ring carries the I/O, every CPU queue
serves, any number of threads and queue depths work, and the ring comes
down cleanly on unmount and daemon death. (enable_uring=N fallback and
refusal are in test_errors.py.)"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from furing_helpers import (
    MiB, assert_same, is_mounted, lazy_umount_all, online_cpus, pattern, read_file, thread_cpus,
)

pytestmark = pytest.mark.timeout(90)

# Opcodes the kernel sends over /dev/fuse even when the ring is up.
DEV_ONLY_OPS = {"INIT", "FORGET", "BATCH_FORGET", "INTERRUPT"}


def possible_cpus():
    n = 0
    with open("/sys/devices/system/cpu/possible") as f:
        for part in f.read().strip().split(","):
            a, _, b = part.partition("-")
            n += int(b or a) - int(a) + 1
    return n


def roundtrip(path, size, seed):
    """Writes then reads back blocks of several sizes; returns bytes moved."""
    moved = 0
    with open(path, "r+b", buffering=0) as f:
        for i, n in enumerate((1, 4096, 65537, MiB, MiB + 4096)):
            off = (i * 3 * MiB + 511) % (size - n)
            data = pattern(n, seed + i)
            assert f.seek(off) == off and f.write(data) == n
            f.seek(off)
            assert_same(f.read(n), data, f"round trip {n}@{off}")
            moved += 2 * n
    return moved


def assert_ring_served(summary, nqueues):
    ring_ops, dev_ops = summary["ring_ops"], summary["dev_ops"]
    assert ring_ops.get("READ", 0) > 0 and ring_ops.get("WRITE", 0) > 0, summary
    assert set(dev_ops) <= DEV_ONLY_OPS, f"/dev/fuse served more than INIT/FORGET-class: {dev_ops}"
    assert summary["ring"] > 0
    queues = {k: v for k, v in summary.items() if k[0] == "q" and k[1:].isdigit()}
    assert sorted(queues) == sorted(f"q{i}" for i in range(nqueues)), queues
    assert sum(queues.values()) == summary["ring"], summary


def test_ring_carries_read_and_write(ring, make_image):
    img = make_image(16 * MiB)
    f = ring(img)
    moved = roundtrip(f.mountpoint, 16 * MiB, 5)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert_ring_served(r.summary, possible_cpus())
    assert r.summary["bytes_read"] + r.summary["bytes_written"] >= moved
    # the layout line: queues, depth, payload and the memory they take
    assert f"{possible_cpus()} queues" in r.stderr, r.stderr
    assert re.search(r"(per-entry buffers: .* MiB \(touched on use\)|buffer pools: .* MiB)", r.stderr), r.stderr


@pytest.mark.parametrize("relation", ["fewer", "equal", "more"])
def test_threads_vs_queues(ring, make_image, relation):
    nq = possible_cpus()
    threads = {"fewer": max(1, nq - 1), "equal": nq, "more": nq + 1}[relation]
    img = make_image(16 * MiB)
    f = ring(img, "--threads", threads)
    roundtrip(f.mountpoint, 16 * MiB, threads)
    # each CPU queue must serve, whoever owns it
    run_on_each_cpu(f.mountpoint)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert_ring_served(r.summary, nq)
    assert f"on {threads} worker thread" in r.stderr, r.stderr
    for cpu in online_cpus():
        assert r.summary[f"q{cpu}"] > 0, (cpu, r.summary)


PINNED_IO = r"""
import os, sys
cpu, path = int(sys.argv[1]), sys.argv[2]
os.sched_setaffinity(0, {cpu})
fd = os.open(path, os.O_RDWR)
data = os.urandom(8192)
for i in range(16):
    assert os.pwrite(fd, data, cpu * 65536 + i * 8192) == 8192
    assert os.pread(fd, 8192, cpu * 65536 + i * 8192) == data
os.close(fd)
"""


def run_on_each_cpu(path):
    for cpu in online_cpus():
        p = subprocess.run([sys.executable, "-c", PINNED_IO, str(cpu), path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 0, (cpu, p.stdout.decode(errors="replace"))


def test_every_cpu_queue_serves(ring, make_image):
    img = make_image(16 * MiB)
    f = ring(img)
    run_on_each_cpu(f.mountpoint)
    r = f.stop()
    assert r.rc == 0, r.stderr
    for cpu in online_cpus():
        # 16 writes + 16 reads issued from that CPU land on its queue
        assert r.summary[f"q{cpu}"] >= 32, (cpu, r.summary)


@pytest.mark.parametrize("depth", [1, 128])
def test_queue_depth(ring, make_image, workdir, depth):
    img = make_image(32 * MiB)
    f = ring(img, "--queue-depth", depth)
    p = subprocess.run(
        ["fio", "--name=qd", f"--filename={f.mountpoint}", "--ioengine=libaio", "--direct=1",
         "--iodepth=32", "--numjobs=1", "--rw=randwrite", "--bs=4k", "--size=32m", "--io_size=8m",
         "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert p.returncode == 0, p.stdout.decode(errors="replace")[-3000:]
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert f"depth {depth} " in r.stderr, r.stderr
    assert_ring_served(r.summary, possible_cpus())
    assert r.summary["ring_ops"]["WRITE"] >= 2048, r.summary


def start_fio(path, workdir, seconds):
    log = open(os.path.join(workdir, "fio.log"), "wb")
    return subprocess.Popen(
        ["fio", "--name=load", f"--filename={path}", "--ioengine=libaio", "--direct=1",
         "--iodepth=32", "--numjobs=1", "--rw=randrw", "--bs=4k", "--size=32m",
         "--time_based", f"--runtime={seconds}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_fio_running(fio, path, timeout=30):
    """Waits until fio or a child of it (its job, in a session of its own)
    has `path` open, then a little longer for its I/O to be under way: fio's
    start takes from a few milliseconds here to seconds under TCG (the 7.3
    VM)."""
    target = os.path.realpath(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert fio.poll() is None, "fio ended before its job opened the file"
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as st:
                    ppid = int(st.read().rsplit(")", 1)[1].split()[1])
                if fio.pid not in (int(pid), ppid):
                    continue
                fds = os.listdir(f"/proc/{pid}/fd")
                if any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == target for fd in fds):
                    time.sleep(0.5)
                    return
            except OSError:
                continue
        time.sleep(0.05)
    pytest.fail(f"fio did not open {path} within {timeout} s")


def test_lazy_unmount_under_fio_ends_cleanly(ring, make_image, workdir):
    img = make_image(32 * MiB)
    f = ring(img)
    fio = start_fio(f.mountpoint, workdir, 4)
    try:
        wait_fio_running(fio, f.mountpoint)
        assert fio.poll() is None, "fio should still be running"
        p = subprocess.run(["umount", "-l", f.mountpoint], timeout=10)
        assert p.returncode == 0
        assert not is_mounted(f.mountpoint)
        # fio keeps its open file and finishes its run; then the connection
        # ends and the daemon exits on its own
        assert fio.wait(20) == 0, read_file(os.path.join(workdir, "fio.log"))[-2000:]
        r = f.wait_exit(10)
    finally:
        if fio.poll() is None:
            os.killpg(fio.pid, signal.SIGKILL)
            fio.wait(5)
    assert r.rc == 0, r.stderr
    assert r.summary["ring_ops"].get("WRITE", 0) > 1000, r.summary


def test_kill9_under_load_then_restart(ring, make_image, workdir):
    img = make_image(32 * MiB)
    f = ring(img)
    fio = start_fio(f.mountpoint, workdir, 30)
    try:
        wait_fio_running(fio, f.mountpoint)
        assert fio.poll() is None, "fio should still be running"
        os.kill(f.pid, signal.SIGKILL)
        f.proc.wait(5)
        # the application is not left hanging: its I/O fails and it exits
        fio.wait(10)
    finally:
        if fio.poll() is None:
            os.killpg(fio.pid, signal.SIGKILL)
            fio.wait(5)
            pytest.fail("fio hung after the daemon was killed")
    with pytest.raises(OSError) as e:
        os.stat(f.mountpoint)
    assert e.value.errno == 107, e.value  # ENOTCONN
    lazy_umount_all(f.mountpoint)
    assert not is_mounted(f.mountpoint)
    # a new export on the same mountpoint serves
    g = ring(img, mountpoint=f.mountpoint)
    roundtrip(g.mountpoint, 32 * MiB, 9)
    r = g.stop()
    assert r.rc == 0, r.stderr
    assert_ring_served(r.summary, possible_cpus())


def test_pin(ring, make_image):
    img = make_image(16 * MiB)
    f = ring(img, "--pin", "--threads", possible_cpus())
    roundtrip(f.mountpoint, 16 * MiB, 3)
    # each worker thread is bound to the CPU of its queue
    allowed = {cpus for _, cpus in thread_cpus(f.pid).values()}
    for cpu in online_cpus():
        assert str(cpu) in allowed, (cpu, allowed)
    r = f.stop()
    assert r.rc == 0, r.stderr
