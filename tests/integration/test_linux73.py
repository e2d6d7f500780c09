"""Linux 7.3's ring set-up (doc/design.md, "Buffer pools and zero-copy"):
with FUSE_HAS_IO_URING_BUFPOOL the queues share registered pools and every
entry registers only its header; without it (6.18) the serving line says
why and nothing changes. These tests run on both kernels: on this machine
(6.18) and inside the 7.3 VM (scripts/vm.sh, run by scripts/test.sh), each
asserting what its kernel must do."""

import os
import re
import subprocess

import pytest

from furing_helpers import MiB, assert_same, pattern, read_file, write_direct

pytestmark = pytest.mark.timeout(120)


def kernel_has_pools():
    """Linux 7.3 and later offer buffer pools (FUSE 7.46)."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    major, minor = int(m.group(1)), int(m.group(2))
    return (major, minor) >= (7, 3)


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


def test_zero_copy_writes_reach_the_image(ring, make_image):
    """--zero-copy=on: WRITEs go from the caller's pages straight to the
    image (WRITE_FIXED). Reads stay off this test: on 7.3-rc7 the
    READ_FIXED of a lent READ fails (doc/design.md)."""
    img = make_image(16 * MiB)
    if not kernel_has_pools():
        f = ring(img, "--zero-copy=on", wait=False)
        r = f.wait_exit()
        assert r.rc != 0 and "zero_copy = on: zero-copy needs buffer pools" in r.stderr, r.stderr
        return
    f = ring(img, "--zero-copy=on")
    blocks = write_blocks(f.mountpoint, 16 * MiB, 21)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert re.search(r"zero-copy on [1-9]\d* queue", r.stderr), r.stderr
    assert_in_image(img, blocks)
