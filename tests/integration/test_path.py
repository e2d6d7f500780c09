"""The path API (furing_path_*), mounted for real on both transports:
examples/pathfs.c (the library's node table: lookup counts, renames, a file
unlinked while open, seen from system calls), examples/pathpt.c (a
directory mirrored; the cache timeouts) and tests/lib/pathasync.c (answers
from a thread of the filesystem's own, after the operation returned)."""

import errno
import os
import signal
import stat
import subprocess
import threading

import pytest

from furing_helpers import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, RENAME_EXCHANGE,
                            RENAME_NOREPLACE, errno_of, fallocate, op_count, parse_stats_line, read_file, renameat2,
                            stats_lines, wait_for)

pytestmark = pytest.mark.timeout(30)


def stop_clean(srv):
    r = srv.stop()
    assert r.rc == 0, f"exit {r.rc}; stderr:\n{r.stderr[-3000:]}"
    assert not srv.mounted()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_tree_ops(example, transport):
    h = example("pathfs", debug=False)
    m = h.mountpoint
    assert stat.S_ISDIR(os.stat(m).st_mode) and os.listdir(m) == []
    os.mkdir(os.path.join(m, "d"))
    os.mkdir(os.path.join(m, "d", "e"))
    write(os.path.join(m, "d", "e", "f"), b"hello")
    assert read_file(os.path.join(m, "d", "e", "f")) == b"hello"
    assert os.stat(os.path.join(m, "d", "e", "f")).st_size == 5
    assert errno_of(os.mkdir, os.path.join(m, "d")) == errno.EEXIST
    assert errno_of(os.rmdir, os.path.join(m, "d")) == errno.ENOTEMPTY
    assert errno_of(os.stat, os.path.join(m, "nope")) == errno.ENOENT
    assert errno_of(os.unlink, os.path.join(m, "d")) == errno.EISDIR
    # A directory renamed: the names below follow it (the table moves one node).
    os.rename(os.path.join(m, "d"), os.path.join(m, "x"))
    assert read_file(os.path.join(m, "x", "e", "f")) == b"hello"
    assert errno_of(os.stat, os.path.join(m, "d")) == errno.ENOENT
    os.unlink(os.path.join(m, "x", "e", "f"))
    os.rmdir(os.path.join(m, "x", "e"))
    assert os.listdir(os.path.join(m, "x")) == []
    # truncate through setattr, and O_TRUNC (open + setattr size 0)
    p = os.path.join(m, "t")
    write(p, b"0123456789")
    os.truncate(p, 3)
    assert read_file(p) == b"012"
    os.truncate(p, 6)
    assert read_file(p) == b"012\0\0\0"
    write(p, b"ab")
    assert read_file(p) == b"ab"
    os.chmod(p, 0o600)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    os.utime(p, (1000, 2000))
    assert os.stat(p).st_mtime == 2000
    assert os.statvfs(m).f_namemax == 255
    stop_clean(h)


def test_rename_flags_and_replace(example, transport):
    h = example("pathfs", debug=False)
    m = h.mountpoint
    a, b = os.path.join(m, "a"), os.path.join(m, "b")
    write(a, b"A")
    write(b, b"B")
    assert errno_of(renameat2, a, b, RENAME_NOREPLACE) == errno.EEXIST
    renameat2(a, b, RENAME_EXCHANGE)
    assert read_file(a) == b"B" and read_file(b) == b"A"
    ino_b = os.stat(b).st_ino
    os.rename(a, b)  # replaces b
    assert read_file(b) == b"B" and not os.path.exists(a)
    assert os.stat(b).st_ino != ino_b
    stop_clean(h)


def test_unlinked_while_open(example, transport):
    """The node of a file unlinked (or renamed over) while open stays until
    its release: reads, writes and fstat keep working; the name is gone."""
    h = example("pathfs", debug=False)
    m = h.mountpoint
    p = os.path.join(m, "f")
    write(p, b"data")
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        assert not os.path.exists(p) and os.listdir(m) == []
        assert os.pwrite(fd, b"more", 4) == 4
        assert os.pread(fd, 100, 0) == b"datamore"
        assert os.fstat(fd).st_size == 8
        # A new file of the same name is another node.
        write(p, b"new")
        assert read_file(p) == b"new"
        assert os.pread(fd, 100, 0) == b"datamore"
    finally:
        os.close(fd)
    q = os.path.join(m, "q")
    write(q, b"old")
    fd = os.open(q, os.O_RDONLY)
    try:
        os.rename(p, q)  # q's old node is renamed over while open
        assert read_file(q) == b"new"
        assert os.pread(fd, 100, 0) == b"old"
    finally:
        os.close(fd)
    stop_clean(h)


def test_many_names_and_listing(example, transport):
    """More names than one readdir answer holds (the buffered listing's
    offsets), and lookups/forgets of many nodes."""
    h = example("pathfs", debug=False)
    m = h.mountpoint
    names = [f"file-with-a-long-name-{i:05d}" for i in range(2000)]
    for n in names:
        open(os.path.join(m, n), "wb").close()
    assert sorted(os.listdir(m)) == names
    for n in names[::2]:
        os.unlink(os.path.join(m, n))
    assert sorted(os.listdir(m)) == names[1::2]
    # Drop the kernel's cache: forgets reach the table, names are looked up again.
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
    assert all(os.path.exists(os.path.join(m, n)) for n in names[1::200])
    stop_clean(h)


# ====================================================================== pathpt

def test_pathpt_mirrors_a_directory(example, transport, workdir):
    """Every operation lands on the source directory, and what is made there
    shows through the mount; a file unlinked while open still reads through
    its descriptor (the library hands path NULL, pathpt uses the handle)."""
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    write(os.path.join(src, "pre"), b"made before the mount")
    h = example("pathpt", src, debug=False)
    m = h.mountpoint
    assert read_file(os.path.join(m, "pre")) == b"made before the mount"
    os.mkdir(os.path.join(m, "d"))
    write(os.path.join(m, "d", "f"), b"hello")
    assert read_file(os.path.join(src, "d", "f")) == b"hello"
    assert sorted(os.listdir(m)) == ["d", "pre"]
    os.rename(os.path.join(m, "d"), os.path.join(m, "e"))
    assert os.listdir(os.path.join(src, "e")) == ["f"] and not os.path.exists(os.path.join(src, "d"))
    assert read_file(os.path.join(m, "e", "f")) == b"hello"
    os.truncate(os.path.join(m, "e", "f"), 2)
    os.chmod(os.path.join(m, "e", "f"), 0o640)
    os.utime(os.path.join(m, "e", "f"), (1000, 2000))
    st = os.stat(os.path.join(src, "e", "f"))
    assert (st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime) == (2, 0o640, 2000)
    assert errno_of(os.rmdir, os.path.join(m, "e")) == errno.ENOTEMPTY
    assert errno_of(os.mkdir, os.path.join(m, "e")) == errno.EEXIST
    assert errno_of(os.stat, os.path.join(m, "nope")) == errno.ENOENT
    assert errno_of(renameat2, os.path.join(m, "pre"), os.path.join(m, "e"), RENAME_NOREPLACE) == errno.EEXIST
    os.mkfifo(os.path.join(m, "fifo"))  # mknod
    assert stat.S_ISFIFO(os.lstat(os.path.join(src, "fifo")).st_mode)
    os.unlink(os.path.join(m, "fifo"))
    fd = os.open(os.path.join(m, "e", "f"), os.O_RDWR)
    try:
        os.unlink(os.path.join(m, "e", "f"))
        assert os.listdir(os.path.join(src, "e")) == []
        assert os.pwrite(fd, b"llo", 2) == 3
        assert os.pread(fd, 100, 0) == b"hello"
        assert os.fstat(fd).st_size == 5
        os.ftruncate(fd, 1)
        assert os.fstat(fd).st_size == 1
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rmdir(os.path.join(m, "e"))
    assert os.statvfs(m).f_blocks == os.statvfs(src).f_blocks
    stop_clean(h)


def test_pathpt_links_and_xattrs(example, transport, workdir):
    """symlink, readlink, link and the xattr operations of the path API,
    through pathpt onto the source directory."""
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    h = example("pathpt", src, debug=False)
    m = h.mountpoint
    f = os.path.join(m, "f")
    write(f, b"data")
    os.symlink("f", os.path.join(m, "s"))
    assert os.readlink(os.path.join(src, "s")) == "f"
    assert os.readlink(os.path.join(m, "s")) == "f"
    assert stat.S_ISLNK(os.lstat(os.path.join(m, "s")).st_mode)
    assert read_file(os.path.join(m, "s")) == b"data"  # followed by the kernel
    long_target = "x" * 1000
    os.symlink(long_target, os.path.join(m, "long"))
    assert os.readlink(os.path.join(m, "long")) == long_target
    assert errno_of(os.readlink, f) == errno.EINVAL
    os.link(f, os.path.join(m, "hard"))
    assert os.stat(os.path.join(src, "f")).st_ino == os.stat(os.path.join(src, "hard")).st_ino
    assert os.stat(os.path.join(m, "hard")).st_nlink == 2
    write(os.path.join(m, "hard"), b"through the other name")
    assert read_file(f) == b"through the other name"
    os.unlink(f)
    assert read_file(os.path.join(m, "hard")) == b"through the other name"
    assert errno_of(os.link, os.path.join(m, "nope"), os.path.join(m, "x")) == errno.ENOENT

    g = os.path.join(m, "hard")
    os.setxattr(g, "user.colour", b"blue")
    os.setxattr(g, "user.big", b"v" * 3000)
    assert os.getxattr(os.path.join(src, "hard"), "user.colour") == b"blue"
    assert os.getxattr(g, "user.colour") == b"blue"
    assert os.getxattr(g, "user.big") == b"v" * 3000
    assert sorted(os.listxattr(g)) == ["user.big", "user.colour"]
    assert errno_of(os.setxattr, g, "user.colour", b"red", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.getxattr, g, "user.none") == errno.ENODATA
    os.removexattr(g, "user.colour")
    assert os.listxattr(g) == ["user.big"]
    assert errno_of(os.removexattr, g, "user.colour") == errno.ENODATA
    stop_clean(h)


def test_pathpt_data_ops(example, transport, workdir):
    """fallocate (allocate, punch a hole, zero a range), SEEK_DATA /
    SEEK_HOLE, copy_file_range and fsync of a directory through the path
    API's data operations, each checked on the source file."""
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    h = example("pathpt", src, debug=False)
    m = h.mountpoint
    K = 65536
    data = bytes(range(256)) * (4 * K // 256)  # 256 KiB, no zero run
    fd = os.open(os.path.join(m, "f"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert os.pwrite(fd, data, 0) == len(data)
        os.fsync(fd)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, K, K)
        fallocate(fd, FALLOC_FL_ZERO_RANGE, 3 * K, K // 2)
        fallocate(fd, 0, 4 * K, 2 * K)  # grows the file
        want = data[:K] + bytes(K) + data[2 * K:3 * K] + bytes(K // 2) + data[3 * K + K // 2:] + bytes(2 * K)
        assert os.fstat(fd).st_size == 6 * K
        assert read_file(os.path.join(src, "f")) == want
        assert os.pread(fd, 6 * K, 0) == want
        # The hole made by the punch, seen through the mount (the kernel
        # asks the server: its own answer would be "all data").
        assert os.lseek(fd, 0, os.SEEK_HOLE) == K
        assert os.lseek(fd, K, os.SEEK_DATA) == 2 * K
        assert errno_of(os.lseek, fd, 7 * K, os.SEEK_DATA) == errno.ENXIO
        out = os.open(os.path.join(m, "g"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            assert os.copy_file_range(fd, out, 2 * K, 100, 0) == 2 * K
            assert read_file(os.path.join(src, "g")) == want[100:100 + 2 * K]
            # To the same file, from an offset past the end: nothing to copy.
            assert os.copy_file_range(fd, out, 10, 10 * K, 0) == 0
        finally:
            os.close(out)
    finally:
        os.close(fd)
    dfd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)  # fsyncdir
    finally:
        os.close(dfd)
    stop_clean(h)


def test_pathfs_without_data_ops(example, transport):
    """A path filesystem without fallocate, lseek and copy_file_range
    (pathfs): the kernel does without them, as furing.h says."""
    h = example("pathfs", debug=False)
    f = os.path.join(h.mountpoint, "f")
    write(f, b"x" * 5000)
    fd = os.open(f, os.O_RDWR)
    try:
        assert errno_of(fallocate, fd, 0, 0, 8192) == errno.EOPNOTSUPP
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        assert os.lseek(fd, 0, os.SEEK_HOLE) == 5000
        g = os.open(os.path.join(h.mountpoint, "g"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            assert os.copy_file_range(fd, g, 5000, 0, 0) == 5000
        finally:
            os.close(g)
        assert read_file(os.path.join(h.mountpoint, "g")) == b"x" * 5000
    finally:
        os.close(fd)
    stop_clean(h)


def test_pathpt_timeouts(example, transport, workdir):
    """-o timeout=0 (furing_path_set_timeouts(0, 0, 0)): a change made in
    the source behind the kernel's back shows at once. A negative timeout:
    a name looked up while missing stays missing for the kernel even after
    it appears in the source (60 s, longer than the test)."""
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    h = example("pathpt", "-o", "timeout=0", src, debug=False)
    m = h.mountpoint
    write(os.path.join(m, "f"), b"1")
    assert os.stat(os.path.join(m, "f")).st_size == 1
    write(os.path.join(src, "f"), b"12345")
    assert os.stat(os.path.join(m, "f")).st_size == 5
    assert errno_of(os.stat, os.path.join(m, "new")) == errno.ENOENT
    write(os.path.join(src, "new"), b"")
    assert os.path.exists(os.path.join(m, "new"))
    os.unlink(os.path.join(src, "new"))
    assert errno_of(os.stat, os.path.join(m, "new")) == errno.ENOENT
    stop_clean(h)

    n = example("pathpt", "-o", "negative_timeout=60", src, debug=False)
    assert errno_of(os.stat, os.path.join(n.mountpoint, "late")) == errno.ENOENT
    write(os.path.join(src, "late"), b"")
    assert errno_of(os.stat, os.path.join(n.mountpoint, "late")) == errno.ENOENT  # the kernel remembers
    assert os.path.exists(os.path.join(n.mountpoint, "f"))
    stop_clean(n)


def lookups(h):
    """The LOOKUPs the server has answered so far (both transports), from
    the counters SIGUSR1 has the library log."""
    seen = len(stats_lines(h.stderr_text(), "stats"))
    h.send(signal.SIGUSR1)
    wait_for(lambda: len(stats_lines(h.stderr_text(), "stats")) > seen, 10, what="the SIGUSR1 counters")
    return op_count(parse_stats_line(stats_lines(h.stderr_text(), "stats")[-1]), "LOOKUP")


@pytest.mark.parametrize("plus", [True, False], ids=["readdirplus", "noreaddirplus"])
def test_pathpt_readdirplus(example, transport, workdir, plus):
    """pathpt's readdirplus (an lstat per name): `ls -l` of 200 files shows
    the source's attributes, and the kernel got them with the listing, so
    it looked up far fewer names than it listed. -o noreaddirplus (no
    readdirplus in the table) is the control: a LOOKUP per name, which
    shows the count tells the two apart. The names then stat from the
    kernel's cache, a lookup each still counted by the library's table
    (os.scandir's stat finds them, drop_caches forgets them)."""
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    names = [f"f{i:03d}" for i in range(200)]
    for i, n in enumerate(names):
        write(os.path.join(src, n), b"x" * i)
        os.chmod(os.path.join(src, n), 0o600 + (i % 8) * 0o10)
        os.utime(os.path.join(src, n), (1000 + i, 2000 + i))
    os.mkdir(os.path.join(src, "dir"))
    os.symlink("f007", os.path.join(src, "link"))
    listed = sorted(names + ["dir", "link"])
    # Long timeouts: a slow (sanitized) run must not see the entries expire.
    h = example("pathpt", "-o", "timeout=60" + ("" if plus else ",noreaddirplus"), src, debug=False)
    m = h.mountpoint
    before = lookups(h)
    ls = ["ls", "-ln", "--time-style=+%s"]
    out = subprocess.run(ls + [m], capture_output=True, text=True, timeout=20, check=True).stdout
    looked_up = lookups(h) - before
    assert out == subprocess.run(ls + [src], capture_output=True, text=True, timeout=20, check=True).stdout
    assert len(out.splitlines()) == len(listed) + 1  # and "total"
    if plus:
        assert looked_up < len(listed) // 10, f"{looked_up} LOOKUPs for {len(listed)} names listed"
    else:
        assert looked_up >= len(listed), f"only {looked_up} LOOKUPs for {len(listed)} names without readdirplus"
    # The entries the kernel got with the listing are the source's (and are
    # its nodes: reading through them works).
    got = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(m)}
    assert sorted(got) == listed
    for n in listed:
        want = os.lstat(os.path.join(src, n))
        g = got[n]
        assert (g.st_mode, g.st_size, g.st_nlink, g.st_mtime, g.st_uid) == \
            (want.st_mode, want.st_size, want.st_nlink, want.st_mtime, want.st_uid), n
    assert read_file(os.path.join(m, "f150")) == b"x" * 150
    assert os.readlink(os.path.join(m, "link")) == "f007"
    if plus:
        assert lookups(h) - before < len(listed) // 10
    # The kernel forgets what the listing counted; the names are found again.
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
    assert sorted(os.listdir(m)) == listed
    assert os.stat(os.path.join(m, "f199")).st_size == 199
    stop_clean(h)


def test_pathpt_refuses_bad_options(examples_dir, workdir):
    for opt in ("timeout=-1", "timeout=x", "negative_timeout=nan", "colour=blue", "noreaddirplus=1"):
        r = subprocess.run([os.path.join(examples_dir, "pathpt"), "-f", "-o", opt, workdir, workdir],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and "bad option" in r.stderr, (opt, r)


# =================================================================== pathasync

def test_async_replies_from_another_thread(example, examples_dir, transport):
    """Reads of /gate return FURING_PATH_ASYNC and are answered by the
    filesystem's replier thread only after /open is written, a request the
    workers serve while those reads wait: with one worker on io_uring, all
    of them wait at once (on /dev/fuse a worker waits for its pending
    answer, so it gets a worker per read and one more). Lookups and stats
    are answered on that thread too."""
    readers = 4
    binary = os.path.join(os.path.dirname(examples_dir), "tests", "lib", "pathasync")
    threads = 1 if transport == "ring" else readers + 1
    h = example("pathasync", "-o", f"threads={threads}", binary=binary, debug=False)
    m = h.mountpoint
    assert sorted(os.listdir(m)) == ["gate", "open", "stats"]
    assert os.stat(os.path.join(m, "gate")).st_size == 4096

    def stats():
        line = read_file(os.path.join(m, "stats")).decode().split()
        return {k: int(v) for k, v in (kv.split("=") for kv in line)}

    got = [None] * readers
    fds = [os.open(os.path.join(m, "gate"), os.O_RDONLY) for _ in range(readers)]

    def reader(i):
        got[i] = os.pread(fds[i], 100, 0)

    ts = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(readers)]
    try:
        for t in ts:
            t.start()
        wait_for(lambda: stats()["queued"] == readers, 10, what="every read waiting at the gate")
        assert all(g is None for g in got) and all(t.is_alive() for t in ts)
        # The workers are free while the reads wait: other requests are served.
        assert os.stat(os.path.join(m, "open")).st_mode & 0o777 == 0o644
        fd = os.open(os.path.join(m, "open"), os.O_WRONLY)
        try:
            assert os.write(fd, b"go") == 2
        finally:
            os.close(fd)
        for t in ts:
            t.join(10)
        assert not any(t.is_alive() for t in ts), "a read at the gate was never answered"
    finally:
        for fd in fds:
            os.close(fd)
    assert all(g is not None and g.startswith(b"gate ") and g.endswith(b"\n") for g in got), got
    assert len(set(got)) == readers, got  # each its own answer
    s = stats()
    assert s["queued"] == 0 and s["async"] >= readers + 2
    assert s["other_thread"] == s["async"], s
    stop_clean(h)
