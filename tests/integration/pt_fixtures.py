"""Fixtures and helpers for the `furing passthrough` tests (imported by the
test_passthrough*.py modules).

- passthrough : factory starting `furing passthrough [args] SOURCE MOUNTPOINT`
                (SOURCE and MOUNTPOINT are directories made in the test's
                workdir unless given), waiting for the mount, with the same
                watchdog and teardown as the export's `furing` fixture:
                SIGTERM, SIGKILL, umount -l, and a failed test when the
                server needed SIGKILL, exited non-zero or left its mount.
- run_as      : runs a Python snippet as another user (setpriv), for the
                second-user tests; root cannot enter a FUSE mount without
                allow_other, so the mounts there use --allow-other.
- tree_state  : a comparable description of a directory tree.
- ext4_source : a directory on a fresh loop-mounted ext4, for a SOURCE whose
                O_DIRECT needs aligned buffers and offsets and whose
                SEEK_DATA/SEEK_HOLE see real extents, whatever /tmp is.
"""

import hashlib
import os
import shutil
import stat
import subprocess
import sys

import pytest

import conftest
from conftest import Furing
from furing_helpers import TRANSPORT_ARGS

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
USER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"}
NOBODY = 65534


class Passthrough(Furing):
    """One running `furing passthrough`."""

    def __init__(self, argv, source, mountpoint, workdir, transport, env, tag):
        super().__init__(argv, source, mountpoint, workdir, transport, env, tag)
        self.source = source

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@pytest.fixture
def passthrough(request, furing_bin, workdir, transport):
    """passthrough(*extra, source=None, mountpoint=None, wait=True, env=None,
    prefix=None, binary=None, transport_args=None) -> Passthrough, started
    with the transport's --io-uring option unless transport_args= is given."""
    yield from _factory(request, furing_bin, workdir, transport)


@pytest.fixture
def passthrough_plain(request, furing_bin, workdir):
    """Like `passthrough`, not parametrized over transports."""
    yield from _factory(request, furing_bin, workdir, None)


def _factory(request, furing_bin, workdir, transport):
    instances = []

    def start(*extra, source=None, mountpoint=None, wait=True, env=None, prefix=None, binary=None,
              transport_args=None):
        n = len(instances)
        if source is None:
            source = os.path.join(workdir, f"src{n}")
            os.makedirs(source, exist_ok=True)
        if mountpoint is None:
            mountpoint = os.path.join(workdir, f"mnt{n}")
            os.makedirs(mountpoint, exist_ok=True)
        argv = list(prefix or []) + [binary or furing_bin, "passthrough"]
        if transport_args is not None:
            argv += list(transport_args)
        elif transport is not None:
            argv += TRANSPORT_ARGS[transport]
        argv += [str(a) for a in extra] + [source, mountpoint]
        inst = Passthrough(argv, source, mountpoint, workdir, transport, env, n)
        instances.append(inst)
        inst.start()
        if wait:
            inst.wait_ready()
        return inst

    yield from conftest.supervise(request, instances, start)


def user_binary(furing_bin, workdir):
    """The binary, or a copy a user can run (world-executable, in
    world-searchable directories)."""
    p = os.path.realpath(furing_bin)
    ok = bool(os.stat(p).st_mode & stat.S_IXOTH)
    d = os.path.dirname(p)
    while ok and d != "/":
        ok = bool(os.stat(d).st_mode & stat.S_IXOTH)
        d = os.path.dirname(d)
    if ok:
        return p
    copy = os.path.join(workdir, "furing-for-users")
    shutil.copy2(p, copy)
    os.chmod(copy, 0o755)
    return copy


def open_up(path):
    """Make path and its parents up to the session's directory (furing-it-*)
    searchable by other users; nothing above it is touched (conftest makes
    the session directory 0755; its parent must be searchable already)."""
    p = os.path.realpath(path)
    while p != "/":
        st = os.stat(p)
        if not st.st_mode & stat.S_IXOTH:
            os.chmod(p, stat.S_IMODE(st.st_mode) | 0o011)
        if os.path.basename(p).startswith("furing-it-"):
            break
        p = os.path.dirname(p)


def run_as(uid, gid, code, *args, groups=None, timeout=60):
    """Runs `python3 -c code args...` as uid/gid (and supplementary groups).
    Returns the CompletedProcess (stdout+stderr together)."""
    cmd = [SETPRIV, f"--reuid={uid}", f"--regid={gid}"]
    cmd += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    cmd += [sys.executable, "-c", code] + [str(a) for a in args]
    return subprocess.run(cmd, env=USER_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def _xattrs(path):
    try:
        names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user."))
        return tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)
    except OSError as e:
        return ("errno", e.errno)


def tree_state(root):
    """{relative path: (type, mode, uid, gid, nlink, size or content hash, target, xattrs)}
    for everything below root (not root itself)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            content = target = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    content = (st.st_size, hashlib.sha256(f.read()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(p)
            nlink = st.st_nlink if not stat.S_ISDIR(st.st_mode) else None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, nlink, content,
                        target, _xattrs(p))
    return out


def diff_states(a, b, what):
    """A readable list of differences between two tree_state()s."""
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append(f"{what}: {k}: {a.get(k)} != {b.get(k)}")
    return lines


MKFS_EXT4 = shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4"


@pytest.fixture
def ext4_source(workdir):
    """A directory on a 64 MiB ext4 image mounted -o loop in the workdir
    (tmpfs, where the session directory may live, takes unaligned O_DIRECT,
    so a test there could not see an alignment fault). List it before
    `passthrough` in a test's arguments: it is unmounted after the server
    has stopped."""
    if not os.path.exists(MKFS_EXT4):
        pytest.skip("mkfs.ext4 (e2fsprogs) missing")
    img = os.path.join(workdir, "ext4.img")
    mnt = os.path.join(workdir, "ext4")
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    os.mkdir(mnt)
    subprocess.run([MKFS_EXT4, "-q", "-F", img], check=True, timeout=60)
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True, timeout=60)
    src = os.path.join(mnt, "src")
    os.mkdir(src)
    try:
        yield src
    finally:
        if subprocess.run(["umount", mnt], timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", mnt], timeout=60)


def server_fd_flags(pt, path):
    """The open(2) flags of each descriptor the server holds on @path."""
    flags = []
    for fd in os.listdir(f"/proc/{pt.pid}/fd"):
        try:
            if os.readlink(f"/proc/{pt.pid}/fd/{fd}") != path:
                continue
            with open(f"/proc/{pt.pid}/fdinfo/{fd}") as f:
                info = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        except OSError:
            continue  # closed meanwhile
        flags.append(int(info["flags"].strip(), 8))
    return flags
