"""Data path: reads and writes through the exported file, compared with the
backing image and with a Python model of it. Runs under both transports."""

import errno
import mmap
import os
import random
import stat
import subprocess
import threading
import time

import pytest

from furing_helpers import (
    KiB, MiB, assert_same, errno_of, op_count, pattern, read_file,
)

pytestmark = pytest.mark.timeout(20)

SIZES = [1, 2, 511, 512, 4095, 4096, 4097, 65536, 131072 + 3, MiB, MiB + MiB // 2]


@pytest.mark.parametrize("backend", ["buffered", "direct"])
def test_random_writes_match_model(furing, make_image, backend):
    size = 8 * MiB
    img = make_image(size, "random", seed=1)
    model = bytearray(read_file(img))
    # --backend-direct (O_DIRECT on the image) is beyond the core contract; it
    # must give the same results, unaligned I/O included
    extra = ["--backend-direct"] if backend == "direct" else []
    f = furing(img, *extra, writable=True)
    fd = f.open(os.O_RDWR)
    rd = f.open(os.O_RDONLY)          # opened before the writes: must see them
    backing = os.open(img, os.O_RDONLY)
    try:
        rng = random.Random(42)
        ops = [(0, 1), (1, 1), (4095, 2), (4096, 4096), (12345, 4096), (size - 1, 1),
               (size - 4096, 4096), (MiB, MiB), (3 * MiB + 17, MiB + MiB // 2),
               (size - (MiB + MiB // 2), MiB + MiB // 2), (7, 131072 + 3)]
        for _ in range(40):
            n = rng.choice(SIZES)
            ops.append((rng.randrange(0, size - n + 1), n))
        for i, (off, n) in enumerate(ops):
            data = pattern(n, 1000 + i)
            assert os.pwrite(fd, data, off) == n, f"short write #{i} at {off}+{n}"
            model[off:off + n] = data
            assert_same(os.pread(backing, n, off), data, f"backing after write #{i} at {off}+{n}")
            assert_same(os.pread(rd, n, off), data, f"read-back of write #{i} at {off}+{n}")
        for i in range(40):
            n = rng.choice(SIZES)
            off = rng.randrange(0, size - n + 1)
            assert_same(os.pread(fd, n, off), bytes(model[off:off + n]), f"read #{i} at {off}+{n}")
        assert_same(read_file(img), bytes(model), "backing file vs model")
        assert_same(os.pread(rd, size, 0), bytes(model), "whole export vs model")
        assert os.fstat(fd).st_size == size
    finally:
        os.close(backing)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert os.path.getsize(img) == size


def test_read_prewritten_image(furing, make_image):
    size = 4 * MiB + 1234              # not a multiple of the block size
    img = make_image(size, "random", seed=2)
    data = read_file(img)
    f = furing(img)                    # read-only
    st = os.stat(f.mountpoint)
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == size
    fd = f.open(os.O_RDONLY)
    rng = random.Random(7)
    cases = [(0, 1), (0, 4096), (1, 4096), (4096, 4096), (777, MiB + MiB // 2), (0, size),
             (size - 1, 1), (size - 4096, 4096)]
    cases += [(rng.randrange(0, size - n), n) for n in SIZES for _ in range(3)]
    for off, n in cases:
        assert_same(os.pread(fd, n, off), data[off:off + n], f"read at {off}+{n}")
    # crossing the end: short; at/after the end: EOF
    assert_same(os.pread(fd, 8192, size - 100), data[-100:], "read crossing the end")
    assert os.pread(fd, 4096, size) == b""
    assert os.pread(fd, 4096, size + 10 * MiB) == b""
    # sequential read() through the whole file
    with open(f.mountpoint, "rb", buffering=0) as seq:
        chunks = []
        while True:
            c = seq.read(300 * KiB)
            if not c:
                break
            chunks.append(c)
    assert_same(b"".join(chunks), data, "sequential read")
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_concurrent_writers_and_readers(furing, make_image):
    size = 8 * MiB
    img = make_image(size, "random", seed=3)
    model = bytearray(read_file(img))
    f = furing(img, writable=True)
    nwriters, region = 4, MiB
    plans = []
    for t in range(nwriters):
        rng = random.Random(100 + t)
        base, pos, chunks = t * region, 0, []
        while pos < region:
            n = min(rng.choice([1, 777, 4096, 65536, 200000]), region - pos)
            chunks.append((base + pos, pattern(n, t * 100000 + pos)))
            pos += n
        rng.shuffle(chunks)
        plans.append(chunks)
        for off, d in chunks:
            model[off:off + len(d)] = d
    static_lo = nwriters * region      # readers check the untouched upper half
    errors = []
    stop_readers = threading.Event()

    def writer(chunks):
        try:
            fd = os.open(f.mountpoint, os.O_RDWR)
            try:
                for off, d in chunks:
                    n = os.pwrite(fd, d, off)
                    if n != len(d):
                        errors.append(f"short write {n}/{len(d)} at {off}")
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"writer: {e!r}")

    def reader(seed):
        rng = random.Random(seed)
        try:
            fd = os.open(f.mountpoint, os.O_RDONLY)
            try:
                while not stop_readers.is_set():
                    n = rng.choice([4096, 65536, 300000])
                    off = rng.randrange(static_lo, size - n)
                    if os.pread(fd, n, off) != bytes(model[off:off + n]):
                        errors.append(f"reader saw wrong data at {off}+{n}")
                        return
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001
            errors.append(f"reader: {e!r}")

    threads = [threading.Thread(target=writer, args=(p,), daemon=True) for p in plans]
    readers = [threading.Thread(target=reader, args=(s,), daemon=True) for s in (1, 2)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join(30)
    stop_readers.set()
    for t in readers:
        t.join(10)
    assert not any(t.is_alive() for t in threads + readers), "an I/O thread hung"
    assert not errors, errors[:5]
    assert_same(read_file(img), bytes(model), "backing file vs model")
    with open(f.mountpoint, "rb", buffering=0) as g:
        assert_same(g.read(), bytes(model), "export vs model")
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_fsync_fdatasync(furing, make_image):
    img = make_image(4 * MiB)
    f = furing(img, writable=True, debug=True)
    fd = f.open(os.O_RDWR)
    data = pattern(64 * KiB, 5)
    assert os.pwrite(fd, data, 8192) == len(data)
    os.fsync(fd)
    assert os.pwrite(fd, data, 2 * MiB) == len(data)
    os.fdatasync(fd)
    backing = read_file(img)
    assert_same(backing[8192:8192 + len(data)], data, "backing after fsync")
    assert_same(backing[2 * MiB:2 * MiB + len(data)], data, "backing after fdatasync")
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary is not None, r.stderr[-2000:]
    # The kernel silently stops sending FSYNC when the server answers ENOSYS,
    # so check the server really saw and answered them.
    assert op_count(r.summary, "FSYNC") >= 2, r.summary
    fsync_lines = [l for l in r.stderr.splitlines() if "] FSYNC " in l]
    assert len(fsync_lines) >= 2, "no FSYNC debug lines"
    for l in fsync_lines:
        res = l.rsplit("->", 1)[-1].strip()
        assert not (res.startswith("-") or "ENOSYS" in res or "error" in res.lower()), l


def test_read_only_refuses_writes(furing, make_image):
    img = make_image(2 * MiB, "random", seed=6)
    orig = read_file(img)
    f = furing(img)
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDWR | os.O_TRUNC):
        e = errno_of(os.open, f.mountpoint, flags)
        assert e in (errno.EROFS, errno.EACCES), f"open flags={flags:#o}: errno {e}"
    fd = f.open(os.O_RDONLY)
    assert_same(os.pread(fd, 4096, 4096), orig[4096:8192], "read on read-only export")
    assert errno_of(os.pwrite, fd, b"x", 0) is not None
    assert read_file(img) == orig
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_write_crossing_end_is_short(furing, make_image):
    size = MiB
    img = make_image(size, "random", seed=8)
    model = bytearray(read_file(img))
    f = furing(img, writable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(8192, 9)
    n = os.pwrite(fd, data, size - 4096)
    assert n == 4096, f"write crossing the end returned {n}, expected the 4096 bytes inside"
    model[size - 4096:] = data[:4096]
    assert os.pwrite(fd, b"Z", size - 1) == 1
    model[size - 1:] = b"Z"
    assert os.path.getsize(img) == size
    assert os.fstat(fd).st_size == size
    assert_same(read_file(img), bytes(model), "backing after crossing write")
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_write_past_end_enospc(furing, make_image):
    size = MiB
    img = make_image(size, "random", seed=10)
    orig = read_file(img)
    f = furing(img, writable=True)
    fd = f.open(os.O_RDWR)
    for off, n in ((size, 1), (size, 4096), (size + 12345, 100), (size + MiB, MiB + MiB // 2)):
        e = errno_of(os.pwrite, fd, pattern(n, off), off)
        assert e == errno.ENOSPC, f"write at {off}+{n} past the end: errno {e}, expected ENOSPC"
    assert os.path.getsize(img) == size
    assert read_file(img) == orig
    # still serving
    assert_same(os.pread(fd, 4096, 0), orig[:4096], "read after ENOSPC")
    assert os.pwrite(fd, b"ok", 0) == 2
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_growable_write_past_end(furing, make_image):
    size = MiB
    img = make_image(size, "random", seed=11)
    model = bytearray(read_file(img))
    f = furing(img, writable=True, growable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(4096, 12)
    off = size + MiB                                   # leaves a 1 MiB gap
    assert os.pwrite(fd, data, off) == len(data)
    model += bytes(off - size) + data
    assert os.fstat(fd).st_size == len(model)
    assert os.path.getsize(img) == len(model)
    big = pattern(MiB + MiB // 2, 13)                  # crossing the (new) end
    off2 = len(model) - 1000
    assert os.pwrite(fd, big, off2) == len(big)
    model[off2:] = big
    assert os.stat(f.mountpoint).st_size == len(model)
    assert_same(read_file(img), bytes(model), "backing after growing writes")
    assert_same(os.pread(fd, len(model), 0), bytes(model), "export after growing writes")
    r = f.stop()
    assert r.rc == 0, r.stderr


@pytest.fixture
def small_tmpfs(workdir):
    """A 512 KiB tmpfs, so that a write to an image on it runs out of space
    part-way. Unmounted (lazily: the export may still hold the image) at
    teardown."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    d = os.path.join(workdir, "small")
    os.mkdir(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "furing-test-small", d],
                   check=True, timeout=10)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d], timeout=10)


def test_growable_write_cut_short_by_enospc(small_tmpfs, furing):
    """A growable export whose image fills its filesystem part-way through
    one WRITE: the bytes acknowledged are in the image and the export's size
    covers them, so they read back through the mount at once."""
    size = 256 * KiB                                   # half the tmpfs
    img = os.path.join(small_tmpfs, "image.raw")
    with open(img, "wb") as g:
        g.write(pattern(size, 20))
    f = furing(img, writable=True, growable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(384 * KiB, 21)                      # more than the 256 KiB left
    n = os.pwrite(fd, data, size)
    assert 0 < n < len(data), f"expected a write cut short by ENOSPC, got {n} of {len(data)}"
    assert os.path.getsize(img) == size + n
    assert_same(os.pread(fd, len(data), size), data[:n], "acknowledged bytes read through the mount")
    time.sleep(1.2)                                    # past the 1 s attribute timeout: furing's size
    assert os.fstat(fd).st_size == size + n
    r = f.stop()
    assert r.rc == 0, r.stderr
    # one request, cut short inside the export (not split by the kernel)
    assert op_count(r.summary, "WRITE") == 1, r.summary


def test_open_o_trunc(furing, make_image):
    img = make_image(2 * MiB, "random", seed=14)
    f = furing(img, writable=True)
    fd = f.open(os.O_WRONLY | os.O_TRUNC)
    assert os.fstat(fd).st_size == 0
    assert os.path.getsize(img) == 0
    assert os.stat(f.mountpoint).st_size == 0
    f.close(fd)
    with open(f.mountpoint, "rb", buffering=0) as g:
        assert g.read(4096) == b""
    r = f.stop()
    assert r.rc == 0, r.stderr


@pytest.mark.parametrize("writable", [False, True], ids=["ro", "rw"])
def test_empty_image(furing, make_image, writable):
    img = make_image(0)
    f = furing(img, writable=writable)
    assert os.stat(f.mountpoint).st_size == 0
    fd = f.open(os.O_RDWR if writable else os.O_RDONLY)
    assert os.pread(fd, 4096, 0) == b""
    assert os.pread(fd, 1, 12345) == b""
    if writable:
        assert errno_of(os.pwrite, fd, b"x", 0) == errno.ENOSPC
        assert os.path.getsize(img) == 0
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_cache_kernel_mmap(furing, make_image):
    """--cache=kernel (beyond the core contract): page cache on the exported
    file, so mmap works; after msync/fsync the data is in the image."""
    size = 4 * MiB
    img = make_image(size, "random", seed=15)
    model = bytearray(read_file(img))
    f = furing(img, "--cache=kernel", writable=True)
    fd = f.open(os.O_RDWR)
    with mmap.mmap(fd, size) as m:
        assert_same(m[:size], bytes(model), "mmap read")
        d = pattern(10000, 16)
        m[5000:15000] = d
        model[5000:15000] = d
        m.flush()
    d2 = pattern(70000, 17)
    assert os.pwrite(fd, d2, 3 * MiB + 1) == len(d2)
    model[3 * MiB + 1:3 * MiB + 1 + len(d2)] = d2
    os.fsync(fd)
    assert_same(read_file(img), bytes(model), "backing after msync/fsync")
    assert_same(os.pread(fd, size, 0), bytes(model), "export after mmap writes")
    r = f.stop()
    assert r.rc == 0, r.stderr
