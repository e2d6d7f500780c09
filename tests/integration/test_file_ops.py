"""truncate/ftruncate, fallocate, SEEK_DATA/SEEK_HOLE and statvfs on the
exported file. Runs under both transports."""

import errno
import os

import pytest

from furing_helpers import (
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, KiB, MiB,
    assert_same, errno_of, fallocate, pattern, read_file,
)

pytestmark = pytest.mark.timeout(20)

REFUSED_RO = (errno.EROFS, errno.EACCES, errno.EPERM)
REFUSED_GROW = (errno.EFBIG, errno.EPERM)


def sizes(f, fd=None):
    """(size seen through the mount, size of the backing file)"""
    st = os.fstat(fd) if fd is not None else os.stat(f.mountpoint)
    return st.st_size, os.path.getsize(f.image)


@pytest.mark.parametrize("mode", ["ro", "rw", "rw+grow"])
def test_truncate(furing, make_image, mode):
    size = 4 * MiB
    img = make_image(size, "random", seed=20)
    orig = read_file(img)
    f = furing(img, writable=mode != "ro", growable=mode == "rw+grow")
    if mode == "ro":
        for new in (MiB, 8 * MiB, 0):
            e = errno_of(os.truncate, f.mountpoint, new)
            assert e in REFUSED_RO, f"truncate({new}) on a read-only export: errno {e}"
        assert sizes(f) == (size, size)
        assert read_file(img) == orig
    else:
        os.truncate(f.mountpoint, 3 * MiB)                      # shrink by path
        assert sizes(f) == (3 * MiB, 3 * MiB)
        fd = f.open(os.O_RDWR)
        os.ftruncate(fd, 2 * MiB + 123)                          # shrink by fd, unaligned
        new = 2 * MiB + 123
        assert sizes(f, fd) == (new, new)
        assert_same(read_file(img), orig[:new], "backing after shrinking")
        assert_same(os.pread(fd, 3 * MiB, 0), orig[:new], "export after shrinking")
        if mode == "rw":
            for grow in (lambda: os.ftruncate(fd, 6 * MiB),
                         lambda: os.truncate(f.mountpoint, new + 1)):
                e = errno_of(grow)
                assert e in REFUSED_GROW, f"growing a non-growable export: errno {e}"
            assert sizes(f, fd) == (new, new)
        else:
            os.ftruncate(fd, 6 * MiB)
            assert sizes(f, fd) == (6 * MiB, 6 * MiB)
            os.truncate(f.mountpoint, 7 * MiB + 5)
            assert sizes(f, fd) == (7 * MiB + 5, 7 * MiB + 5)
            expect = orig[:new] + bytes(7 * MiB + 5 - new)
            assert_same(read_file(img), expect, "backing after growing")
            assert_same(os.pread(fd, 8 * MiB, 0), expect, "export after growing")
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_fallocate_punch_hole(furing, make_image):
    size = 8 * MiB
    img = make_image(size, "random", seed=21)
    model = bytearray(read_file(img))
    f = furing(img, writable=True)
    fd = f.open(os.O_RDWR)
    with open(img, "rb") as g:
        os.fsync(g.fileno())
    blocks_before = os.stat(img).st_blocks
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MiB, 2 * MiB)
    model[MiB:3 * MiB] = bytes(2 * MiB)
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5 * MiB + 100, 5000)  # unaligned
    model[5 * MiB + 100:5 * MiB + 5100] = bytes(5000)
    assert sizes(f, fd) == (size, size)
    assert_same(os.pread(fd, size, 0), bytes(model), "export after punch hole")
    assert_same(read_file(img), bytes(model), "backing after punch hole")
    blocks_after = os.stat(img).st_blocks
    assert blocks_after <= blocks_before - (2 * MiB) // 512 + 64, \
        f"backing st_blocks {blocks_before} -> {blocks_after}: hole not punched in the image"
    r = f.stop()
    assert r.rc == 0, r.stderr


@pytest.mark.parametrize("keep", [True, False], ids=["keep-size", "no-keep"])
def test_fallocate_zero_range(furing, make_image, keep):
    size = 4 * MiB
    img = make_image(size, "random", seed=22)
    model = bytearray(read_file(img))
    f = furing(img, writable=True)
    fd = f.open(os.O_RDWR)
    mode = FALLOC_FL_ZERO_RANGE | (FALLOC_FL_KEEP_SIZE if keep else 0)
    fallocate(fd, mode, 12345, 100000)
    model[12345:112345] = bytes(100000)
    fallocate(fd, mode, 2 * MiB, MiB)
    model[2 * MiB:3 * MiB] = bytes(MiB)
    assert sizes(f, fd) == (size, size)
    assert_same(os.pread(fd, size, 0), bytes(model), "export after zero range")
    assert_same(read_file(img), bytes(model), "backing after zero range")
    r = f.stop()
    assert r.rc == 0, r.stderr


@pytest.mark.parametrize("growable", [False, True], ids=["fixed", "growable"])
def test_fallocate_allocate(furing, make_image, growable):
    size = 8 * MiB
    img = make_image(size)                               # sparse
    f = furing(img, writable=True, growable=growable)
    fd = f.open(os.O_RDWR)
    blocks0 = os.stat(img).st_blocks
    fallocate(fd, 0, MiB, 2 * MiB)                       # inside: allocates
    assert os.stat(img).st_blocks >= blocks0 + (2 * MiB) // 512, "mode 0 did not allocate"
    assert sizes(f, fd) == (size, size)
    assert os.pread(fd, 2 * MiB, MiB) == bytes(2 * MiB)
    if growable:
        fallocate(fd, 0, size + MiB, MiB)
        assert sizes(f, fd) == (size + 2 * MiB, size + 2 * MiB)
        assert os.pread(fd, 3 * MiB, size - MiB) == bytes(3 * MiB)
    else:
        e = errno_of(fallocate, fd, 0, size + MiB, MiB)
        assert e is not None, "fallocate past the end of a non-growable export succeeded"
        assert sizes(f, fd) == (size, size)
    r = f.stop()
    assert r.rc == 0, r.stderr


def _seek(fd, off, whence):
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return f"errno {errno.errorcode.get(e.errno, e.errno)}"


def test_seek_data_hole(furing, make_image):
    size = 16 * MiB
    img = make_image(size)
    regions = [(MiB, 64 * KiB), (8 * MiB + 4 * KiB, 8 * KiB), (12 * MiB, MiB)]
    with open(img, "r+b") as g:
        for off, n in regions:
            g.seek(off)
            g.write(pattern(n, off))
    bfd = os.open(img, os.O_RDONLY)
    try:
        if _seek(bfd, 0, os.SEEK_DATA) != MiB:
            pytest.skip("backing filesystem does not report holes")
        f = furing(img)
        fd = f.open(os.O_RDONLY)
        offsets = [0, 1, MiB - 1, MiB, MiB + 100, MiB + 64 * KiB, 5 * MiB, 8 * MiB,
                   8 * MiB + 6 * KiB, 8 * MiB + 12 * KiB, 10 * MiB, 12 * MiB + 5,
                   13 * MiB, size - 1, size, size + MiB]
        for off in offsets:
            for whence, name in ((os.SEEK_DATA, "SEEK_DATA"), (os.SEEK_HOLE, "SEEK_HOLE")):
                want = _seek(bfd, off, whence)
                got = _seek(fd, off, whence)
                assert got == want, f"lseek({off}, {name}) = {got}, backing file says {want}"
    finally:
        os.close(bfd)
    r = f.stop()
    assert r.rc == 0, r.stderr


def test_statvfs(furing, image):
    f = furing(image)
    got = os.statvfs(f.mountpoint)
    want = os.statvfs(os.path.dirname(image))
    assert got.f_bsize == want.f_bsize
    assert got.f_frsize == want.f_frsize
    assert got.f_blocks == want.f_blocks
    assert got.f_files == want.f_files
    slack = max(want.f_blocks // 100, 1024)
    assert abs(got.f_bfree - want.f_bfree) <= slack, (got, want)
    assert abs(got.f_bavail - want.f_bavail) <= slack, (got, want)
    r = f.stop()
    assert r.rc == 0, r.stderr
