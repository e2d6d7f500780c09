"""The Ceph RBD backend: `furing export rbd:POOL/IMAGE...` against a real
one-node cluster (tests/ceph/cluster.sh: mon, mgr, one bluestore OSD, cephx)
that the session starts once and tears down at the end. A cluster that
cannot start fails these tests (it is installed by scripts/setup.sh), it
never skips them. Data written through furing is read back with
`rbd export`, the other client; faults (an unreachable cluster, a wrong
key, an OSD stopped under I/O) must give one line or EIO within --timeout,
never a hang."""

import errno
import os
import random
import shutil
import signal
import subprocess
import threading
import time

import pytest

from furing_helpers import (
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, MiB, assert_no_crash,
    assert_one_error_line, assert_same, errno_of, fallocate, mounts_at, pattern, wait_for,
)
from test_daemon import daemon, error_class  # noqa: F401 (fixture)
from test_fio import run_fio

pytestmark = pytest.mark.timeout(60)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SH = os.path.join(REPO, "tests", "ceph", "cluster.sh")
SIZE = 64 * MiB
OBJ = 4 * MiB  # rbd's default object size


class Cluster:
    def __init__(self, d):
        self.dir = d
        self.conf = os.path.join(d, "ceph.conf")
        self.n = 0

    def rbd(self, *args, input=None, timeout=60):
        r = subprocess.run(["rbd", "-c", self.conf] + [str(a) for a in args], input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        assert r.returncode == 0, f"rbd {' '.join(map(str, args))}: {r.stderr.decode(errors='replace')}"
        return r.stdout

    def image(self, size=SIZE, pool="rbd"):
        """A new, empty image: its name (POOL/NAME)."""
        self.n += 1
        name = f"{pool}/img{self.n}-{os.getpid()}"
        self.rbd("create", "--size", f"{size // MiB}M", name)
        return name

    def spec(self, name, **opts):
        opts.setdefault("conf", self.conf)
        return "rbd:" + name + "".join(f":{k}={v}" for k, v in opts.items())

    def export(self, name):
        """The image's bytes, read by another client (rbd export)."""
        return self.rbd("export", "--no-progress", name, "-")

    def osd_pid(self):
        with open(os.path.join(self.dir, "run", "osd.0.pid")) as f:
            return int(f.read())


@pytest.fixture(scope="session")
def ceph(session_base):
    d = os.path.join(session_base, "ceph")
    r = subprocess.run([CLUSTER_SH, "start", d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
    if r.returncode != 0:
        log = ""
        p = os.path.join(d, "log", "setup.log")
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                log = f.read()[-2000:]
        subprocess.run([CLUSTER_SH, "stop", d], timeout=60)
        pytest.fail(f"the test Ceph cluster did not start: {r.stdout.decode(errors='replace')}\n{log}",
                    pytrace=False)
    c = Cluster(d)
    yield c
    subprocess.run([CLUSTER_SH, "stop", d], timeout=60)


def check_stop(f):
    r = f.stop()
    assert r.rc == 0, r.stderr[-2000:]
    return r


def random_writes(fd, size, n, seed, model):
    rng = random.Random(seed)
    for i in range(n):
        length = rng.choice([1, 512, 4096, 4097, 65536, 300000, MiB + 5])
        off = rng.randrange(0, size - length)
        data = pattern(length, seed * 1000 + i)
        assert os.pwrite(fd, data, off) == length
        model[off:off + length] = data


# ---------------------------------------------------------------- data

def test_rbd_written_data_read_back_by_rbd_export(ceph, furing, transport):
    """What furing acknowledged is in the image after a clean stop, as
    another client (rbd export) reads it; and furing reads it back too."""
    name = ceph.image()
    f = furing(ceph.spec(name), writable=True)
    assert os.stat(f.mountpoint).st_size == SIZE
    wait_for(lambda: "librbd, exclusive lock" in f.stderr_text(), 5, what="the serving line")
    # /proc/mounts (world-readable) names the image, not its options
    assert [m.source for m in mounts_at(f.mountpoint)] == ["rbd:" + name]
    model = bytearray(SIZE)
    fd = f.open(os.O_RDWR)
    random_writes(fd, SIZE, 30, 7, model)
    for off, n in [(0, 4096), (12345, 777), (SIZE - 1, 1), (3 * MiB, 2 * MiB)]:
        assert_same(os.pread(fd, n, off), bytes(model[off:off + n]), f"read {off}+{n}")
    check_stop(f)
    assert_same(ceph.export(name), bytes(model), "rbd export after the stop")


@pytest.mark.timeout(90)
def test_rbd_fio_verify(ceph, furing, transport, workdir):
    """fio's crc32c verify at iodepth 32 (many requests in flight on
    librbd), then the image as rbd export sees it is what the mount shows."""
    name = ceph.image()
    f = furing(ceph.spec(name), writable=True)
    run_fio("rbd-randwrite", f.mountpoint, ["--rw=randwrite", "--bssplit=4k/50:64k/30:1m/20", "--blockalign=4k",
                                           "--io_size=16m"], workdir, timeout=75)
    fd = f.open(os.O_RDONLY)
    via_mount = os.pread(fd, SIZE, 0)
    check_stop(f)
    assert_same(ceph.export(name), via_mount, "rbd export vs the mount after fio")


def test_rbd_read_only_by_default(ceph, furing, transport):
    name = ceph.image()
    data = pattern(SIZE, 3)
    ceph.rbd("import", "--no-progress", "-", name + "-ro", input=data)
    f = furing(ceph.spec(name + "-ro"))
    wait_for(lambda: "read-only, librbd" in f.stderr_text(), 5, what="the serving line")
    assert errno_of(os.open, f.mountpoint, os.O_RDWR) in (errno.EACCES, errno.EROFS)
    fd = f.open(os.O_RDONLY)
    assert_same(os.pread(fd, SIZE, 0), data, "read-only export")
    check_stop(f)


def test_rbd_writethrough(ceph, furing, transport):
    """--writethrough: each write flushed before its answer; the data is there."""
    name = ceph.image()
    f = furing(ceph.spec(name), "--writethrough", writable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(3 * MiB, 11)
    assert os.pwrite(fd, data, MiB) == len(data)
    os.fsync(fd)
    check_stop(f)
    assert_same(ceph.export(name)[MiB:4 * MiB], data, "written through")


def test_rbd_namespace_and_client_id(ceph, furing_plain, workdir):
    """POOL/NAMESPACE/IMAGE, with a client of its own (id=, keyring=)
    whose caps are rbd's profile for that pool only."""
    ceph.rbd("namespace", "create", "rbd/ns1")
    keyring = os.path.join(workdir, "furing.keyring")
    r = subprocess.run(["ceph", "-c", ceph.conf, "auth", "get-or-create", "client.furing", "mon", "profile rbd",
                        "osd", "profile rbd pool=rbd", "-o", keyring], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    name = ceph.image(size=8 * MiB, pool="rbd/ns1")
    f = furing_plain(ceph.spec(name, id="furing", keyring=keyring), writable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(8 * MiB, 5)
    assert os.pwrite(fd, data, 0) == len(data)
    check_stop(f)
    assert_same(ceph.export(name), data, "the namespace's image")


# ---------------------------------------------------------------- snapshots, locks

def test_rbd_snapshot_read_only(ceph, furing_plain, cli, workdir):
    """A snapshot shows the image as it was, read-only; --writable is refused."""
    name = ceph.image()
    before = pattern(SIZE, 21)
    f = furing_plain(ceph.spec(name), writable=True)
    fd = f.open(os.O_RDWR)
    assert os.pwrite(fd, before, 0) == SIZE
    ceph.rbd("snap", "create", name + "@s1")
    assert os.pwrite(fd, b"after" * 1000, 0) == 5000  # the image moves on, the snapshot does not
    check_stop(f)

    snap = furing_plain(ceph.spec(name + "@s1"))
    wait_for(lambda: "librbd, snapshot" in snap.stderr_text(), 5, what="the serving line")
    assert errno_of(os.open, snap.mountpoint, os.O_RDWR) in (errno.EACCES, errno.EROFS)
    sfd = snap.open(os.O_RDONLY)
    assert_same(os.pread(sfd, SIZE, 0), before, "the snapshot")
    check_stop(snap)

    mnt = os.path.join(workdir, "snapw")
    r = cli(["export", "--writable", ceph.spec(name + "@s1"), mnt], mountpoint=mnt, timeout=30)
    assert r.rc != 0
    assert "snapshot is read-only" in assert_one_error_line(r.stderr)
    r = cli(["export", ceph.spec(name + "@nosuch"), mnt], mountpoint=mnt, timeout=30)
    assert r.rc != 0
    assert "no snapshot nosuch" in assert_one_error_line(r.stderr)


def test_rbd_second_writer_refused(ceph, furing_plain, cli, workdir):
    """The first writable export holds the exclusive lock; a second one
    refuses in one line, and the first serves on."""
    name = ceph.image()
    f = furing_plain(ceph.spec(name), writable=True)
    fd = f.open(os.O_RDWR)
    assert os.pwrite(fd, b"first", 0) == 5
    mnt = os.path.join(workdir, "second")
    t0 = time.monotonic()
    r = cli(["export", "--writable", ceph.spec(name), mnt], mountpoint=mnt, timeout=45)
    assert r.rc != 0
    assert "exclusive lock" in assert_one_error_line(r.stderr, "second writer")
    assert time.monotonic() - t0 < 40
    assert os.pwrite(fd, b"still", 5) == 5
    assert os.pread(fd, 10, 0) == b"firststill"
    # A read-only export of the same image is fine next to the writer.
    ro = furing_plain(ceph.spec(name))
    rfd = ro.open(os.O_RDONLY)
    assert os.pread(rfd, 10, 0) == b"firststill"
    check_stop(ro)
    check_stop(f)


# ---------------------------------------------------------------- refusals

def refused(cli, workdir, args, want, timeout=30):
    mnt = os.path.join(workdir, "refused")
    t0 = time.monotonic()
    r = cli(["export"] + args + [mnt], mountpoint=mnt, timeout=timeout)
    assert_no_crash(r.rc)
    assert r.rc != 0, r
    line = assert_one_error_line(r.stderr)
    assert want in line, line
    assert not os.path.exists(mnt), "the mountpoint it created is left"
    return time.monotonic() - t0


def test_rbd_missing_image_and_pool(ceph, cli, workdir):
    refused(cli, workdir, [ceph.spec("rbd/nosuchimage")], "no image nosuchimage in pool rbd")
    refused(cli, workdir, [ceph.spec("nosuchpool/img")], "no such pool")


def test_rbd_wrong_key(ceph, cli, workdir):
    bad = os.path.join(workdir, "bad.keyring")
    with open(bad, "w") as f:
        f.write("[client.admin]\n\tkey = AQBqsRlmAAAAABAAsmLzVfWwG6fBq3sHzjJmNg==\n")
    took = refused(cli, workdir, ["--timeout", "10", ceph.spec("rbd/x", keyring=bad)], "refused client.admin")
    assert took < 20


def test_rbd_unreachable_cluster(ceph, cli, workdir):
    """No monitor at the address: one line within --timeout, not a hang."""
    conf = os.path.join(workdir, "nowhere.conf")
    with open(conf, "w") as f:
        f.write("[global]\nmon host = [v2:127.0.0.1:9]\nauth client required = cephx\n"
                f"keyring = {ceph.dir}/keyring\n")
    took = refused(cli, workdir, ["--timeout", "3", ceph.spec("rbd/x", conf=conf)], "no answer from the Ceph monitors")
    assert took < 15, f"took {took:.1f} s with --timeout 3"


def test_rbd_bad_sources_and_options(ceph, cli, workdir):
    refused(cli, workdir, ["rbd:poolonly"], "no image name")
    refused(cli, workdir, ["rbd:p/i:conf"], "is not KEY=VALUE")
    refused(cli, workdir, [ceph.spec("rbd/x", no_such_ceph_option="1")], "no such option")
    refused(cli, workdir, ["--writable", "--growable", ceph.spec("rbd/x")], "--growable: an RBD image keeps its size")
    refused(cli, workdir, ["--format=qcow2", ceph.spec("rbd/x")], "--format is for image files")
    refused(cli, workdir, [ceph.spec("rbd/x", conf=os.path.join(workdir, "missing.conf"))],
            "cannot read the Ceph configuration")


# ---------------------------------------------------------------- allocation

def test_rbd_seek_data_hole(ceph, furing, transport):
    """SEEK_DATA / SEEK_HOLE from the image's allocation (rbd_diff_iterate2).
    RADOS knows an object's size, not holes inside it: an object's data
    starts at the object's start (SEEK_DATA may land there, before the
    first byte written, which reads as zeros)."""
    name = ceph.image()
    f = furing(ceph.spec(name), writable=True)
    fd = f.open(os.O_RDWR)
    a, b = 2 * OBJ, 5 * OBJ + 4096
    os.pwrite(fd, pattern(65536, 1), a)
    os.pwrite(fd, pattern(8192, 2), b)
    assert os.lseek(fd, 0, os.SEEK_DATA) == a
    assert os.lseek(fd, a, os.SEEK_HOLE) == a + 65536
    assert os.lseek(fd, a + 65536, os.SEEK_DATA) in (5 * OBJ, b)
    assert os.lseek(fd, b + 100, os.SEEK_HOLE) == b + 8192
    assert errno_of(os.lseek, fd, b + 8192, os.SEEK_DATA) == errno.ENXIO
    assert os.lseek(fd, SIZE - 1, os.SEEK_HOLE) == SIZE - 1
    check_stop(f)


def test_rbd_punch_hole_and_zero_range(ceph, furing, transport):
    """Punched and zeroed ranges read as zeros, through furing and for
    rbd export, inside an object and across objects; allocation mode 0 is
    refused."""
    name = ceph.image()
    data = bytearray(pattern(16 * MiB, 9))
    f = furing(ceph.spec(name), writable=True)
    fd = f.open(os.O_RDWR)
    assert os.pwrite(fd, data, 0) == len(data)
    for mode, off, n in [(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192),
                         (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, OBJ - 1000, OBJ + 5000),
                         (FALLOC_FL_ZERO_RANGE, 100000, 3000),
                         (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 3 * OBJ, OBJ)]:
        fallocate(fd, mode, off, n)
        data[off:off + n] = bytes(n)
    assert errno_of(fallocate, fd, 0, 0, 4096) == errno.EOPNOTSUPP
    assert_same(os.pread(fd, 16 * MiB, 0), bytes(data), "after punch/zero, through furing")
    # A whole punched object is deallocated: SEEK_HOLE finds it.
    assert os.lseek(fd, OBJ, os.SEEK_HOLE) <= 2 * OBJ - 1
    check_stop(f)
    assert_same(ceph.export(name)[:16 * MiB], bytes(data), "after punch/zero, rbd export")


def test_rbd_statfs(ceph, furing_plain):
    name = ceph.image()
    f = furing_plain(ceph.spec(name))
    st = os.statvfs(f.mountpoint)
    assert st.f_blocks * st.f_frsize == SIZE
    check_stop(f)


# ---------------------------------------------------------------- faults

@pytest.mark.timeout(90)
def test_rbd_osd_stopped_under_io(ceph, furing, transport):
    """The OSD stops (SIGSTOP) while writes are in flight: they fail with
    EIO within --timeout, one line says so; after SIGCONT writes succeed
    again and one line says the cluster is back."""
    name = ceph.image()
    f = furing(ceph.spec(name), "--timeout", "3", writable=True)
    fd = f.open(os.O_RDWR)
    assert os.pwrite(fd, pattern(65536, 1), 0) == 65536
    osd = ceph.osd_pid()
    results = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                os.pwrite(fd, pattern(4096, i), (i % 1000) * 4096)
                results.append((t0, time.monotonic(), None))
            except OSError as e:
                results.append((t0, time.monotonic(), e.errno))
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        os.kill(osd, signal.SIGSTOP)
        stopped = time.monotonic()
        wait_for(lambda: any(e == errno.EIO for _, _, e in results), 15, what="EIO with the OSD stopped")
        failed = [r for r in results if r[2] is not None]
        assert all(e == errno.EIO for _, _, e in failed), failed
        assert failed[0][1] - stopped < 10, f"EIO after {failed[0][1] - stopped:.1f} s with --timeout 3"
        wait_for(lambda: "requests fail with EIO" in f.stderr_text(), 5, what="the 'lost' line")
    finally:
        os.kill(osd, signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(lambda: any(t0 > resumed and e is None for t0, _, e in results), 40,
             what="a successful write after SIGCONT")
    stop.set()
    t.join(10)
    wait_for(lambda: "answers again" in f.stderr_text(), 5, what="the 'back' line")
    text = f.stderr_text()
    assert text.count("requests fail with EIO") == 1, text
    data = pattern(4096, 99)
    assert os.pwrite(fd, data, 8 * MiB) == 4096
    check_stop(f)
    assert_same(ceph.export(name)[8 * MiB:8 * MiB + 4096], data, "a write after the recovery")


def osd_running(ceph):
    try:
        os.kill(ceph.osd_pid(), 0)
        return True
    except (OSError, ValueError):
        return False


def start_osd(ceph):
    """ceph-osd again after a kill (it daemonizes and writes its pid file)."""
    r = subprocess.run(["ceph-osd", "-c", ceph.conf, "-i", "0"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: osd_running(ceph), 10, what="the restarted OSD")


@pytest.mark.timeout(120)
def test_rbd_osd_killed_under_io(ceph, furing_plain):
    """After an fsync (librbd may then acknowledge writes before the OSD has
    them), the OSD is killed (SIGKILL): a write or the next fsync fails with
    EIO within --timeout, never a hang; once the OSD is started again,
    writes and fsyncs succeed again."""
    name = ceph.image()
    f = furing_plain(ceph.spec(name), "--timeout", "3", writable=True)
    fd = f.open(os.O_RDWR)
    assert os.pwrite(fd, pattern(65536, 1), 0) == 65536
    os.fsync(fd)
    os.kill(ceph.osd_pid(), signal.SIGKILL)
    try:
        killed = time.monotonic()
        wait_for(lambda: not osd_running(ceph), 10, what="the OSD gone")
        err = None
        i = 0
        while err is None and time.monotonic() - killed < 20:
            try:
                os.pwrite(fd, pattern(4096, i), (i % 100) * 4096)
                os.fsync(fd)
            except OSError as e:
                err = e.errno
            i += 1
        took = time.monotonic() - killed
        assert err == errno.EIO, f"no EIO within {took:.1f} s of the OSD's death (got {err})"
        assert took < 15, f"EIO only after {took:.1f} s with --timeout 3"
    finally:
        if not osd_running(ceph):
            start_osd(ceph)
    restarted = time.monotonic()

    def works():
        try:
            os.pwrite(fd, b"back", 8 * MiB)
            os.fsync(fd)
            return True
        except OSError:
            return False
    wait_for(works, 60, interval=0.5, what="a write and fsync after the OSD's restart")
    assert time.monotonic() - restarted < 60
    # librbd's close after an OSD restart waits about 10 s (Ceph 16.2: the
    # image's watch is re-established on the restarted OSD): bounded, not a hang.
    r = f.stop(timeout=30)
    assert r.rc == 0, r.stderr[-2000:]
    assert ceph.export(name)[8 * MiB:8 * MiB + 4] == b"back"


def test_rbd_stop_flushes_before_exit(ceph, furing_plain):
    """SIGINT right after the writes: every acknowledged byte is in the image."""
    name = ceph.image()
    f = furing_plain(ceph.spec(name), writable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(SIZE, 42)
    for off in range(0, SIZE, MiB):
        assert os.pwrite(fd, data[off:off + MiB], off) == MiB
    r = f.stop(signal.SIGINT)
    assert r.rc == 0, r.stderr
    assert_same(ceph.export(name), data, "after SIGINT")


def test_rbd_cluster_script_env(ceph):
    """cluster.sh env names the configuration the tests use."""
    out = subprocess.run([CLUSTER_SH, "env", ceph.dir], capture_output=True, text=True, timeout=10).stdout
    assert f"CEPH_CONF={ceph.conf}" in out
    assert shutil.which("rbd")


# ---------------------------------------------------------------- the daemon

def test_rbd_daemon_export_add_and_del(ceph, daemon, workdir):
    """`furing daemon`'s export-add with an rbd: source: a writable export
    serves, a second writable add of the same image is refused (the first
    holds the exclusive lock) with one clear error and nothing added, the
    first serves on; after export-del the data is in the image as rbd
    export reads it, and the lock is free for a new add."""
    name = ceph.image()
    d = daemon()
    mnt = os.path.join(workdir, "r.img")
    d.add("r", ceph.spec(name), mnt, writable=True, timeout=10)
    assert os.stat(mnt).st_size == SIZE
    model = bytearray(SIZE)
    fd = os.open(mnt, os.O_RDWR)
    try:
        random_writes(fd, SIZE, 20, 13, model)
        os.fsync(fd)

        second = os.path.join(workdir, "r2.img")
        t0 = time.monotonic()
        r = d.request("export-add", id="r2", type="export", source=ceph.spec(name), mountpoint=second,
                      writable=True, timeout=10, **{"kernel-passthrough": "off"})
        assert error_class(r) == "Failed", r
        assert "exclusive lock" in r["error"]["desc"], r
        assert time.monotonic() - t0 < 25
        assert not os.path.exists(second), "the refused add left its mountpoint"
        assert [e["id"] for e in d.request("query-exports")["return"]["exports"]] == ["r"]

        data = pattern(4096, 77)
        assert os.pwrite(fd, data, 5 * MiB) == 4096
        model[5 * MiB:5 * MiB + 4096] = data
        assert_same(os.pread(fd, SIZE, 0), bytes(model), "the first export after the refused add")
    finally:
        os.close(fd)
    r = d.request("export-del", id="r", mode="safe")
    assert "return" in r, r
    assert not mounts_at(mnt)
    assert_same(ceph.export(name), bytes(model), "rbd export after export-del")

    # export-del released the lock: the image can be added writable again.
    d.add("r3", ceph.spec(name), os.path.join(workdir, "r3.img"), writable=True, timeout=10)
    r = d.request("export-del", id="r3", mode="safe")
    assert "return" in r, r

    # The daemon's working directory means nothing to a client: a relative conf= is refused.
    r = d.request("export-add", id="rel", type="export", source=ceph.spec(name, conf="ceph.conf"),
                  mountpoint=os.path.join(workdir, "rel.img"))
    assert error_class(r) == "InvalidArgument", r
    assert "conf must be an absolute path" in r["error"]["desc"], r
