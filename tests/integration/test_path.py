"""The path API (furing_path_*), through examples/pathfs.c mounted for real
on both transports: the library's node table (lookup counts, renames, a
file unlinked while open) seen from system calls."""

import errno
import os
import stat

import pytest

from furing_helpers import RENAME_EXCHANGE, RENAME_NOREPLACE, errno_of, read_file, renameat2

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
