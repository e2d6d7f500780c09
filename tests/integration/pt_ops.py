"""The operation script of the passthrough differential tests.

Run as `python3 -c <this file's text> ROOT ROLE` (ROLE "root" or "user"),
once on the mount and once on a plain copy of SOURCE, by the same user; it
prints one JSON list of [label, outcome] pairs. Outcomes are results
(attributes without times and inode numbers, data hashes, listings) or
["E", "ENAME"] for an error, so the two runs compare directly: every
operation through the mount must give what it gives on SOURCE's own
filesystem, errno included.

The tree both runs start from is made by make_tree() (as root)."""

import array
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import mmap
import os
import random
import stat
import sys

TREE_FILES = {
    "file.txt": (0o644, b"hello world\n" * 100),
    "ro.txt": (0o444, b"read only\n"),
    "exe.sh": (0o755, b"#!/bin/sh\necho hi\n"),
    "dir/sub.txt": (0o644, b"sub\n"),
    "private/secret.txt": (0o600, b"secret\n"),
    "sticky/rootfile": (0o666, b"root's\n"),
    "x.txt": (0o644, b"with an attribute\n"),
}
USERS_GID = 100


def make_tree(root):
    """The starting tree (as root; the same on SOURCE and the reference)."""
    for d, mode in (("dir", 0o755), ("private", 0o700), ("sticky", 0o1777), ("sgid", 0o2777)):
        os.mkdir(os.path.join(root, d))
        os.chmod(os.path.join(root, d), mode)
    os.chown(os.path.join(root, "sgid"), 0, USERS_GID)
    for name, (mode, data) in TREE_FILES.items():
        p = os.path.join(root, name)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
    os.symlink("file.txt", os.path.join(root, "link"))
    os.link(os.path.join(root, "file.txt"), os.path.join(root, "hard"))
    os.setxattr(os.path.join(root, "x.txt"), "user.color", b"blue")


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
AT_FDCWD = -100
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_IMMUTABLE_FL, FS_APPEND_FL, FS_NOATIME_FL = 0x10, 0x20, 0x80
FLAGS_SHOWN = 0x000000FF  # the classic chattr flags (ext4 adds extents etc. above)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


def renameat2(a, b, flags):
    if _libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def fallocate(fd, mode, off, n):
    if _libc.fallocate(fd, mode, off, n) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def attrs(st):
    return [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            st.st_nlink if not stat.S_ISDIR(st.st_mode) else None,
            st.st_size if not stat.S_ISDIR(st.st_mode) else None,
            st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else None]


def digest(b):
    return [len(b), hashlib.sha256(b).hexdigest()[:16]]


def read(p, n=-1, off=0):
    with open(p, "rb") as f:
        f.seek(off)
        return f.read(n)


def write_new(p, data, mode=0o640, extra=0):
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY | extra, mode)
    try:
        os.write(fd, data)
        return attrs(os.fstat(fd))
    finally:
        os.close(fd)


def run(root, role):
    os.umask(0o022)
    out = []
    R = lambda *a: os.path.join(root, *a)
    W = R() if role == "root" else R("sticky")
    w = lambda *a: os.path.join(W, *a)

    def op(label, fn, *args):
        try:
            v = fn(*args)
        except OSError as e:
            v = ["E", errno.errorcode.get(e.errno, str(e.errno))]
        out.append([label, v])
        return v

    # ---- the starting tree
    for name in ["file.txt", "ro.txt", "exe.sh", "dir", "dir/sub.txt", "private", "private/secret.txt", "sticky",
                 "sticky/rootfile", "sgid", "link", "hard", "x.txt"]:
        op(f"lstat {name}", lambda n=name: attrs(os.lstat(R(n))))
    op("stat link (follow)", lambda: attrs(os.stat(R("link"))))
    for d in ("", "dir", "sticky", "private"):
        op(f"listdir {d or '.'}", lambda d=d: sorted(os.listdir(R(d))))
    op("scandir types", lambda: sorted([e.name, e.is_dir(follow_symlinks=False), e.is_symlink(),
                                         attrs(e.stat(follow_symlinks=False))] for e in os.scandir(R())))
    op("read file", lambda: digest(read(R("file.txt"))))
    op("read range", lambda: digest(read(R("file.txt"), 100, 555)))
    op("read past end", lambda: digest(read(R("file.txt"), 10, 5000)))
    def mmap_read():
        fd = os.open(R("file.txt"), os.O_RDONLY)
        try:
            with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
                return digest(m[:])
        finally:
            os.close(fd)
    op("mmap read", mmap_read)
    op("read secret", lambda: digest(read(R("private/secret.txt"))))
    op("readlink", lambda: os.readlink(R("link")))
    op("readlink not a link", lambda: os.readlink(R("file.txt")))
    op("open missing", lambda: os.open(R("missing"), os.O_RDONLY))
    op("open dir for writing", lambda: os.open(R("dir"), os.O_WRONLY))
    op("open file as dir", lambda: os.listdir(R("file.txt")))
    op("lookup through a file", lambda: os.stat(R("file.txt", "x")))
    for mode, mname in ((os.R_OK, "R"), (os.W_OK, "W"), (os.X_OK, "X")):
        for name in ("file.txt", "ro.txt", "exe.sh", "private/secret.txt", "sticky/rootfile"):
            op(f"access {name} {mname}", lambda n=name, m=mode: os.access(R(n), m))
    op("getxattr", lambda: os.getxattr(R("x.txt"), "user.color").decode())
    op("getxattr missing", lambda: os.getxattr(R("x.txt"), "user.none"))
    op("listxattr", lambda: sorted(n for n in os.listxattr(R("x.txt")) if n.startswith("user.")))
    op("statvfs", lambda: [os.statvfs(R()).f_bsize, os.statvfs(R()).f_namemax])

    # ---- creating and changing, in W (SOURCE's root for root, the sticky
    # directory for a user)
    data = b"abc" * 1000
    op("create", write_new, w("new.txt"), data)
    op("create O_EXCL again", write_new, w("new.txt"), data)
    op("stat new", lambda: attrs(os.stat(w("new.txt"))))

    def pwrite_tail():
        fd = os.open(w("new.txt"), os.O_RDWR)
        try:
            os.pwrite(fd, b"tail", 10000)
            return [attrs(os.fstat(fd)), digest(os.pread(fd, 20000, 0)), digest(os.pread(fd, 7, 2998))]
        finally:
            os.close(fd)
    op("pwrite beyond the end", pwrite_tail)
    op("truncate shrink", lambda: (os.truncate(w("new.txt"), 5000), attrs(os.stat(w("new.txt"))))[1])

    def ftruncate_grow():
        fd = os.open(w("new.txt"), os.O_RDWR)
        try:
            os.ftruncate(fd, 20000)
            return [attrs(os.fstat(fd)), digest(os.pread(fd, 100, 19900))]
        finally:
            os.close(fd)
    op("ftruncate grow", ftruncate_grow)
    op("mkdir", lambda: (os.mkdir(w("d1"), 0o750), attrs(os.stat(w("d1"))))[1])
    op("mkdir again", lambda: os.mkdir(w("d1")))
    op("mkdir nested", lambda: (os.mkdir(w("d1", "d2")), attrs(os.stat(w("d1", "d2"))))[1])
    op("rmdir not empty", lambda: os.rmdir(w("d1")))
    op("rmdir a file", lambda: os.rmdir(w("new.txt")))
    op("unlink a dir", lambda: os.unlink(w("d1")))
    op("symlink", lambda: (os.symlink("new.txt", w("sl")), attrs(os.lstat(w("sl"))), os.readlink(w("sl")),
                           attrs(os.stat(w("sl"))))[1:])
    op("symlink exists", lambda: os.symlink("x", w("sl")))
    op("link", lambda: (os.link(w("new.txt"), w("hl")), attrs(os.stat(w("new.txt"))), attrs(os.stat(w("hl"))))[1:])
    op("link exists", lambda: os.link(w("new.txt"), w("hl")))
    op("link a dir", lambda: os.link(w("d1"), w("dl")))
    op("rename", lambda: (os.rename(w("hl"), w("hl2")), sorted(os.listdir(W)))[1])
    op("rename into own subdir", lambda: os.rename(w("d1"), w("d1", "d2", "x")))
    op("rename over non-empty dir", lambda: (os.mkdir(w("d3")), os.rename(w("d3"), w("d1")))[1])
    op("rename dir over file", lambda: os.rename(w("d3"), w("new.txt")))
    op("rename file over dir", lambda: os.rename(w("new.txt"), w("d3")))
    op("rename noreplace", lambda: renameat2(w("new.txt"), w("sl"), RENAME_NOREPLACE))
    op("rename noreplace free", lambda: (renameat2(w("hl2"), w("hl3"), RENAME_NOREPLACE),
                                         sorted(os.listdir(W)))[1])
    op("rename exchange", lambda: (renameat2(w("d3"), w("sl"), RENAME_EXCHANGE), attrs(os.lstat(w("d3"))),
                                   attrs(os.lstat(w("sl"))))[1:])
    op("rename exchange back", lambda: renameat2(w("d3"), w("sl"), RENAME_EXCHANGE))
    op("rename across dirs", lambda: (os.rename(w("d1", "d2"), w("d2moved")), sorted(os.listdir(w("d1"))))[1])
    op("unlink hard link", lambda: (os.unlink(w("hl3")), attrs(os.stat(w("new.txt"))))[1])
    op("chmod", lambda: (os.chmod(w("new.txt"), 0o600), attrs(os.stat(w("new.txt"))))[1])
    op("utime", lambda: (os.utime(w("new.txt"), (1000000000, 1100000000)),
                         [os.stat(w("new.txt")).st_atime, os.stat(w("new.txt")).st_mtime])[1])
    op("utime ns", lambda: (os.utime(w("new.txt"), ns=(1200000000123456789, 1300000000987654321)),
                            os.stat(w("new.txt")).st_mtime_ns)[1])
    op("utime now", lambda: os.utime(w("new.txt")))
    op("utime symlink itself", lambda: (os.utime(w("sl"), (5, 6), follow_symlinks=False),
                                        os.lstat(w("sl")).st_mtime, os.stat(w("sl")).st_mtime > 1e9)[1:])

    def holes():
        fd = os.open(w("new.txt"), os.O_RDWR)
        try:
            os.pwrite(fd, bytes(range(256)) * 256, 0)  # 64 KiB of data
            fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20)
            size = os.fstat(fd).st_size
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 16384)
            os.fsync(fd)
            r = [size, digest(os.pread(fd, 65536, 0)), os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE),
                 os.lseek(fd, 8192, os.SEEK_DATA)]
            try:
                os.lseek(fd, 1 << 30, os.SEEK_DATA)
            except OSError as e:
                r.append(errno.errorcode[e.errno])
            return r
        finally:
            os.close(fd)
    op("fallocate, punch hole, SEEK_DATA/SEEK_HOLE", holes)

    def copy_range():
        src = os.open(R("file.txt"), os.O_RDONLY)
        dst = os.open(w("copy.txt"), os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            n = os.copy_file_range(src, dst, 700, 13, 5)
            n2 = os.copy_file_range(src, dst, 1 << 20, 1000, 100)
            return [n, n2, digest(read(w("copy.txt")))]
        finally:
            os.close(src)
            os.close(dst)
    op("copy_file_range", copy_range)
    op("setxattr", lambda: (os.setxattr(w("new.txt"), "user.k", b"v1"), os.getxattr(w("new.txt"), "user.k"))[1].decode())
    op("setxattr create exists", lambda: os.setxattr(w("new.txt"), "user.k", b"v2", os.XATTR_CREATE))
    op("setxattr replace missing", lambda: os.setxattr(w("new.txt"), "user.none", b"v", os.XATTR_REPLACE))
    op("getxattr size", lambda: len(os.getxattr(w("new.txt"), "user.k")))
    op("listxattr new", lambda: sorted(n for n in os.listxattr(w("new.txt")) if n.startswith("user.")))
    op("removexattr", lambda: (os.removexattr(w("new.txt"), "user.k"),
                               sorted(n for n in os.listxattr(w("new.txt")) if n.startswith("user.")))[1])
    op("removexattr missing", lambda: os.removexattr(w("new.txt"), "user.k"))
    op("setxattr on symlink", lambda: os.setxattr(w("sl"), "user.k", b"v", follow_symlinks=False))
    op("mkfifo", lambda: (os.mkfifo(w("fifo"), 0o640), attrs(os.lstat(w("fifo"))))[1])

    def flocks():
        a = os.open(w("new.txt"), os.O_RDONLY)
        b = os.open(w("new.txt"), os.O_RDONLY)
        try:
            r = []
            fcntl.flock(a, fcntl.LOCK_EX)
            try:
                fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
                r.append("second exclusive granted")
            except OSError as e:
                r.append(errno.errorcode[e.errno])
            fcntl.flock(a, fcntl.LOCK_UN)
            fcntl.flock(b, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(a, fcntl.LOCK_SH | fcntl.LOCK_NB)
            r.append("shared twice")
            return r
        finally:
            os.close(a)
            os.close(b)
    op("flock", flocks)

    def posix_locks():
        fd = os.open(w("new.txt"), os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)
            fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)
            return "ok"
        finally:
            os.close(fd)
    op("fcntl locks", posix_locks)

    def tmpfile():
        fd = os.open(W, os.O_TMPFILE | os.O_RDWR, 0o600)
        try:
            os.write(fd, b"unnamed")
            st = attrs(os.fstat(fd))
            os.link(f"/proc/self/fd/{fd}", w("from_tmpfile"), follow_symlinks=True)
            return [st, attrs(os.stat(w("from_tmpfile"))), digest(read(w("from_tmpfile")))]
        finally:
            os.close(fd)
    op("O_TMPFILE + linkat", tmpfile)

    def syncs():
        fd = os.open(w("new.txt"), os.O_RDWR)
        dfd = os.open(W, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
            os.fdatasync(fd)
            os.fsync(dfd)
            return "ok"
        finally:
            os.close(fd)
            os.close(dfd)
    op("fsync, fdatasync, fsync dir", syncs)

    big = random.Random(7).randbytes(3 << 20)
    op("write 3 MiB", lambda: write_new(w("big"), big, 0o644))
    op("read odd chunks", lambda: [digest(read(w("big"), n, off)) for off, n in
                                   ((0, 1), (4095, 2), (65535, 131073), ((3 << 20) - 5, 100))] +
       [digest(read(w("big")))])

    def appends():
        fd = os.open(w("log"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        try:
            os.write(fd, b"one\n")
            os.pwrite(fd, b"two\n", 0)  # O_APPEND: pwrite appends too on Linux
            os.write(fd, b"three\n")
        finally:
            os.close(fd)
        return digest(read(w("log")))
    op("O_APPEND", appends)
    op("O_TRUNC", lambda: (os.close(os.open(w("log"), os.O_WRONLY | os.O_TRUNC)), attrs(os.stat(w("log"))))[1])
    op("unlink", lambda: (os.unlink(w("log")), os.path.lexists(w("log")))[1])
    op("stat unlinked", lambda: os.stat(w("log")))

    if role == "root":
        op("chown", lambda: (os.chown(w("new.txt"), 1000, 1000), attrs(os.stat(w("new.txt"))))[1])
        op("chown keeps other id", lambda: (os.chown(w("new.txt"), -1, 2000), attrs(os.stat(w("new.txt"))))[1])
        op("lchown symlink", lambda: (os.chown(w("sl"), 1234, 1234, follow_symlinks=False),
                                      attrs(os.lstat(w("sl"))))[1])
        op("chown clears setuid", lambda: (write_new(w("suid"), b"x", 0o755), os.chmod(w("suid"), 0o6755),
                                           os.chown(w("suid"), 1000, -1), attrs(os.stat(w("suid"))))[3])
        op("mknod char device", lambda: (os.mknod(w("null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3)),
                                         attrs(os.lstat(w("null"))))[1])
        op("create in setgid dir", lambda: write_new(R("sgid", "rootfile"), b"x"))
        op("mkdir in setgid dir", lambda: (os.mkdir(R("sgid", "rootdir")), attrs(os.stat(R("sgid", "rootdir"))))[1])
        op("trusted xattr", lambda: (os.setxattr(w("new.txt"), "trusted.t", b"1"),
                                     os.getxattr(w("new.txt"), "trusted.t"))[1].decode())
    else:
        op("chmod another's file", lambda: os.chmod(R("file.txt"), 0o777))
        op("write another's file", lambda: os.open(R("file.txt"), os.O_WRONLY))
        op("create in another's dir", lambda: write_new(R("nope"), b"x"))
        op("mkdir in another's dir", lambda: os.mkdir(R("nope")))
        op("unlink another's file in a sticky dir", lambda: os.unlink(R("sticky", "rootfile")))
        op("rename another's file in a sticky dir", lambda: os.rename(R("sticky", "rootfile"), R("sticky", "mine")))

        def write_world_writable():
            fd = os.open(R("sticky", "rootfile"), os.O_WRONLY | os.O_APPEND)
            try:
                return os.write(fd, b"user was here\n")
            finally:
                os.close(fd)
        op("write a world-writable file", write_world_writable)
        op("utime now on a writable file", lambda: os.utime(R("sticky", "rootfile")))
        op("utime explicit on another's file", lambda: os.utime(R("sticky", "rootfile"), (1, 2)))
        op("chown own file to root", lambda: os.chown(w("new.txt"), 0, 0))
        op("chown own file to own group", lambda: (os.chown(w("new.txt"), -1, os.getgid()),
                                                   attrs(os.stat(w("new.txt"))))[1])
        op("create in setgid dir", lambda: write_new(R("sgid", "userfile"), b"x", 0o2755))
        op("mkdir in setgid dir", lambda: (os.mkdir(R("sgid", "userdir"), 0o755),
                                           attrs(os.stat(R("sgid", "userdir"))))[1])
        op("truncate read-only", lambda: os.truncate(R("ro.txt"), 0))
        op("list a private dir", lambda: os.listdir(R("private")))
        op("stat inside a private dir", lambda: os.stat(R("private", "secret.txt")))
        op("setxattr another's file", lambda: os.setxattr(R("file.txt"), "user.k", b"v"))
        op("trusted xattr", lambda: os.setxattr(w("new.txt"), "trusted.t", b"1"))
        op("rename out of a read-only dir", lambda: os.rename(R("file.txt"), R("sticky", "taken")))
        op("rmdir in another's dir", lambda: os.rmdir(R("dir")))
        op("mknod char device", lambda: os.mknod(w("null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3)))

        def write_clears_setuid():
            os.chmod(w("big"), 0o4755)
            fd = os.open(w("big"), os.O_WRONLY)
            try:
                os.pwrite(fd, b"x", 0)
            finally:
                os.close(fd)
            return attrs(os.stat(w("big")))
        op("a write clears setuid", write_clears_setuid)

    def inode_flags(path, setflags=None, mode=os.O_RDONLY):
        fd = os.open(path, mode)
        try:
            buf = array.array("i", [0])
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
            before = buf[0] & FLAGS_SHOWN
            if setflags is not None:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("i", [buf[0] | setflags]), True)
                fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
                after = buf[0] & FLAGS_SHOWN
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("i", [buf[0] & ~setflags]), True)
                return [before, after]
            return before
        finally:
            os.close(fd)
    op("lsattr", inode_flags, w("new.txt"))
    op("lsattr dir", inode_flags, W)
    op("chattr +A own file", inode_flags, w("new.txt"), FS_NOATIME_FL)
    op("chattr +a own file", inode_flags, w("new.txt"), FS_APPEND_FL)
    op("chattr +i own file", inode_flags, w("new.txt"), FS_IMMUTABLE_FL)
    op("chattr +A another's file", inode_flags, R("sticky", "rootfile"), FS_NOATIME_FL)
    op("unknown ioctl", lambda: fcntl.ioctl(os.open(R("file.txt"), os.O_RDONLY), 0x80046699, b"1234"))

    op("final listing", lambda: sorted(os.listdir(W)))
    op("final listing sgid", lambda: sorted(os.listdir(R("sgid"))))
    op("final stats", lambda: sorted([n, attrs(os.lstat(w(n)))] for n in os.listdir(W)))
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
