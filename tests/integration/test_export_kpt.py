"""`furing export --kernel-passthrough`: a read-only export's reads go
through the kernel's FUSE passthrough (the kernel reads the image itself),
when root and the kernel allow it; otherwise one line says why not and
furing serves as before. With `on`, a writable export's reads and writes
go through the kernel too."""

import mmap
import os
import random

import pytest

from furing_helpers import MiB, op_count, read_file

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0, reason="kernel passthrough needs root")]


def read_direct(path, size):
    """The whole file with O_DIRECT reads of 1 MiB (an aligned buffer)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, MiB)
    out = bytearray()
    try:
        while len(out) < size:
            n = os.preadv(fd, [buf], len(out))
            if n == 0:
                break
            out += buf[:n]
    finally:
        os.close(fd)
        buf.close()
    return bytes(out)


def test_readonly_export_reads_through_the_kernel(furing, make_image, transport):
    img = make_image(8 * MiB + 4096, "random", seed=21)
    f = furing(img, kernel_passthrough=True)
    assert os.path.getsize(f.mountpoint) == os.path.getsize(img)  # the size still comes from furing
    expected = read_file(img)
    assert read_direct(f.mountpoint, len(expected)) == expected
    assert read_file(f.mountpoint) == expected  # buffered, too
    with pytest.raises(OSError):
        os.open(f.mountpoint, os.O_WRONLY)  # still read-only
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert "reads through kernel passthrough" in r.stderr, r.stderr
    # Every byte read came from the kernel: no READ reached furing.
    assert op_count(r.summary, "READ") == 0, r.summary
    assert op_count(r.summary, "OPEN") >= 2, r.summary


def test_off_serves_reads_itself(furing, make_image, transport):
    img = make_image(2 * MiB, "random", seed=22)
    f = furing(img, "--kernel-passthrough=off")
    assert read_direct(f.mountpoint, 2 * MiB) == read_file(img)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert "kernel passthrough" not in r.stderr, r.stderr  # asked for off: nothing to say
    assert op_count(r.summary, "READ") > 0, r.summary


def test_writable_export_keeps_its_own_path(furing, make_image, transport):
    img = make_image(2 * MiB, "random", seed=23)
    f = furing(img, writable=True)
    assert read_direct(f.mountpoint, 2 * MiB) == read_file(img)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert "kernel passthrough" not in r.stderr, r.stderr
    assert op_count(r.summary, "READ") > 0, r.summary


def write_direct(fd, data, off):
    """One O_DIRECT write of data (a multiple of 4096) at off."""
    buf = mmap.mmap(-1, len(data))
    try:
        buf.write(data)
        assert os.pwritev(fd, [buf], off) == len(data)
    finally:
        buf.close()


def test_writable_on_writes_through_the_kernel(furing, make_image, transport):
    size = 8 * MiB
    img = make_image(size, "random", seed=25)
    model = bytearray(read_file(img))
    f = furing(img, "--kernel-passthrough=on", writable=True)
    rng = random.Random(26)
    fd = os.open(f.mountpoint, os.O_RDWR | os.O_DIRECT)
    try:
        for _ in range(40):
            n = 4096 * rng.randint(1, 64)
            off = 4096 * rng.randrange((size - n) // 4096 + 1)
            data = rng.randbytes(n)
            write_direct(fd, data, off)
            model[off:off + n] = data
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(f.mountpoint, "r+b") as fh:  # buffered, unaligned
        fh.seek(12345)
        fh.write(b"unaligned bytes")
    model[12345:12345 + 15] = b"unaligned bytes"
    assert os.path.getsize(f.mountpoint) == size
    assert read_direct(f.mountpoint, size) == bytes(model)
    assert read_file(img) == bytes(model)  # in the image itself, not only in a cache
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert "reads and writes through kernel passthrough" in r.stderr, r.stderr
    assert "extended" not in r.stderr, r.stderr
    # The kernel wrote the image itself: no READ or WRITE reached furing, and
    # security.capability was asked once (ENOSYS), not before every write.
    assert op_count(r.summary, "WRITE") == 0 and op_count(r.summary, "READ") == 0, r.summary
    assert op_count(r.summary, "GETXATTR") <= 1, r.summary
    assert read_file(img) == bytes(model)


def test_writable_on_write_past_the_end_is_reported(furing, make_image, transport):
    """The kernel does not hold passthrough writes to the export's size: a
    write past the end extends the image, and furing says so at exit."""
    size = 2 * MiB
    img = make_image(size, "random", seed=27)
    f = furing(img, "--kernel-passthrough=on", writable=True)
    fd = os.open(f.mountpoint, os.O_RDWR | os.O_DIRECT)
    try:
        write_direct(fd, bytes(range(256)) * 16, size)
    finally:
        os.close(fd)
    r = f.stop()
    assert r.rc == 0, r.stderr
    said = [l for l in r.stderr.splitlines() if "extended" in l]
    assert len(said) == 1 and said[0].startswith("furing: warning: ") and img in said[0], r.stderr
    assert f"to {size + 4096} bytes" in said[0] and f"(the export is {size})" in said[0], said[0]
    assert os.path.getsize(img) == size + 4096


@pytest.mark.parametrize("why", ["--growable", "--writethrough"])
def test_on_refused_where_it_cannot_work(cli, make_image, workdir, why):
    img = make_image(MiB, "random", seed=24)
    mp = os.path.join(workdir, "mp")
    r = cli(["export", "--writable", why, "--kernel-passthrough=on", img, mp], mountpoint=mp)
    assert r.rc == 1, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("furing: ")]
    assert len(lines) == 1 and "--kernel-passthrough=on" in lines[0] and why in lines[0], r.stderr
    assert not os.path.exists(mp) or not os.path.ismount(mp)


def test_bad_value(cli, image, workdir):
    r = cli(["export", "--kernel-passthrough=maybe", image, os.path.join(workdir, "mp")])
    assert r.rc == 2 and "--kernel-passthrough" in r.stderr, r.stderr
