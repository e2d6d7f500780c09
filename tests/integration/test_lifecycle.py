"""Starting, stopping, observing: unmount by another process, signals during
I/O, the mountpoint file, --daemonize/--pidfile, the summary line, --debug,
SIGUSR1 stats, options. Runs under both transports."""

import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from furing_helpers import (
    KiB, MiB, TRANSPORT_ARGS, assert_one_error_line, assert_same, check_stats_fields,
    is_mounted, kernel_version, kill_quietly, lazy_umount_all, mount_dead_fuse, mounts_at, op_count,
    parse_stats_line, pattern, proc_alive, read_file, stat_errno_uncached, stats_lines, wait_for,
    wait_serving,
)

pytestmark = pytest.mark.timeout(30)


def roundtrip(path, size, seed=77):
    """Write, read back and check a few blocks through the mount."""
    fd = os.open(path, os.O_RDWR)
    try:
        for i, (off, n) in enumerate(((0, 4096), (size // 2 + 3, 100000), (size - 1, 1))):
            d = pattern(n, seed + i)
            assert os.pwrite(fd, d, off) == n
            assert_same(os.pread(fd, n, off), d, f"round trip at {off}+{n}")
    finally:
        os.close(fd)


def test_umount_by_other_process(furing, image):
    f = furing(image, writable=True)
    roundtrip(f.mountpoint, os.path.getsize(image))
    p = subprocess.run(["umount", f.mountpoint], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    assert p.returncode == 0, p.stdout
    r = f.wait_exit(10)
    assert r.rc == 0, r.stderr
    assert r.summary is not None, r.stderr[-2000:]
    assert not f.mounted()
    assert os.path.isfile(f.mountpoint)     # pre-existing mountpoint file stays


WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
buf = os.urandom(65536)
n = 0
try:
    while True:
        os.pwrite(fd, buf, (n * 7 * 65536) % (size - 65536))
        n += 1
        if n == 32:
            open(sys.argv[2], "w").close()
except OSError as e:
    print(f"writer stopped after {n} writes: {e}", flush=True)
    sys.exit(3)
"""


def start_load(kind, mountpoint, workdir):
    log = open(os.path.join(workdir, f"load-{kind}.log"), "wb")
    started = os.path.join(workdir, "load-started")
    if kind == "fio":
        argv = ["fio", "--name=load", f"--filename={mountpoint}", "--ioengine=libaio",
                "--direct=1", "--iodepth=32", "--rw=randrw", "--bs=4k", "--size=16m",
                "--time_based", "--runtime=60", "--fallocate=none"]
    else:
        argv = [sys.executable, "-c", WRITER, mountpoint, started]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return p, started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("load", ["fio", "writer"])
def test_signal_during_io(furing, make_image, workdir, sig, load):
    if load == "fio" and shutil.which("fio") is None:
        pytest.skip("fio not installed")
    img = make_image(16 * MiB)                      # sparse: st_blocks shows progress
    f = furing(img, writable=True)
    p, started = start_load(load, f.mountpoint, workdir)
    try:
        wait_for(lambda: p.poll() is not None or os.path.exists(started)
                 or os.stat(img).st_blocks >= 2048, 10, what="I/O to reach the image")
        assert p.poll() is None, f"{load} ended before the signal: rc={p.returncode}"
        f.send(sig)
        r = f.wait_exit(10)
        assert r.rc == 0, f"exit {r.rc} on {sig.name} during I/O\n{r.stderr[-2000:]}"
        assert r.summary is not None and r.summary["bytes_written"] > 0, r.stderr[-2000:]
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{load} still blocked 15 s after the server exited")
        assert not f.mounted()
        assert not mounts_at(f.mountpoint), "a fuse mount is left on the mountpoint"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_mountpoint_created_and_removed(furing, image, workdir):
    mp = os.path.join(workdir, "created.mnt")
    assert not os.path.exists(mp)
    f = furing(image, mountpoint=mp, precreate=False)
    st = os.stat(mp)
    assert stat.S_ISREG(st.st_mode) and st.st_size == os.path.getsize(image)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert not os.path.exists(mp), "mountpoint created by furing was not removed at exit"


def test_existing_mountpoint_kept(furing, image, workdir):
    mp = os.path.join(workdir, "existing.mnt")
    with open(mp, "wb") as g:
        g.write(b"underneath")
    f = furing(image, mountpoint=mp)
    assert os.stat(mp).st_size == os.path.getsize(image)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert read_file(mp) == b"underneath"


# ---- a mount left behind by a server killed with SIGKILL: the mount stays,
# its connection is dead, and every access to the mountpoint gives ENOTCONN

def kill9(f):
    # after INIT is answered (the serving line): the mount appears before
    # that, and a kill in between leaves the other kind of dead mount, the
    # one test_stale_mount_from_before_init_recovered makes on purpose
    wait_serving(f)
    f.send(signal.SIGKILL)
    f.proc.wait(10)
    assert len(mounts_at(f.mountpoint)) == 1, "the killed server's mount should stay"
    # ECONNABORTED: the request was queued before the connection was torn
    # down, which over io_uring ends a moment after the process
    assert stat_errno_uncached(f.mountpoint) in (errno.ENOTCONN, errno.ECONNABORTED)


def test_stale_mount_recovered(furing, make_image, workdir, transport):
    size = 4 * MiB
    img = make_image(size, "random", seed=90)
    mp = os.path.join(workdir, "stale.mnt")
    first = furing(img, writable=True, mountpoint=mp, precreate=False)
    kill9(first)
    second = furing(img, writable=True, mountpoint=mp, precreate=False, wait=False)
    wait_serving(second)
    said = [l for l in second.stderr_text().splitlines() if "unmounted the stale" in l]
    assert len(said) == 1 and mp in said[0] and said[0].startswith("furing: "), second.stderr_text()
    assert len(mounts_at(mp)) == 1, "the new mount is stacked on the dead one"
    roundtrip(mp, size)
    r = second.stop()
    assert r.rc == 0, r.stderr
    assert not mounts_at(mp)
    # the file the killed server created is not the new one's to remove
    assert os.path.isfile(mp)


def test_stale_mount_from_before_init_recovered(furing, make_image, workdir, transport):
    """A furing mount whose server died before answering INIT (here: none
    ever read it). Linux 7.3 refuses every request of such a connection
    with ECONNREFUSED, earlier kernels say ENOTCONN: dead either way, and
    the next start removes it and serves."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount")
    size = 4 * MiB
    img = make_image(size, "random", seed=91)
    mp = os.path.join(workdir, "stale.mnt")
    open(mp, "wb").close()
    mount_dead_fuse(mp, "fuse.furing")
    dead = errno.ECONNREFUSED if kernel_version() >= (7, 3) else errno.ENOTCONN
    assert stat_errno_uncached(mp) == dead
    second = furing(img, writable=True, mountpoint=mp, precreate=False, wait=False)
    wait_serving(second)
    said = [l for l in second.stderr_text().splitlines() if "unmounted the stale" in l]
    assert len(said) == 1 and mp in said[0], second.stderr_text()
    roundtrip(mp, size)
    r = second.stop()
    assert r.rc == 0, r.stderr
    assert not mounts_at(mp)


@pytest.mark.parametrize("fstype", ["fuse", "fuse.sshfs"])
def test_stale_foreign_mount_named_not_removed(cli, image, workdir, fstype):
    """A dead FUSE mount of another filesystem is not furing's to remove:
    one line naming the command, and the mount stays."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount")
    mp = os.path.join(workdir, "foreign.mnt")
    open(mp, "wb").close()
    mount_dead_fuse(mp, fstype)
    try:
        assert stat_errno_uncached(mp) == errno.ENOTCONN
        r = cli(["export", "--io-uring=off", "--writable", image, mp], mountpoint=mp)
        assert r.rc == 1, r
        line = assert_one_error_line(r.stderr, "dead foreign mount")
        assert f"umount -l {mp}" in line and fstype in line, line
        assert [m.fstype for m in mounts_at(mp)] == [fstype], "the foreign mount was touched"
    finally:
        lazy_umount_all(mp)


def test_stopped_server_mount_busy_not_hung(furing, cli, image, transport):
    """A mount whose server is alive but stopped (SIGSTOP) is busy, not
    stale: the new export says so in time instead of hanging on it."""
    first = furing(image, writable=True)
    first.send(signal.SIGSTOP)
    try:
        time.sleep(1.2)     # past the 1 s attribute timeout: any stat must ask the server
        r = cli(["export", "--io-uring=off", "--writable", image, first.mountpoint],
                mountpoint=None, timeout=10)
        assert r.rc == 1, r
        line = assert_one_error_line(r.stderr, "stopped server")
        assert "busy" in line and first.mountpoint in line, line
    finally:
        first.send(signal.SIGCONT)
    assert len(mounts_at(first.mountpoint)) == 1
    roundtrip(first.mountpoint, os.path.getsize(image))
    r = first.stop()
    assert r.rc == 0, r.stderr


def test_daemonize_pidfile(cli, transport, image, workdir, furing_bin):
    mp = os.path.join(workdir, "d.mnt")
    pidfile = os.path.join(workdir, "furing.pid")
    pid = None
    try:
        r = cli(["export", *TRANSPORT_ARGS[transport], "--writable", "--daemonize",
                 "--pidfile", pidfile, image, mp], mountpoint=mp, timeout=15)
        assert r.rc == 0, r
        # ready at return: no polling allowed here
        assert is_mounted(mp), "--daemonize returned before the mount was there"
        pid = int(read_file(pidfile).decode().strip())
        assert proc_alive(pid), f"pid {pid} from the pidfile is not alive"
        with open(f"/proc/{pid}/cmdline", "rb") as g:
            assert b"export" in g.read()
        roundtrip(mp, os.path.getsize(image))
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not proc_alive(pid), 10, what="daemon exit after SIGTERM")
        assert not is_mounted(mp)
    finally:
        if pid is not None and proc_alive(pid):
            kill_quietly(pid, signal.SIGKILL)
        lazy_umount_all(mp)


def test_summary_line(furing, make_image, transport):
    size = 8 * MiB
    img = make_image(size, "random", seed=30)
    f = furing(img, writable=True)
    fd = f.open(os.O_RDWR)
    wrote = read = 0
    for i in range(3):
        wrote += os.pwrite(fd, pattern(64 * KiB, i), i * MiB)
    wrote += os.pwrite(fd, pattern(MiB, 9), 4 * MiB)
    read += len(os.pread(fd, 200 * KiB, 123))
    read += len(os.pread(fd, MiB, 5 * MiB))
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert len(stats_lines(r.stderr, "summary")) == 1, r.stderr[-2000:]
    s = r.summary
    check_stats_fields(s, transport)
    assert s["requests"] > 0
    assert s["errors"] <= s["requests"]
    assert s["bytes_written"] >= wrote, (s, wrote)
    assert s["bytes_read"] >= read, (s, read)
    assert op_count(s, "READ") >= 2 and op_count(s, "WRITE") >= 4, s
    if transport == "dev":
        assert s["dev"] > 0
    else:
        assert s["ring"] > 0, f"ring transport but no request came through the ring: {s}"
        assert s["ring_ops"].get("READ", 0) >= 2 and s["ring_ops"].get("WRITE", 0) >= 4, s
        assert sum(v for k, v in s.items() if re.fullmatch(r"q\d+", k)) > 0, s


def test_debug_lines(furing, make_image, transport):
    img = make_image(MiB, "random", seed=31)
    f = furing(img, writable=True, debug=True)
    fd = f.open(os.O_RDWR)
    assert len(os.pread(fd, 4096, 8192)) == 4096
    assert os.pwrite(fd, b"d" * 512, 0) == 512
    r = f.stop()
    assert r.rc == 0, r.stderr
    tag = r"\[dev\]" if transport == "dev" else r"\[ring q\d+\]"
    read_re = re.compile(rf"^furing: {tag} READ unique=\d+ nodeid=\d+ off=8192 size=4096 -> \S")
    assert any(read_re.match(l) for l in r.stderr.splitlines()), \
        f"no debug line for the READ at 8192+4096:\n{r.stderr[-3000:]}"
    write_re = re.compile(rf"^furing: {tag} WRITE unique=\d+ nodeid=\d+ .*-> \S")
    assert any(write_re.match(l) for l in r.stderr.splitlines()), r.stderr[-3000:]
    bad = [l for l in r.stderr.splitlines() if l and not l.startswith("furing: ")]
    assert not bad, f"stderr lines without the 'furing: ' prefix: {bad[:5]}"


def test_usr1_stats(furing, make_image, transport):
    img = make_image(2 * MiB, "random", seed=32)
    f = furing(img)
    fd = f.open(os.O_RDONLY)
    assert len(os.pread(fd, 100 * KiB, 0)) == 100 * KiB
    f.send(signal.SIGUSR1)
    wait_for(lambda: stats_lines(f.stderr_text(), "stats"), 5, what="stats line after SIGUSR1")
    s1 = parse_stats_line(stats_lines(f.stderr_text(), "stats")[0])
    check_stats_fields(s1, transport)
    assert s1["bytes_read"] >= 100 * KiB and s1["requests"] > 0, s1
    assert f.running() and f.mounted(), "SIGUSR1 stopped the server"
    assert len(os.pread(fd, MiB, MiB)) == MiB
    f.send(signal.SIGUSR1)
    wait_for(lambda: len(stats_lines(f.stderr_text(), "stats")) >= 2, 5, what="second stats line")
    s2 = parse_stats_line(stats_lines(f.stderr_text(), "stats")[1])
    assert s2["bytes_read"] >= s1["bytes_read"] + MiB, (s1, s2)
    assert not stats_lines(f.stderr_text(), "summary")
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["bytes_read"] >= s2["bytes_read"]


def test_allow_other_mount_option(furing, image):
    plain = furing(image)
    other = furing(image, "--allow-other")
    opts = lambda mp: mounts_at(mp)[0].super_opts.split(",")  # noqa: E731
    assert "allow_other" not in opts(plain.mountpoint)
    assert "allow_other" in opts(other.mountpoint)
    for f in (plain, other):
        r = f.stop()
        assert r.rc == 0, r.stderr


OPTION_SETS = {
    "threads1": ["--threads", "1"],
    "threads3-qd4": ["--threads", "3", "--queue-depth", "4"],
    "qd1": ["--queue-depth", "1"],
    "payload64k": ["--payload-size", "65536"],
    "pin": ["--pin"],
    "no-pin": ["--no-pin"],
    "backend-io-inline": ["--backend-io=inline"],
    "backend-io-ring": ["--backend-io=ring"],
    "inline-direct": ["--backend-io=inline", "--backend-direct"],
    # beyond the core contract, listed by `furing export --help`
    "backend-direct": ["--backend-direct"],
    "writethrough": ["--writethrough"],
}


@pytest.mark.parametrize("opts", list(OPTION_SETS))
def test_options_roundtrip(furing, make_image, opts):
    """Tuning options must not change results, also with more concurrent
    requests than queue entries and requests bigger than the payload size."""
    size = 9 * MiB
    img = make_image(size, "random", seed=33)
    model = bytearray(read_file(img))
    f = furing(img, *OPTION_SETS[opts], writable=True)
    errors = []
    chunk = MiB + MiB // 2
    region = 2 * MiB + 8192

    def where(t, k):             # unaligned, disjoint per thread
        return t * region + k * (chunk // 3) + (t * 777 + k * 13) % 4096

    def worker(t):
        try:
            fd = os.open(f.mountpoint, os.O_RDWR)
            try:
                for k in range(2):
                    off = where(t, k)
                    d = pattern(chunk, t * 10 + k)
                    if os.pwrite(fd, d, off) != chunk:
                        errors.append(f"short write {t}/{k}")
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    for t in range(4):
        for k in range(2):
            off = where(t, k)
            model[off:off + chunk] = pattern(chunk, t * 10 + k)
    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert not errors, errors
    with open(f.mountpoint, "rb", buffering=0) as g:
        assert_same(g.read(), bytes(model), "export vs model")
    assert_same(read_file(img), bytes(model), "backing vs model")
    r = f.stop()
    assert r.rc == 0, r.stderr


def image_fd_flags(pid, image):
    """The open-file flags of every fd the daemon holds on the image."""
    flags = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != os.path.realpath(image):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags.append(int(next(l for l in f if l.startswith("flags:")).split()[1], 8))
        except FileNotFoundError:
            continue
    return flags


def test_backend_direct_and_writethrough_open_flags(furing, make_image):
    """--backend-direct opens the image O_DIRECT (plus one buffered fd for
    unaligned I/O); --writethrough makes every image fd O_DSYNC."""
    img = make_image(4 * MiB, "random", seed=8)
    f = furing(img, "--backend-direct", "--writethrough", writable=True)
    flags = image_fd_flags(f.pid, img)
    assert len(flags) == 2, flags
    assert sum(1 for fl in flags if fl & os.O_DIRECT) == 1, [oct(x) for x in flags]
    assert all(fl & os.O_DSYNC == os.O_DSYNC for fl in flags), [oct(x) for x in flags]
    roundtrip(f.mountpoint, 4 * MiB)
    r = f.stop()
    assert r.rc == 0, r.stderr
    g = furing(img, writable=True)
    flags = image_fd_flags(g.pid, img)
    assert len(flags) == 1 and not flags[0] & (os.O_DIRECT | os.O_DSYNC), [oct(x) for x in flags]
