"""`furing export --kernel-passthrough`: a read-only export's reads go
through the kernel's FUSE passthrough (the kernel reads the image itself),
when root and the kernel allow it; otherwise one line says why not and
furing serves as before."""

import mmap
import os

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


def test_on_refused_where_it_cannot_work(cli, make_image, workdir):
    img = make_image(MiB, "random", seed=24)
    mp = os.path.join(workdir, "mp")
    r = cli(["export", "--writable", "--kernel-passthrough=on", img, mp], mountpoint=mp)
    assert r.rc == 1, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("furing: ")]
    assert len(lines) == 1 and "--kernel-passthrough=on" in lines[0] and "writable" in lines[0], r.stderr
    assert not os.path.exists(mp) or not os.path.ismount(mp)


def test_bad_value(cli, image, workdir):
    r = cli(["export", "--kernel-passthrough=maybe", image, os.path.join(workdir, "mp")])
    assert r.rc == 2 and "--kernel-passthrough" in r.stderr, r.stderr
