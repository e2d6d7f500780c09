"""`furing export --kernel-passthrough`: a read-only export's reads go
through the kernel's FUSE passthrough (the kernel reads the image itself),
when root and the kernel allow it; otherwise one line says why not and
furing serves as before. With `on`, a writable export's reads and writes
go through the kernel too."""

import os
import random
import subprocess

import pytest

from furing_helpers import MiB, op_count, read_direct, read_file, write_direct

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0, reason="kernel passthrough needs root")]


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
    """auto (the default) leaves a writable export's I/O to furing."""
    img = make_image(2 * MiB, "random", seed=23)
    f = furing(img, writable=True, kernel_passthrough=True)
    assert read_direct(f.mountpoint, 2 * MiB) == read_file(img)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert "kernel passthrough" not in r.stderr, r.stderr
    assert op_count(r.summary, "READ") > 0, r.summary


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
    assert op_count(r.summary, "FSYNC") >= 1, r.summary  # durability stays furing's job
    assert read_file(img) == bytes(model)


def test_writable_on_follows_the_file_it_opened(furing, make_image, workdir, transport):
    """The kernel is given the image furing opened at start, not whatever
    the path names at the first open: a file put in its place gets nothing."""
    size = 2 * MiB
    img = make_image(size, "random", seed=28)
    original = read_file(img)
    f = furing(img, "--kernel-passthrough=on", writable=True)
    moved = os.path.join(workdir, "moved.raw")
    os.rename(img, moved)
    with open(img, "wb") as impostor:
        impostor.write(bytes(size))
    fd = os.open(f.mountpoint, os.O_RDWR | os.O_DIRECT)
    try:
        write_direct(fd, b"\xab" * 4096, 0)
    finally:
        os.close(fd)
    assert read_file(f.mountpoint)[:4096] == b"\xab" * 4096
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert read_file(moved) == b"\xab" * 4096 + original[4096:]
    assert read_file(img) == bytes(size), "the file now at the path was written"


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


@pytest.fixture
def loop_device(make_image):
    """A loop device over a 4 MiB image: a block device to export."""
    img = make_image(4 * MiB, "random", seed=29)
    dev = subprocess.run(["losetup", "--find", "--show", img], check=True, capture_output=True,
                         text=True, timeout=20).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False, timeout=20)


def test_block_device_says_why_not(furing, cli, loop_device, workdir, transport):
    """The kernel passes through to regular files only: a block device is
    served by furing, with one line saying why (auto), or refused (on)."""
    f = furing(loop_device, kernel_passthrough=True)
    data = read_direct(f.mountpoint, 4 * MiB)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert "kernel passthrough off: the image is a block device" in r.stderr, r.stderr
    assert "failed" not in r.stderr, r.stderr
    assert op_count(r.summary, "READ") > 0, r.summary
    with open(loop_device, "rb") as dev:
        assert data == dev.read(4 * MiB)
    mp = os.path.join(workdir, "mp-bd")
    r = cli(["export", "--writable", "--kernel-passthrough=on", loop_device, mp], mountpoint=mp)
    assert r.rc == 1, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("furing: ")]
    assert len(lines) == 1 and "block device" in lines[0], r.stderr


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
