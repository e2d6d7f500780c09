"""Linux 7.3's ring set-up (doc/design.md, "Buffer pools and zero-copy"):
with FUSE_HAS_IO_URING_BUFPOOL the queues share registered pools and every
entry registers only its header; without it (6.18) the serving line says
why and nothing changes. These tests run on both kernels: on this machine
(6.18) and inside the 7.3 VM (scripts/vm.sh, run by scripts/test.sh), each
asserting what its kernel must do."""

import mmap
import os
import re
import subprocess

import pytest

from pt_fixtures import passthrough_plain  # noqa: F401
from furing_helpers import MiB, assert_same, kernel_version, pattern, read_file, write_direct

pytestmark = pytest.mark.timeout(120)


def kernel_has_pools():
    """Linux 7.3 and later offer buffer pools (FUSE 7.46)."""
    return kernel_version() >= (7, 3)


def write_blocks(path, size, seed):
    """O_DIRECT writes of several sizes (below, at and past a pool buffer);
    returns [(offset, data)]."""
    done = []
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    try:
        for i, n in enumerate((4096, 65536, MiB, 2 * MiB)):
            off = (i * 3 * MiB) % (size - n)
            data = pattern(n, seed + i)
            write_direct(fd, data, off)
            done.append((off, data))
    finally:
        os.close(fd)
    return done


def assert_in_image(image, blocks):
    img = read_file(image)
    for off, data in blocks:
        assert_same(img[off:off + len(data)], data, f"image bytes at {off}")


def test_serving_line_names_the_buffer_mode(ring, make_image):
    img = make_image(16 * MiB)
    f = ring(img)
    blocks = write_blocks(f.mountpoint, 16 * MiB, 3)
    for off, data in blocks:
        with open(f.mountpoint, "rb", buffering=0) as g:
            g.seek(off)
            assert_same(g.read(len(data)), data, f"read back at {off}")
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert_in_image(img, blocks)
    if kernel_has_pools():
        # default: a quarter of depth 32, 1 MiB buffers, registered
        m = re.search(r"buffer pools: (\d+) queues? x 8 buffers x 1024 KiB = [\d.]+ MiB \((\d+) registered\)",
                      r.stderr)
        assert m and m.group(1) == m.group(2), r.stderr
    else:
        assert "no buffer pools: the kernel offers no io_uring buffer pools" in r.stderr, r.stderr


def test_a_pool_smaller_than_the_depth_serves_a_deep_queue(ring, make_image):
    """One buffer per queue, 32 entries: requests wait for the buffer, none fails."""
    img = make_image(64 * MiB)
    f = ring(img, "--buffer-pool-size=1M")
    job = ["fio", "--name=deep", f"--filename={f.mountpoint}", "--direct=1", "--rw=randwrite", "--bs=4k",
           "--iodepth=32", "--ioengine=io_uring", "--size=16M", "--verify=crc32c",
           "--do_verify=1", "--verify_state_save=0", "--group_reporting", "--output-format=terse"]
    p = subprocess.run(job, capture_output=True, text=True, timeout=90, cwd="/tmp")
    r = f.stop()
    assert p.returncode == 0, p.stderr
    # fio's io_uring engine polls once (ENOSYS): no other request may fail
    assert r.rc == 0 and r.summary["errors"] <= r.summary["ring_ops"].get("POLL", 0), r.stderr
    if kernel_has_pools():
        assert "x 1 buffers x 1024 KiB" in r.stderr, r.stderr


def test_buffer_pool_on_refuses_where_it_cannot_be_had(ring, make_image, furing_plain):
    img = make_image(16 * MiB)
    if kernel_has_pools():
        # threads > queues share a queue: no pool possible
        args = ("--buffer-pool=on", "--threads", str(os.cpu_count() * 2 + 1))
        why = "buffer_pool = on: "
    else:
        args = ("--buffer-pool=on",)
        why = "buffer_pool = on: the kernel offers no io_uring buffer pools"
    f = ring(img, *args, wait=False)
    r = f.wait_exit()
    assert r.rc != 0, r.stderr
    assert why in r.stderr, r.stderr


def test_buffer_pool_off_keeps_per_entry_buffers(ring, make_image):
    img = make_image(16 * MiB)
    f = ring(img, "--buffer-pool=off")
    blocks = write_blocks(f.mountpoint, 16 * MiB, 9)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert_in_image(img, blocks)
    assert "per-entry buffers: " in r.stderr and "buffer pools:" not in r.stderr, r.stderr


def test_zero_copy_reads_and_writes_reach_the_image(ring, make_image):
    """--zero-copy=on: WRITEs go from the caller's pages straight to the
    image (WRITE_FIXED), READs from the image straight into them
    (READ_FIXED), direct and through the page cache."""
    img = make_image(16 * MiB, fill="random", seed=77)
    if not kernel_has_pools():
        f = ring(img, "--zero-copy=on", wait=False)
        r = f.wait_exit()
        assert r.rc != 0 and "zero_copy = on: zero-copy needs buffer pools" in r.stderr, r.stderr
        return
    before = read_file(img)
    f = ring(img, "--zero-copy=on")
    # reads first, of an image furing has not written: the bytes can only
    # have come from READ_FIXED into the lent pages
    fd = os.open(f.mountpoint, os.O_RDONLY | os.O_DIRECT)
    try:
        for off, n in ((0, 4096), (5 * MiB, 65536), (3 * MiB, MiB), (9 * MiB, 2 * MiB)):
            buf = mmap.mmap(-1, n)
            assert os.preadv(fd, [buf], off) == n
            assert_same(bytes(buf), before[off:off + n], f"direct read at {off}")
    finally:
        os.close(fd)
    assert_same(read_file(f.mountpoint), before, "buffered read of the whole image")
    blocks = write_blocks(f.mountpoint, 16 * MiB, 21)
    r = f.stop()
    # only Python's isatty probe (an IOCTL) may fail
    assert r.rc == 0 and r.summary["errors"] <= r.summary["ring_ops"].get("IOCTL", 0), r.stderr
    assert re.search(r"zero-copy on [1-9]\d* queue", r.stderr), r.stderr
    assert_in_image(img, blocks)


def test_zero_copy_is_the_default_where_offered(ring, make_image):
    img = make_image(16 * MiB, fill="random", seed=5)
    f = ring(img)
    data = read_file(f.mountpoint)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert_same(data, read_file(img), "read through the default mode")
    if kernel_has_pools() and os.geteuid() == 0:
        assert re.search(r"zero-copy on [1-9]\d* queue", r.stderr), r.stderr
    else:
        assert "zero-copy on" not in r.stderr, r.stderr


def test_passthrough_zero_copy_reads_and_writes(passthrough_plain, uring_state, workdir):
    """`furing passthrough --backend-io=ring` (tmpfs SOURCE would be served
    inline otherwise): with zero-copy, SOURCE's bytes go to and from the
    callers' pages by READ_FIXED/WRITE_FIXED."""
    if uring_state != "Y":
        pytest.skip("FUSE-over-io_uring cannot be enabled here")
    src = os.path.join(workdir, "zsrc")
    os.makedirs(src)
    orig = pattern(3 * MiB + 123, 41)
    with open(os.path.join(src, "a"), "wb") as g:
        g.write(orig)
    want = "--zero-copy=on" if kernel_has_pools() else "--zero-copy=off"
    p = passthrough_plain("--backend-io=ring", want, source=src, transport_args=["--io-uring=on"])
    a = os.path.join(p.mountpoint, "a")
    assert_same(read_file(a), orig, "read of SOURCE's file")
    new = pattern(2 * MiB + 7, 42)
    with open(os.path.join(p.mountpoint, "b"), "wb") as g:
        g.write(new)
        g.flush()
        os.fsync(g.fileno())
    with open(a, "r+b") as g:
        g.seek(MiB)
        g.write(b"z" * 5000)
    r = p.stop()
    # (LOOKUP of the new name, GETXATTR and IOCTL fail as they should)
    assert r.rc == 0, r.stderr
    assert_same(read_file(os.path.join(src, "b")), new, "SOURCE's new file")
    expect = orig[:MiB] + b"z" * 5000 + orig[MiB + 5000:]
    assert_same(read_file(os.path.join(src, "a")), expect, "SOURCE's changed file")
    if kernel_has_pools():
        assert re.search(r"zero-copy on [1-9]\d* queue", r.stderr), r.stderr
