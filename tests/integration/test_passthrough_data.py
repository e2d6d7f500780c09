"""The data path of `furing passthrough` where SOURCE's filesystem is strict:
an ext4 SOURCE (loop-mounted, pt_fixtures.ext4_source), over both
transports and in each cache mode.

- O_DIRECT: a file opened O_DIRECT through the mount is opened O_DIRECT on
  SOURCE, which then takes only aligned buffers and offsets. Reads, writes
  and copy_file_range all go through a request's buffer (furing.h promises
  it page-aligned for them); each must give what ext4 itself gives.
- SEEK_DATA/SEEK_HOLE must count data written a moment ago, even while the
  writeback cache (--cache=always) still holds it in the kernel."""

import errno
import mmap
import os

import pytest

from pt_fixtures import ext4_source, passthrough, server_fd_flags  # noqa: F401

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop mount, mounts)"),
]

KiB = 1024
MiB = 1 << 20
MODES = [["--cache=none"], ["--cache=auto"], ["--cache=always"]]
MODE_IDS = ["none", "auto", "always"]


def pattern(n, seed):
    """n bytes that differ at every 4 KiB and from seed to seed."""
    block = bytes((seed * 7 + i * 13) & 0xff for i in range(251))
    out = bytearray((block * (n // len(block) + 1))[:n])
    for off in range(0, n, 4 * KiB):
        out[off:off + 4] = (off // (4 * KiB) + seed * 100003).to_bytes(4, "little")
    return bytes(out)


def aligned(data):
    """A page-aligned copy of data (anonymous mmap), as O_DIRECT wants."""
    m = mmap.mmap(-1, len(data))
    m.write(data)
    return m


def pwrite_direct(fd, data, off):
    assert os.pwritev(fd, [aligned(data)], off) == len(data)


def pread_direct(fd, n, off):
    m = mmap.mmap(-1, n)
    got = os.preadv(fd, [m], off)
    return m[:got]


def copy_all(fd_in, off_in, fd_out, off_out, n):
    """copy_file_range until n bytes are copied (a copy may come back short)."""
    done = 0
    while done < n:
        k = os.copy_file_range(fd_in, fd_out, n - done, off_in + done, off_out + done)
        assert k > 0, f"copy_file_range returned {k} after {done} of {n} bytes"
        done += k


def open_direct(path):
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)


def assert_source_direct(pt, source_file):
    # The node's O_PATH handle aside: the open file's descriptor.
    flags = [f for f in server_fd_flags(pt, source_file) if not f & os.O_PATH]
    assert flags and all(f & os.O_DIRECT for f in flags), \
        f"SOURCE's {source_file} is not open O_DIRECT in the server: flags {[oct(f) for f in flags]}"


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_direct_read_write_copy(ext4_source, passthrough, transport, mode):
    """The issue's case (a copy within one O_DIRECT file: 28672 on ext4, it
    was EINVAL over /dev/fuse) and the same three kinds of I/O at sizes
    above one request's buffer, between two O_DIRECT files."""
    pt = passthrough(*mode, source=ext4_source)
    a, b = os.path.join(pt.mountpoint, "a"), os.path.join(pt.mountpoint, "b")
    want_a = bytearray(pattern(0x30000, 1))
    fa = open_direct(a)
    try:
        assert_source_direct(pt, os.path.join(ext4_source, "a"))
        pwrite_direct(fa, bytes(want_a), 0)
        assert pread_direct(fa, 0x30000, 0) == want_a
        assert os.copy_file_range(fa, fa, 0x7000, 0xe000, 0x21000) == 0x7000
        want_a[0x21000:0x28000] = want_a[0xe000:0x15000]
        assert pread_direct(fa, 0x30000, 0) == want_a
    finally:
        os.close(fa)

    # 3 MiB + 3 pages: several max_write requests, several copy chunks.
    n = 3 * MiB + 12 * KiB
    big = pattern(n + 8 * KiB, 2)
    fa, fb = open_direct(a), open_direct(b)
    try:
        pwrite_direct(fa, big, 0)
        assert pread_direct(fa, n, 4 * KiB) == big[4 * KiB:4 * KiB + n]
        copy_all(fa, 8 * KiB, fb, 4 * KiB, n)
        assert pread_direct(fb, n + 4 * KiB, 0) == bytes(4 * KiB) + big[8 * KiB:8 * KiB + n]
    finally:
        os.close(fa)
        os.close(fb)
    with open(os.path.join(ext4_source, "b"), "rb") as f:
        assert f.read() == bytes(4 * KiB) + big[8 * KiB:8 * KiB + n], "SOURCE does not hold the copy"
    r = pt.stop()
    assert r.rc == 0, r.stderr
    ops = r.summary["ring_ops"] if transport == "ring" else r.summary["dev_ops"]
    assert ops.get("COPY_FILE_RANGE_64", 0) + ops.get("COPY_FILE_RANGE", 0) > 0, ops


def seeks(fd, off):
    """(SEEK_DATA, SEEK_HOLE) from off, an errno name where one fails."""
    out = []
    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
        try:
            out.append(os.lseek(fd, off, whence))
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    return tuple(out)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_seek_data_hole_count_cached_writes(ext4_source, passthrough, transport, mode):
    """64 KiB written, then SEEK_DATA/SEEK_HOLE at once, as ext4 answers
    them: (0, 65536). Under the writeback cache SOURCE did not have the data
    yet and both failed ENXIO until an fsync."""
    pt = passthrough(*mode, source=ext4_source)
    path = os.path.join(pt.mountpoint, "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.pwrite(fd, b"x" * (64 * KiB), 0)
        assert seeks(fd, 0) == (0, 64 * KiB), "before fsync"
        assert seeks(fd, 64 * KiB) == ("ENXIO", "ENXIO"), "at the end, before fsync"
        os.fsync(fd)
        assert seeks(fd, 0) == (0, 64 * KiB), "after fsync"
        # Data after a hole: SEEK_DATA may find it where it is (SOURCE's
        # extents) or take the hole for data (POSIX allows that; the kernel's
        # own answer under the writeback cache), never past it.
        os.pwrite(fd, b"y" * (4 * KiB), MiB)
        data, hole = seeks(fd, 64 * KiB)
        assert 64 * KiB <= data <= MiB and hole in (64 * KiB, MiB + 4 * KiB), (data, hole)
        assert seeks(fd, MiB) == (MiB, MiB + 4 * KiB)
        if mode != ["--cache=always"]:
            # Written through: SOURCE's extents are the answer, holes and all.
            assert (data, hole) == (MiB, 64 * KiB)
    finally:
        os.close(fd)
    r = pt.stop()
    assert r.rc == 0, r.stderr
