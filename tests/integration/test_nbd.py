"""The NBD backend: `furing export` of an NBD URI or of a --format image,
against real servers the tests start (nbdkit, qemu-nbd) on private Unix
sockets. Data written through furing is checked on the server's side
(qemu-img compare / qemu-io on the qcow2 image, a second read-only export of
nbdkit's memory); faults (server killed, stopped, refusing) must give EIO
quickly and never hang. Runs under both transports."""

import errno
import glob
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from furing_helpers import (
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, MiB, assert_no_crash,
    assert_one_error_line, assert_same, errno_of, fallocate, mounts_at, op_count, pattern, read_file,
    wait_for,
)
from nbd_fake import FAULTS, FakeNbd
from nbd_servers import qemu_img, qemu_io, uri_of

pytestmark = pytest.mark.timeout(40)

SIZE = 16 * MiB


@pytest.fixture
def qcow2(workdir):
    def make(size=SIZE, name="disk.qcow2"):
        path = os.path.join(workdir, name)
        r = qemu_img("create", "-q", "-f", "qcow2", path, size)
        assert r.returncode == 0, r.stdout
        return path
    return make


def random_writes(fd, size, n, seed, model=None):
    """n writes of assorted sizes at random offsets; returns [(off, data)]."""
    rng = random.Random(seed)
    done = []
    for i in range(n):
        length = rng.choice([1, 512, 4096, 4097, 65536, 300000, MiB + 5])
        off = rng.randrange(0, size - length)
        data = pattern(length, seed * 1000 + i)
        assert os.pwrite(fd, data, off) == length
        if model is not None:
            model[off:off + length] = data
        done.append((off, data))
    return done


def check_stop(f):
    r = f.stop()
    assert r.rc == 0, r.stderr[-2000:]
    return r


def no_qemu_nbd_left(before):
    return set(glob.glob("/tmp/furing-qemu-nbd-*")) - before


# ---------------------------------------------------------------- data

def test_nbdkit_memory_roundtrip(furing, servers):
    """nbdkit's memory plugin (multi-conn): what furing wrote is what the
    server holds, seen through a second, read-only export."""
    srv = servers.nbdkit("memory", SIZE)
    f = furing(srv.uri, writable=True)
    st = os.stat(f.mountpoint)
    assert st.st_size == SIZE
    wait_for(lambda: "NBD connection" in f.stderr_text(), 5, what="the serving line")
    model = bytearray(SIZE)
    fd = f.open(os.O_RDWR)
    random_writes(fd, SIZE, 40, 1, model)
    for off, n in [(0, 4096), (12345, 777), (SIZE - 1, 1), (3 * MiB, 2 * MiB)]:
        assert_same(os.pread(fd, n, off), bytes(model[off:off + n]), f"read {off}+{n}")
    os.fsync(fd)
    r = check_stop(f)
    assert op_count(r.summary, "FSYNC") >= 1
    g = furing(srv.uri)  # read-only by default
    assert_same(read_file(g.mountpoint), bytes(model), "server's disk vs model")
    assert errno_of(os.open, g.mountpoint, os.O_WRONLY) == errno.EROFS
    check_stop(g)


def test_qcow2_format_roundtrip(furing, qcow2, make_image):
    """--format=qcow2: furing starts qemu-nbd itself; after a clean stop (no
    fsync) qemu-img compare finds exactly the data written through furing,
    and qemu-nbd and its directory are gone."""
    before = set(glob.glob("/tmp/furing-qemu-nbd-*"))
    img = qcow2()
    f = furing(img, "--format=qcow2", writable=True)
    fd = f.open(os.O_RDWR)
    model = bytearray(SIZE)
    random_writes(fd, SIZE, 30, 2, model)
    r = check_stop(f)               # acknowledged writes must survive this
    assert r.summary["bytes_written"] > 0
    assert not no_qemu_nbd_left(before), "qemu-nbd's private directory left behind"
    raw = make_image(SIZE, bytes(model), name="expected.raw")
    c = qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, img)
    assert c.returncode == 0, c.stdout.decode(errors="replace")
    off, data = 5 * MiB, b"\xab" * 4096
    f2 = furing(img, "--format=qcow2", "--writethrough", writable=True)
    fd = f2.open(os.O_RDWR)
    os.pwrite(fd, data, off)
    check_stop(f2)
    q = qemu_io(img, "qcow2", f"read -P 0xab {off} 4096")
    assert q.returncode == 0 and b"Pattern verification failed" not in q.stdout, q.stdout


def test_qemu_nbd_single_connection(furing, servers, qcow2, make_image):
    """A user's qemu-nbd with one client slot (no multi-conn): one connection,
    one worker, and the data lands in the qcow2 image."""
    img = qcow2()
    srv = servers.qemu_nbd(img, shared=1)
    f = furing(srv.uri, writable=True)
    wait_for(lambda: "1 NBD connection" in f.stderr_text(), 5, what="the serving line")
    fd = f.open(os.O_RDWR)
    model = bytearray(SIZE)
    model[8 * MiB:8 * MiB + 4096] = b"z" * 4096
    os.pwrite(fd, b"z" * 4096, 8 * MiB)      # block status on the one connection
    assert os.lseek(fd, 0, os.SEEK_DATA) == 8 * MiB
    assert os.lseek(fd, 8 * MiB, os.SEEK_HOLE) == 8 * MiB + 64 * 1024   # one qcow2 cluster
    random_writes(fd, SIZE, 25, 3, model)
    assert_same(os.pread(fd, SIZE, 0), bytes(model), "read back through furing")
    check_stop(f)
    srv.stop()
    raw = make_image(SIZE, bytes(model), name="expected.raw")
    c = qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, img)
    assert c.returncode == 0, c.stdout.decode(errors="replace")


def test_fio_verify_over_nbd(furing, servers, workdir):
    """Many requests in flight per connection: fio libaio iodepth 32 with
    crc32c verification."""
    srv = servers.nbdkit("memory", 64 * MiB)
    f = furing(srv.uri, writable=True)
    out = os.path.join(workdir, "fio.out")
    p = subprocess.run(["fio", "--name=v", f"--filename={f.mountpoint}", "--ioengine=libaio", "--direct=1",
                        "--iodepth=32", "--rw=randwrite", "--bssplit=4k/50:64k/30:1m/20", "--blockalign=4k",
                        "--size=64m", "--io_size=24m", "--verify=crc32c", "--do_verify=1",
                        "--verify_fatal=1", "--verify_state_save=0", f"--output={out}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout.decode(errors="replace")[-2000:] + read_file(out).decode()[-2000:]
    check_stop(f)


def test_tls_psk(furing, servers, workdir, cli):
    """nbds+unix:// with a pre-shared key (the URI names the key file): data
    goes through TLS; without TLS the server refuses us in one line."""
    psk = os.path.join(workdir, "keys.psk")
    with open(psk, "w") as f:
        f.write("alice:" + os.urandom(32).hex() + "\n")
    os.chmod(psk, 0o600)
    srv = servers.nbdkit("memory", SIZE, options=["--tls=require", f"--tls-psk={psk}"])
    f = furing(f"nbds+unix://alice@/?socket={srv.sock}&tls-psk-file={psk}", writable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(MiB, 11)
    os.pwrite(fd, data, 3 * MiB)
    assert_same(os.pread(fd, MiB, 3 * MiB), data, "read back over TLS")
    check_stop(f)
    mp = os.path.join(workdir, "never.mnt")
    r = cli(["export", srv.uri, mp], mountpoint=mp)
    assert r.rc == 1, r
    assert "TLS" in assert_one_error_line(r.stderr, "plain URI, TLS server")


# ---------------------------------------------------------------- mapping

def test_fallocate_seek_statfs(furing, qcow2):
    """punch hole and zero range read back as zeros; SEEK_DATA/SEEK_HOLE come
    from the server's block status; allocate is not supported; statfs is the
    disk's size."""
    img = qcow2()
    f = furing(img, "--format=qcow2", writable=True)
    fd = f.open(os.O_RDWR)
    data = pattern(MiB, 7)
    os.pwrite(fd, data, 4 * MiB)
    os.fsync(fd)
    assert os.lseek(fd, 0, os.SEEK_DATA) == 4 * MiB
    assert os.lseek(fd, 4 * MiB, os.SEEK_HOLE) == 5 * MiB
    assert os.lseek(fd, 4 * MiB + 100, os.SEEK_DATA) == 4 * MiB + 100
    assert errno_of(os.lseek, fd, 6 * MiB, os.SEEK_DATA) == errno.ENXIO
    assert os.lseek(fd, 6 * MiB, os.SEEK_HOLE) == 6 * MiB
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * MiB, 256 * 1024)
    fallocate(fd, FALLOC_FL_ZERO_RANGE, 4 * MiB + 512 * 1024, 4096)
    expect = bytearray(data)
    expect[0:256 * 1024] = bytes(256 * 1024)
    expect[512 * 1024:512 * 1024 + 4096] = bytes(4096)
    assert_same(os.pread(fd, MiB, 4 * MiB), bytes(expect), "after punch hole and zero range")
    assert os.lseek(fd, 0, os.SEEK_DATA) >= 4 * MiB
    assert errno_of(fallocate, fd, 0, 0, 4096) == errno.EOPNOTSUPP
    assert errno_of(fallocate, fd, 0, SIZE, 4096) == errno.EFBIG   # cannot grow
    assert errno_of(os.ftruncate, fd, SIZE * 2) == errno.EFBIG
    st = os.statvfs(f.mountpoint)
    assert st.f_blocks * st.f_frsize == SIZE
    assert os.fstat(fd).st_size == SIZE
    check_stop(f)


# ---------------------------------------------------------------- refusals

def test_refusals(cli, servers, qcow2, workdir):
    """Options an NBD disk cannot honour, servers that refuse: one line each."""
    srv = servers.nbdkit("memory", SIZE, readonly=True)
    mp = os.path.join(workdir, "never.mnt")
    before = set(glob.glob("/tmp/furing-qemu-nbd-*"))
    cases = [
        (2, ["--writable", "--growable", srv.uri], "fixed size"),
        (2, ["--writable", "--growable", "--format=qcow2", qcow2()], "fixed size"),
        (2, ["--format=qcow2", srv.uri], "--format"),
        (2, ["--backend-direct", srv.uri], "--backend-direct"),
        (2, ["--format=qc/ow", qcow2(name="b.qcow2")], "--format"),
        (1, ["--writable", srv.uri], "read-only"),
        (1, [uri_of(os.path.join(workdir, "nobody.sock")), ], "cannot connect"),
        (1, ["nbd+unix:///?socket=", ], "cannot connect"),
        (1, ["nbd://127.0.0.1:1/x"], "cannot connect"),
    ]
    for rc, args, words in cases:
        r = cli(["export"] + args + [mp], mountpoint=mp)
        assert_no_crash(r.rc, str(args))
        assert r.rc == rc, f"{args}: {r}"
        line = assert_one_error_line(r.stderr, str(args))
        assert words in line, f"{args}: {line!r}"
        assert not mounts_at(mp) and not os.path.exists(mp), args
    assert not no_qemu_nbd_left(before)


def test_format_errors(cli, make_image, workdir):
    """A missing qemu-nbd names the package; an image qemu-nbd cannot read
    gives its reason; nothing is left behind."""
    mp = os.path.join(workdir, "never.mnt")
    raw = make_image(SIZE)
    before = set(glob.glob("/tmp/furing-qemu-nbd-*"))
    env = dict(os.environ, PATH=os.path.join(workdir, "empty-path"))
    r = cli(["export", "--format=qcow2", raw, mp], mountpoint=mp, env=env)
    assert r.rc == 1, r
    assert "qemu-utils" in assert_one_error_line(r.stderr, "no qemu-nbd")
    r = cli(["export", "--format=qcow2", raw, mp], mountpoint=mp)
    assert r.rc == 1, r
    line = assert_one_error_line(r.stderr, "raw as qcow2")
    assert "qemu-nbd" in line and "qcow2" in line, line
    assert not os.path.exists(mp)
    assert not no_qemu_nbd_left(before)
    assert subprocess.run(["pgrep", "-f", f"qemu-nbd.*{raw}"], stdout=subprocess.DEVNULL).returncode == 1


def test_server_refuses_writes(furing, servers):
    """A server that fails every write: EIO to the application, one line
    in the log however many fail, and reads keep working."""
    srv = servers.nbdkit("memory", SIZE, "error=EIO", "error-pwrite-rate=1", filters=["error"])
    f = furing(srv.uri, writable=True)
    fd = f.open(os.O_RDWR)
    for i in range(5):
        assert errno_of(os.pwrite, fd, b"x" * 4096, i * 4096) == errno.EIO
    assert os.pread(fd, 4096, 0) == bytes(4096)
    lines = [l for l in f.stderr_text().splitlines() if "failed a write" in l]
    assert len(lines) == 1, f.stderr_text()
    check_stop(f)


# ---------------------------------------------------------------- faults

def io_errors_until(fd, deadline, stop):
    """Writes in a loop until one fails; returns (errno, when)."""
    i = 0
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            os.pwrite(fd, pattern(4096, i), (i * 4096) % SIZE)
            os.pread(fd, 4096, ((i * 7919) * 4096) % SIZE)
        except OSError as e:
            return e.errno, time.monotonic()
        i += 1
    return None, time.monotonic()


def test_server_killed_mid_io(furing, servers):
    """Kill -9 the server during I/O: EIO within a few seconds (no hang), one
    log line, the daemon keeps running; a server that comes back on the same
    socket is reconnected and serves again; the stop is clean."""
    srv = servers.nbdkit("memory", SIZE)
    f = furing(srv.uri, "--timeout=5", writable=True)
    fd = f.open(os.O_RDWR)
    stop = threading.Event()
    result = {}

    def writer():
        result["r"] = io_errors_until(fd, time.monotonic() + 20, stop)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.5)
    killed = time.monotonic()
    srv.kill()
    t.join(15)
    stop.set()
    assert not t.is_alive(), "I/O still blocked 15 s after the server died"
    err, when = result["r"]
    assert err == errno.EIO, result
    assert when - killed < 5, f"EIO only after {when - killed:.1f}s"
    assert errno_of(os.pread, fd, 4096, 0) == errno.EIO  # still down: at once
    assert f.running()
    lost = [l for l in f.stderr_text().splitlines() if "NBD server lost" in l]
    assert len(lost) == 1, f.stderr_text()               # one line, not one per connection
    servers.restart(srv)                                 # empty memory again
    wait_for(lambda: errno_of(os.pread, fd, 4096, 0) is None, 10, interval=0.2, what="reconnect")
    wait_for(lambda: all(errno_of(os.pwrite, fd, b"y" * 4096, i * 4096) is None for i in range(8)), 10,
             interval=0.2, what="every connection back")
    # "back" is said when the last connection is back, which may come a
    # moment after the writes found theirs (they need not use every one).
    wait_for(lambda: "NBD server back" in f.stderr_text(), 10, interval=0.2, what="the 'back' line")
    assert len([l for l in f.stderr_text().splitlines() if "NBD server back" in l]) == 1, f.stderr_text()
    check_stop(f)


def test_server_hangs(furing, servers):
    """A server that stops answering (SIGSTOP): the request fails with EIO
    after --timeout, not never; once it answers again, so does the export."""
    srv = servers.nbdkit("memory", SIZE)
    f = furing(srv.uri, "--timeout=2", writable=True)
    fd = f.open(os.O_RDWR)
    assert os.pread(fd, 4096, 0) == bytes(4096)
    srv.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    assert errno_of(os.pread, fd, 4096, 0) == errno.EIO
    took = time.monotonic() - t0
    assert 1 <= took < 6, took
    assert "no answer for" in f.stderr_text(), f.stderr_text()
    srv.signal(signal.SIGCONT)
    wait_for(lambda: errno_of(os.pread, fd, 4096, 0) is None, 10, interval=0.2, what="reconnect")
    check_stop(f)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_malformed_reply(furing, workdir, fault):
    """A server whose reply breaks the protocol (a bad magic, a cookie of no
    command, data beyond its read, chunks covering half a read, a chunk
    longer than any can be): the
    read fails with EIO, one line says what was wrong, the connection is
    dropped and made again, and the new one serves (our own fake server:
    its first connection sends the bad reply, later ones serve right)."""
    srv = FakeNbd(os.path.join(workdir, "fake.sock"), SIZE, fault)
    try:
        f = furing(srv.uri, "--timeout=5", writable=True)
        fd = f.open(os.O_RDWR | os.O_DIRECT)
        buf = pattern(4096, 7)
        assert errno_of(os.pread, fd, 4096, 8192) == errno.EIO
        assert srv.faults_sent == 1
        lost = [l for l in f.stderr_text().splitlines() if "NBD server lost" in l]
        assert len(lost) == 1 and "malformed reply" in lost[0], f.stderr_text()
        wait_for(lambda: errno_of(os.pwrite, fd, buf, 8192) is None, 10, interval=0.2, what="reconnect")
        assert os.pread(fd, 4096, 8192) == buf
        assert srv.connections >= 2
        wait_for(lambda: "NBD server back" in f.stderr_text(), 10, interval=0.2, what="the 'back' line")
        assert f.running()
        check_stop(f)
    finally:
        srv.stop()


def test_without_io_uring(furing_plain, servers, io_uring_sysctl_off):
    """The engine's blocking fallback (no io_uring at all): each request waits
    for its NBD answer in the worker; a dead server still gives EIO and a
    server that comes back is used again."""
    srv = servers.nbdkit("memory", SIZE)
    f = furing_plain(srv.uri, "--timeout=3", writable=True, transport_args=["--io-uring=auto"])
    fd = f.open(os.O_RDWR)
    model = bytearray(SIZE)
    random_writes(fd, SIZE, 10, 9, model)
    assert_same(os.pread(fd, SIZE, 0), bytes(model), "read back without io_uring")
    os.fsync(fd)
    srv.kill()
    assert errno_of(os.pread, fd, 4096, 0) == errno.EIO
    servers.restart(srv)
    wait_for(lambda: errno_of(os.pread, fd, 4096, 0) is None, 10, interval=0.3, what="reconnect")
    r = check_stop(f)
    assert r.summary["ring"] == 0, r.summary
