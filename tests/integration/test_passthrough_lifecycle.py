"""`furing passthrough`: its command line (help, usage and runtime errors),
file descriptors given back once the kernel forgets, the daemon as an
unprivileged user through fusermount3, without io_uring at all, and flock
waits that do not hold the worker."""

import errno
import fcntl
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest

from furing_helpers import assert_no_crash, assert_one_error_line, mounts_at, op_count, wait_for, write_direct
from pt_fixtures import (  # noqa: F401
    NOBODY, SETPRIV, USER_ENV, open_up, passthrough, passthrough_plain, run_as, user_binary,
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

OPTIONS = ["--cache", "none", "auto", "always", "--kernel-passthrough", "--no-xattr", "--backend-io", "--allow-other",
           "--io-uring", "--threads", "--queue-depth", "--payload-size", "--busy-poll", "--pin", "--no-pin", "--debug",
           "--daemonize", "--pidfile", "--help", "--version"]


def test_help_documents_every_option(cli):
    r = cli(["passthrough", "--help"])
    assert r.rc == 0, r
    missing = [o for o in OPTIONS if o not in r.stdout]
    assert not missing, f"--help does not mention {missing}:\n{r.stdout}"
    # the inline calls and the identity rule are documented there too
    for word in ("getdents64", "io_uring personalities", "default_permissions"):
        assert word in r.stdout, word
    top = cli(["--help"])
    assert "passthrough" in top.stdout


@pytest.fixture
def dirs(workdir):
    src = os.path.join(workdir, "src")
    mnt = os.path.join(workdir, "mnt")
    os.mkdir(src)
    os.mkdir(mnt)
    return src, mnt


USAGE = {
    "no-args": lambda s, m: ["passthrough"],
    "one-arg": lambda s, m: ["passthrough", s],
    "three-args": lambda s, m: ["passthrough", s, m, m],
    "bad-cache": lambda s, m: ["passthrough", "--cache=sometimes", s, m],
    "bad-backend-io": lambda s, m: ["passthrough", "--backend-io=fast", s, m],
    "bad-io-uring": lambda s, m: ["passthrough", "--io-uring=maybe", s, m],
    "bad-threads": lambda s, m: ["passthrough", "--threads", "0", s, m],
    "missing-value": lambda s, m: ["passthrough", s, m, "--queue-depth"],
    "unknown-option": lambda s, m: ["passthrough", "--writable", s, m],
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_usage_errors(cli, dirs, case):
    src, mnt = dirs
    r = cli(USAGE[case](src, mnt), mountpoint=mnt)
    assert_no_crash(r.rc, case)
    assert r.rc == 2, r
    assert_one_error_line(r.stderr, case)
    assert not mounts_at(mnt)


def _runtime_cases(src, mnt):
    f = os.path.join(src, "file")
    open(f, "w").close()
    inside = os.path.join(src, "inner")
    os.mkdir(inside)
    return {
        "source-missing": (["passthrough", src + "-nope", mnt], "SOURCE"),
        "source-is-a-file": (["passthrough", f, mnt], "not a directory"),
        "mountpoint-missing": (["passthrough", src, mnt + "-nope"], "mountpoint"),
        "mountpoint-is-a-file": (["passthrough", src, f], "not a directory"),
        "mountpoint-inside-source": (["passthrough", src, inside], "inside SOURCE"),
    }


def test_runtime_errors(cli, dirs):
    src, mnt = dirs
    for case, (args, words) in _runtime_cases(src, mnt).items():
        r = cli(args, mountpoint=mnt)
        assert_no_crash(r.rc, case)
        assert r.rc == 1, (case, r)
        line = assert_one_error_line(r.stderr, case)
        assert words in line, (case, line)
        assert not mounts_at(args[-1]), case


def test_kernel_passthrough_refused_without_root(cli, dirs, furing_bin, workdir):
    src, mnt = dirs
    open_up(src)
    for d in (src, mnt):
        os.chown(d, NOBODY, NOBODY)
    r = cli(["passthrough", "--kernel-passthrough", src, mnt], mountpoint=mnt, binary=user_binary(furing_bin, workdir),
            prefix=[SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"], env=USER_ENV)
    assert r.rc == 1, r
    line = assert_one_error_line(r.stderr, "--kernel-passthrough as nobody")
    assert "--kernel-passthrough" in line and "root" in line, line


def fd_targets(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return sorted(out)


def test_fds_back_to_start_after_forget(passthrough, transport):
    """Every node holds an O_PATH handle while the kernel knows it: once
    the kernel forgets (drop_caches evicts unused inodes, which sends
    FORGET), the daemon is back to the descriptors it started with."""
    pt = passthrough()
    wait_for(lambda: pt.fd_count() > 0, 5, what="daemon fds")
    time.sleep(0.2)
    start = pt.fd_count()
    m = pt.mountpoint
    for i in range(20):
        d = os.path.join(m, f"d{i}")
        os.mkdir(d)
        for j in range(10):
            with open(os.path.join(d, f"f{j}"), "w") as f:
                f.write("x" * j)
        os.symlink("f1", os.path.join(d, "link"))
        os.link(os.path.join(d, "f2"), os.path.join(d, "hard"))
    for e in os.scandir(m):  # readdirplus looks entries up too
        for e2 in os.scandir(e.path):
            e2.stat(follow_symlinks=False)
    os.rename(os.path.join(m, "d0"), os.path.join(m, "d0-renamed"))
    os.unlink(os.path.join(m, "d1", "f1"))
    held = pt.fd_count()
    assert held > start + 100, f"lookups did not hold handles: {start} -> {held}"

    def forgotten():
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2")
        return pt.fd_count() <= start
    wait_for(forgotten, 15, interval=0.3, what=f"fd count back to {start} (now {pt.fd_count()})")
    assert pt.fd_count() == start, (start, fd_targets(pt.pid))
    r = pt.stop()
    assert r.rc == 0, r.stderr
    ops = r.summary["dev_ops"]
    assert ops.get("FORGET", 0) + ops.get("BATCH_FORGET", 0) > 0, r.summary


def test_daemonize_and_pidfile(cli, dirs, workdir):
    src, mnt = dirs
    pidfile = os.path.join(workdir, "pid")
    with open(os.path.join(src, "hello"), "w") as f:
        f.write("hi")
    r = cli(["passthrough", "--daemonize", "--pidfile", pidfile, src, mnt], mountpoint=mnt)
    try:
        assert r.rc == 0, r
        assert mounts_at(mnt), "not mounted when --daemonize returned"
        pid = int(open(pidfile).read())
        assert stat.S_IMODE(os.stat(pidfile).st_mode) == 0o644
        assert open(os.path.join(mnt, "hello")).read() == "hi"
    finally:
        subprocess.run(["umount", mnt], timeout=10)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
             open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z", 10, what="daemon exit")
    wait_for(lambda: not os.path.exists(pidfile), 5, what="pidfile removed")


# ---- the daemon as an unprivileged user, through fusermount3

@pytest.fixture
def dev_fuse_for_users():
    """fusermount3 opens /dev/fuse with the user's rights; the project
    machines have it 0600 (see test_unprivileged.py). 0666 for the test."""
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    if mode & 0o006 == 0o006:
        yield
        return
    if os.environ.get("FURING_TEST_NO_CHMOD"):
        pytest.skip("/dev/fuse is not usable by users and FURING_TEST_NO_CHMOD is set")
    os.chmod("/dev/fuse", mode | 0o006)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", mode)


USER_CLIENT = r"""
import os, sys
m = sys.argv[1]
os.mkdir(os.path.join(m, "d"))
with open(os.path.join(m, "d", "f"), "w") as f:
    f.write("by the user")
os.rename(os.path.join(m, "d", "f"), os.path.join(m, "g"))
st = os.stat(os.path.join(m, "g"))
assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), (st.st_uid, st.st_gid)
assert open(os.path.join(m, "g")).read() == "by the user"
assert sorted(os.listdir(m)) == ["d", "g", "mine"], os.listdir(m)
try:
    open(os.path.join(m, "mine"), "w")
    raise SystemExit("wrote a read-only file")
except PermissionError:
    pass
print("client ok")
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv missing")
@pytest.mark.skipif(not os.path.exists("/usr/bin/fusermount3"), reason="fusermount3 missing")
def test_unprivileged_daemon(passthrough, workdir, furing_bin, dev_fuse_for_users):
    open_up(workdir)
    src = os.path.join(workdir, "usrc")
    mnt = os.path.join(workdir, "umnt")
    os.mkdir(src)
    os.mkdir(mnt)
    with open(os.path.join(src, "mine"), "w") as f:
        f.write("r/o")
    os.chmod(os.path.join(src, "mine"), 0o444)
    for p in (src, mnt, os.path.join(src, "mine")):
        os.chown(p, NOBODY, NOBODY)
    binary = user_binary(furing_bin, workdir)
    pt = passthrough(source=src, mountpoint=mnt, binary=binary, env=USER_ENV,
                     prefix=[SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"])
    m = mounts_at(mnt)[0]
    assert f"user_id={NOBODY}" in m.super_opts.split(","), m
    c = run_as(NOBODY, NOBODY, USER_CLIENT, mnt)
    assert c.returncode == 0, c.stdout.decode(errors="replace")
    st = os.stat(os.path.join(src, "g"))
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    r = pt.stop()
    assert r.rc == 0, r.stderr


# ---- without io_uring at all

def test_without_io_uring(passthrough_plain, io_uring_sysctl_off, workdir):
    """Every backend call inline on blocking workers; identity by switching
    the thread's fsuid/fsgid."""
    open_up(workdir)
    pt = passthrough_plain("--allow-other", transport_args=["--io-uring=auto"])
    m = pt.mountpoint
    os.chmod(pt.source, 0o1777)
    code = r"""
import os, sys
m = sys.argv[1]
with open(os.path.join(m, "f"), "w") as f:
    f.write("data" * 1000)
os.mkdir(os.path.join(m, "d"))
os.symlink("f", os.path.join(m, "l"))
os.rename(os.path.join(m, "f"), os.path.join(m, "d", "f2"))
assert open(os.path.join(m, "d", "f2")).read() == "data" * 1000
os.setxattr(os.path.join(m, "d", "f2"), "user.a", b"1")
assert os.getxattr(os.path.join(m, "d", "f2"), "user.a") == b"1"
print(sorted(os.listdir(m)))
"""
    c = run_as(NOBODY, NOBODY, code, m)
    assert c.returncode == 0, c.stdout.decode(errors="replace")
    for name in ("d", "d/f2", "l"):
        st = os.lstat(os.path.join(pt.source, name))
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY), name
    r = pt.stop()
    assert r.rc == 0, r.stderr
    assert any("blocking reads" in l for l in r.stderr.splitlines()), r.stderr


# ---- flock waits

def test_flock_wait_does_not_hold_the_worker(passthrough):
    """A blocking flock through the mount waits (retried from a timer), the
    mount keeps serving meanwhile, the lock is granted when the holder lets
    go, and a signal interrupts a wait with EINTR."""
    pt = passthrough("--threads=1")
    p = os.path.join(pt.mountpoint, "lockme")
    open(p, "w").close()
    holder = os.open(p, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    got = []

    def waiter():
        fd = os.open(p, os.O_RDWR)
        t0 = time.monotonic()
        fcntl.flock(fd, fcntl.LOCK_EX)
        got.append(time.monotonic() - t0)
        os.close(fd)
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert not got, "the second exclusive flock was granted while the first was held"
    # the single worker still serves
    t0 = time.monotonic()
    for i in range(50):
        with open(os.path.join(pt.mountpoint, f"other{i}"), "w") as f:
            f.write("x")
    assert time.monotonic() - t0 < 5
    fcntl.flock(holder, fcntl.LOCK_UN)
    t.join(10)
    assert got and got[0] >= 0.3, got

    # a wait interrupted by a signal ends with EINTR
    fcntl.flock(holder, fcntl.LOCK_EX)
    # (the handler raises: Python would otherwise retry the call, PEP 475;
    # flock returns at all only once the daemon answered the interrupt)
    code = r"""
import fcntl, os, signal, sys
class Alarm(Exception):
    pass
def ring(*a):
    raise Alarm()
signal.signal(signal.SIGALRM, ring)
fd = os.open(sys.argv[1], os.O_RDWR)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("granted")
except Alarm:
    print("interrupted")
"""
    c = subprocess.run([sys.executable, "-c", code, p], stdout=subprocess.PIPE, timeout=20)
    assert c.stdout.decode().strip() == "interrupted", c.stdout
    os.close(holder)
    r = pt.stop()
    assert r.rc == 0, r.stderr


def test_no_xattr(passthrough, transport):
    """--no-xattr: every xattr call fails with EOPNOTSUPP and leaves SOURCE's
    alone, and kernel passthrough writes no longer ask furing for
    security.capability before each one."""
    pt = passthrough("--no-xattr", "--kernel-passthrough")
    src_file = os.path.join(pt.source, "f")
    with open(src_file, "wb") as f:
        f.write(bytes(64 * 4096))
    os.setxattr(src_file, "user.kept", b"v")
    mnt_file = os.path.join(pt.mountpoint, "f")
    for call in (lambda: os.getxattr(mnt_file, "user.kept"), lambda: os.listxattr(mnt_file),
                 lambda: os.setxattr(mnt_file, "user.new", b"x"), lambda: os.removexattr(mnt_file, "user.kept")):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EOPNOTSUPP, e.value
    assert os.getxattr(src_file, "user.kept") == b"v" and "user.new" not in os.listxattr(src_file)
    # File capabilities are still dropped by a write: furing says it has no
    # xattrs, but the source filesystem's own write path removes them.
    caps = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)  # vfs_cap_data v2: CAP_NET_BIND_SERVICE, effective
    os.setxattr(src_file, "security.capability", caps)
    fd = os.open(mnt_file, os.O_RDWR | os.O_DIRECT)
    try:
        for i in range(64):
            write_direct(fd, bytes([i + 1]) * 4096, i * 4096)
    finally:
        os.close(fd)
    with open(src_file, "rb") as f:
        assert f.read() == b"".join(bytes([i + 1]) * 4096 for i in range(64))
    with pytest.raises(OSError) as e:
        os.getxattr(src_file, "security.capability")
    assert e.value.errno == errno.ENODATA, "a write kept the file's capabilities"
    r = pt.stop()
    assert r.rc == 0, r.stderr
    assert op_count(r.summary, "WRITE") == 0, r.summary  # the kernel wrote SOURCE itself
    assert op_count(r.summary, "GETXATTR") <= 1, r.summary  # asked once (ENOSYS), not per write
