"""`furing daemon` with NBD and qemu-nbd (--format) exports: several in one
process keep their own connection state, their own qemu-nbd, and their own
messages (each line names its export)."""

import errno
import glob
import os
import time

import pytest

from furing_helpers import assert_same, errno_of, pattern, wait_for
from nbd_servers import qemu_img
from test_daemon import MiB, daemon, error_class  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(90)

SIZE = 16 * MiB


def lines_with(d, text):
    return [l for l in d.stderr().splitlines() if text in l]


def test_two_nbd_exports_keep_their_own_state(daemon, servers, workdir):
    """Two NBD exports of two servers in one daemon: data stays apart; when
    one server dies only that export fails (EIO) and says so, once, under its
    own id, while the other goes on serving; the server's return is noticed
    for that export alone."""
    d = daemon()
    a, b = servers.nbdkit("memory", SIZE), servers.nbdkit("memory", SIZE)
    ma, mb = os.path.join(workdir, "a.img"), os.path.join(workdir, "b.img")
    d.add("a", a.uri, ma, writable=True, timeout=5)
    d.add("b", b.uri, mb, writable=True, timeout=5)
    fa, fb = os.open(ma, os.O_RDWR), os.open(mb, os.O_RDWR)
    try:
        da, db = pattern(MiB, 1), pattern(MiB, 2)
        os.pwrite(fa, da, 0)
        os.pwrite(fb, db, 0)
        assert_same(os.pread(fa, MiB, 0), da, "export a")
        assert_same(os.pread(fb, MiB, 0), db, "export b")

        a.kill()
        wait_for(lambda: errno_of(os.pread, fa, 4096, 0) == errno.EIO, 10, interval=0.2,
                 what="EIO from the export whose server died")
        assert_same(os.pread(fb, MiB, 0), db, "export b after a's server died")
        os.pwrite(fb, da, MiB)
        assert_same(os.pread(fb, MiB, MiB), da, "a write to export b after a's server died")
        wait_for(lambda: lines_with(d, "NBD server lost"), 5, what="the 'lost' line")
        lost = lines_with(d, "NBD server lost")
        assert len(lost) == 1 and "[a]" in lost[0], d.stderr()

        servers.restart(a)
        wait_for(lambda: errno_of(os.pread, fa, 4096, 0) is None, 15, interval=0.2, what="reconnect of a")
        wait_for(lambda: lines_with(d, "NBD server back"), 5, what="the 'back' line")
        back = lines_with(d, "NBD server back")
        assert len(back) == 1 and "[a]" in back[0], d.stderr()
        assert not [l for l in d.stderr().splitlines() if "[b]" in l and "NBD server" in l], d.stderr()
    finally:
        os.close(fa)
        os.close(fb)
    for i in ("a", "b"):
        r = d.request("export-del", id=i, mode="safe")
        assert "return" in r, r


def test_qcow2_exports_each_have_their_qemu_nbd(daemon, workdir):
    """Two qcow2 exports (format=qcow2): each starts its own qemu-nbd; removing
    one stops its qemu-nbd and removes its private directory while the other
    serves; what was written reaches the qcow2 image."""
    before = set(glob.glob("/tmp/furing-qemu-nbd-*"))
    d = daemon()
    imgs = []
    for n in ("x", "y"):
        img = os.path.join(workdir, f"{n}.qcow2")
        r = qemu_img("create", "-q", "-f", "qcow2", img, SIZE)
        assert r.returncode == 0, r.stdout
        imgs.append(img)
    mx, my = os.path.join(workdir, "x.img"), os.path.join(workdir, "y.img")
    d.add("x", imgs[0], mx, writable=True, format="qcow2")
    d.add("y", imgs[1], my, writable=True, format="qcow2")
    dirs = set(glob.glob("/tmp/furing-qemu-nbd-*")) - before
    assert len(dirs) == 2, dirs

    data = pattern(256 * 1024, 7)
    fd = os.open(mx, os.O_RDWR)
    try:
        os.pwrite(fd, data, 3 * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    r = d.request("export-del", id="x", mode="safe")
    assert "return" in r, r
    wait_for(lambda: len(set(glob.glob("/tmp/furing-qemu-nbd-*")) - before) == 1, 10,
             what="x's qemu-nbd directory removed")
    fd = os.open(my, os.O_RDWR)
    try:
        os.pwrite(fd, data, 0)
        assert_same(os.pread(fd, len(data), 0), data, "export y after x was removed")
    finally:
        os.close(fd)
    c = qemu_img("compare", "-f", "raw", "-F", "qcow2", write_expected(workdir, data), imgs[0])
    assert c.returncode == 0, c.stdout.decode(errors="replace")
    r = d.request("export-del", id="y", mode="safe")
    assert "return" in r, r
    wait_for(lambda: not set(glob.glob("/tmp/furing-qemu-nbd-*")) - before, 10, what="every qemu-nbd gone")


def write_expected(workdir, data):
    """A raw image of SIZE zeros with data at 3 MiB: what x.qcow2 must hold."""
    path = os.path.join(workdir, "x-expected.raw")
    with open(path, "wb") as f:
        f.truncate(SIZE)
        f.seek(3 * MiB)
        f.write(data)
    return path


def test_nbd_source_errors(daemon, workdir):
    """An NBD URI needs no absolute path but a server: none there is a
    Failed reply, and the daemon goes on."""
    d = daemon()
    r = d.request("export-add", id="n", type="export", mountpoint=os.path.join(workdir, "n.img"),
                  source=f"nbd+unix:///?socket={workdir}/nobody.sock")
    assert error_class(r) == "Failed", r
    r = d.request("export-add", id="n", type="export", mountpoint=os.path.join(workdir, "n.img"),
                  source="nbd+unix:///?socket=x.sock", format="qcow2")
    assert error_class(r) == "InvalidArgument", r       # --format is for image files
    assert d.request("query-exports")["return"]["exports"] == []
