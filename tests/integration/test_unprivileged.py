"""The export run as an unprivileged user (uid/gid 65534) through the setuid
fusermount3 helper; and the same user without fusermount3 on PATH."""

import os
import errno
import random
import shutil
import signal
import stat
import subprocess
import sys

import pytest

from furing_helpers import (
    MiB, assert_one_error_line, lazy_umount_all, mounts_at, pattern, read_file, stat_errno_uncached, wait_serving,
)

pytestmark = [
    pytest.mark.unprivileged,
    pytest.mark.timeout(30),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to uid 65534"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing"),
]

UID = GID = 65534
SETPRIV = [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={UID}", f"--regid={GID}",
           "--clear-groups"]
USER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"}

CLIENT = r"""
import os, random, sys
path, size = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
assert os.fstat(fd).st_size == size, os.fstat(fd).st_size
for i, (off, n) in enumerate(((0, 4096), (12345, 200000), (size - 1, 1))):
    d = random.Random(i).randbytes(n)
    assert os.pwrite(fd, d, off) == n
    assert os.pread(fd, n, off) == d, f"mismatch at {off}"
os.close(fd)
print("client ok")
"""


def _reachable_by_user(path):
    """World-executable binary in world-searchable directories?"""
    p = os.path.realpath(path)
    if not os.stat(p).st_mode & stat.S_IXOTH:
        return False
    d = os.path.dirname(p)
    while d != "/":
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        d = os.path.dirname(d)
    return True


@pytest.fixture
def dev_fuse_for_users():
    """fusermount3 opens /dev/fuse with the *user's* rights (it drops its
    setuid privileges around that open()), so a /dev/fuse that is
    crw------- root (as on the project machines) makes every unprivileged
    FUSE mount fail with EACCES. Distributions ship it 0666; do the same for
    the duration of the test and restore the old mode afterwards. Set
    FURING_TEST_NO_CHMOD=1 to skip instead."""
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    if mode & 0o006 == 0o006:
        yield
        return
    if os.environ.get("FURING_TEST_NO_CHMOD"):
        pytest.skip(f"/dev/fuse is {mode:o}: unprivileged users cannot open it "
                    "(and FURING_TEST_NO_CHMOD is set)")
    os.chmod("/dev/fuse", mode | 0o006)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", mode)


@pytest.fixture
def userdir(workdir, furing_bin, dev_fuse_for_users):
    """A directory owned by uid 65534 with an image, a mountpoint file and a
    binary the user can run."""
    os.chmod(workdir, 0o755)
    d = os.path.join(workdir, "user")
    os.mkdir(d, 0o755)
    img = os.path.join(d, "image.raw")
    with open(img, "wb") as f:
        f.write(pattern(4 * MiB, 50))
    mp = os.path.join(d, "mnt")
    open(mp, "wb").close()
    owned = [d, img, mp]
    binary = furing_bin
    if not _reachable_by_user(furing_bin):
        binary = os.path.join(d, "furing")
        shutil.copy2(furing_bin, binary)
        owned.append(binary)
    # the user's own files only: the built binary itself stays root's (it
    # may be on a read-only tree, as in the 7.3 VM, and is not ours to give)
    for p in owned:
        os.chown(p, UID, GID)
    return d, img, mp, binary


def test_unprivileged_export_via_fusermount3(furing, userdir):
    d, img, mp, binary = userdir
    size = os.path.getsize(img)
    f = furing(img, writable=True, mountpoint=mp, prefix=SETPRIV, env=USER_ENV, binary=binary)
    m = mounts_at(mp)[0]
    assert f"user_id={UID}" in m.super_opts.split(","), m
    # root may not enter a user's fuse mount without allow_other: the client
    # runs as the user too
    c = subprocess.run(SETPRIV + [sys.executable, "-c", CLIENT, mp, str(size)], env=USER_ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert c.returncode == 0, c.stdout.decode(errors="replace")
    data = read_file(img)
    for i, (off, n) in enumerate(((0, 4096), (12345, 200000), (size - 1, 1))):
        assert data[off:off + n] == random.Random(i).randbytes(n), f"backing mismatch at {off}"
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert not mounts_at(mp), "still mounted after the unprivileged export stopped"


def test_unprivileged_without_fusermount3(cli, userdir):
    d, img, mp, binary = userdir
    env = {"PATH": "/nonexistent", "LANG": "C"}
    r = cli(["export", "--writable", img, mp], mountpoint=mp, env=env, prefix=SETPRIV,
            binary=binary)
    assert r.rc == 1, r
    line = assert_one_error_line(r.stderr, "no fusermount3")
    assert "fusermount" in line.lower(), f"error line does not name fusermount3: {line!r}"
    assert not mounts_at(mp)


def run_client(mp, size):
    c = subprocess.run(SETPRIV + [sys.executable, "-c", CLIENT, mp, str(size)], env=USER_ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert c.returncode == 0, c.stdout.decode(errors="replace")


def test_unprivileged_stale_mount_recovered(furing, userdir):
    """The user's own export killed with SIGKILL: the next one removes the
    dead mount with fusermount3 -u -z, says so, and serves."""
    d, img, mp, binary = userdir
    user = dict(prefix=SETPRIV, env=USER_ENV, binary=binary, writable=True, mountpoint=mp)
    first = furing(img, **user)
    wait_serving(first)  # INIT answered: fusermount3 mounts before it
    first.send(signal.SIGKILL)
    first.proc.wait(10)
    assert len(mounts_at(mp)) == 1, "the killed server's mount should stay"
    second = furing(img, precreate=False, wait=False, **user)
    wait_serving(second)
    said = [l for l in second.stderr_text().splitlines() if "unmounted the stale" in l]
    assert len(said) == 1 and mp in said[0], second.stderr_text()
    assert len(mounts_at(mp)) == 1 and f"user_id={UID}" in mounts_at(mp)[0].super_opts
    run_client(mp, os.path.getsize(img))
    r = second.stop()
    assert r.rc == 0, r.stderr
    assert not mounts_at(mp)


def test_unprivileged_stale_root_mount_named(furing_plain, cli, userdir):
    """A dead furing mount of root's on the user's file: fusermount3 may not
    remove it for the user, so one line says what root must run."""
    d, img, mp, binary = userdir
    first = furing_plain(img, "--allow-other", "--io-uring=off", mountpoint=mp)
    first.send(signal.SIGKILL)
    first.proc.wait(10)
    try:
        assert stat_errno_uncached(mp) in (errno.ENOTCONN, errno.ECONNABORTED)
        r = cli(["export", "--io-uring=off", img, mp], mountpoint=mp, env=USER_ENV, prefix=SETPRIV,
                binary=binary)
        assert r.rc == 1, r
        line = assert_one_error_line(r.stderr, "root's dead mount")
        assert f"as root: umount -l {mp}" in line, line
        assert len(mounts_at(mp)) == 1, "root's mount went away"
    finally:
        lazy_umount_all(mp)
