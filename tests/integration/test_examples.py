"""The example filesystems (examples/hello.c, examples/memfs.c) mounted for
real under both transports: what a user of libfuring starts from must work.
Every mount runs with --debug, so each test can also check which transport
carried its requests and which requests reached the filesystem."""

import errno
import os
import signal
import stat
import subprocess
import threading
import time

import pytest

from furing_helpers import (
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FUSE_CMDLINE_EXAMPLES, MiB, RENAME_EXCHANGE, RENAME_NOREPLACE,
    RENAME_WHITEOUT, TRANSPORT_ARGS, assert_same, check_debug_transport, debug_lines, errno_of, fallocate,
    fuse_cmdline_argv, getxattr_sized, is_mounted, lazy_umount_all, listxattr_sized, pattern, read_file,
    renameat2, wait_for,
)

pytestmark = pytest.mark.timeout(30)

HELLO_TEXT = b"Hello, World!\n"


def stop_clean(srv, transport):
    """SIGTERM: the server unmounts and exits 0; every request it logged
    came over `transport`. Returns the --debug lines."""
    r = srv.stop()
    assert r.rc == 0, f"exit {r.rc} on SIGTERM; stderr:\n{r.stderr[-3000:]}"
    assert not srv.mounted(), "mount left behind after a clean stop"
    lines = debug_lines(r.stderr)
    check_debug_transport(lines, transport)
    return lines


def ops(lines, op):
    return [l for l in lines if l.op == op]


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        assert os.write(fd, data) == len(data)
    finally:
        os.close(fd)


# ====================================================================== hello

def test_hello(example, transport):
    h = example("hello")
    m = h.mountpoint
    path = os.path.join(m, "hello")
    assert os.listdir(m) == ["hello"]
    assert stat.S_ISDIR(os.stat(m).st_mode)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444
    assert st.st_size == len(HELLO_TEXT) and st.st_nlink == 1
    assert read_file(path) == HELLO_TEXT
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 7) == HELLO_TEXT[7:]
        assert os.pread(fd, 100, len(HELLO_TEXT)) == b""
    finally:
        os.close(fd)
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
        assert errno_of(os.open, path, flags) == errno.EACCES, f"open flags {flags:#o}"
    assert read_file(path) == HELLO_TEXT
    assert errno_of(os.stat, os.path.join(m, "missing")) == errno.ENOENT
    lines = stop_clean(h, transport)
    # The names reach the filesystem (and the debug line) intact on both transports.
    assert any(l.args == "name=hello" and l.result != "-ENOENT" for l in ops(lines, "LOOKUP")), lines
    assert ops(lines, "READ") and ops(lines, "READDIR")
    assert [l.result for l in ops(lines, "OPEN")].count("-EACCES") >= 1


def test_hello_unimplemented_op_answers_enosys_once(example, transport):
    """hello has no setxattr: the first SETXATTR gets ENOSYS, which the
    kernel remembers, so the second setxattr(2) never reaches the server."""
    h = example("hello")
    path = os.path.join(h.mountpoint, "hello")
    for _ in range(2):
        assert errno_of(os.setxattr, path, "user.x", b"1") == errno.EOPNOTSUPP
    assert read_file(path) == HELLO_TEXT  # still serving
    lines = stop_clean(h, transport)
    setx = ops(lines, "SETXATTR")
    assert len(setx) == 1, f"SETXATTR reached the server {len(setx)} times: {setx}"
    assert setx[0].result == "-ENOSYS" and setx[0].args == "name=user.x"


@pytest.mark.parametrize("how", ["umount", "SIGINT", "SIGHUP"])
def test_hello_stops_cleanly(example, transport, how):
    """Someone unmounting it, ^C or a hang-up ends hello (furing_main's
    signal handlers) with exit status 0."""
    h = example("hello", debug=False)
    assert read_file(os.path.join(h.mountpoint, "hello")) == HELLO_TEXT
    if how == "umount":
        subprocess.run(["umount", h.mountpoint], check=True, timeout=10)
        r = h.wait_exit()
    else:
        r = h.stop(getattr(signal, how))
    assert r.rc == 0, f"exit {r.rc} after {how}; stderr:\n{r.stderr[-3000:]}"
    assert not h.mounted()


@pytest.mark.parametrize("name", ["hello", "memfs"])
def test_example_command_line_errors(cli, examples_dir, workdir, name):
    """Usage errors exit 2, a mount that fails exits 1, each with one line
    naming the program; hello's (the FUSE command line of
    furing_parse_cmdline) also in the background, where the waiting parent
    prints the daemon's reason."""
    exe = os.path.join(examples_dir, name)
    missing = os.path.join(workdir, "missing")
    cases = [([], 2), (["--io-uring=maybe", workdir], 2), (["--bogus", workdir], 2), ([workdir, workdir], 2),
             (["--io-uring=off", missing], 1)]
    if name in FUSE_CMDLINE_EXAMPLES:
        cases = [(fuse_cmdline_argv(a), c) for a, c in cases]
        cases[-1] = (["-f"] + cases[-1][0], 1)
        cases += [(["-o", "io_uring=off", missing], 1), (["-o", "nosuchoption", workdir], 2),
                  (["-o", "max_read=12", workdir], 2), (["-o", "threads=0", workdir], 2), (["-x", workdir], 2),
                  (["-o"], 2)]
    for args, code in cases:
        r = cli(args, binary=exe)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.rc == code, f"{name} {args}: {r}"
        assert len(lines) == 1 and lines[0].startswith(f"{name}: "), f"{name} {args}: {r}"


# ------------------------------------------- hello's FUSE command line

def test_hello_help_and_version(cli, examples_dir):
    """--help and --version need no mountpoint, mount nothing and print
    only what the program prints (furing_parse_cmdline prints nothing)."""
    exe = os.path.join(examples_dir, "hello")
    for args in (["--help"], ["-h"]):
        r = cli(args, binary=exe)
        assert r.rc == 0 and r.stderr == "", r
        assert r.stdout.startswith("usage: hello [OPTIONS] MOUNTPOINT\n"), r
        for opt in ("-f ", "-d, -o debug", "-o io_uring=MODE", "-o fsname=NAME", "-o threads=N"):
            assert opt in r.stdout, (opt, r)
    for args in (["--version"], ["-V"]):
        r = cli(args, binary=exe)
        assert r.rc == 0 and r.stderr == "", r
        assert r.stdout.startswith("hello (libfuring 0."), r


def test_hello_mount_options(example, transport):
    """-o items reach the mount: fsname= and subtype= name it, ro and
    noexec are its flags, allow_other and default_permissions its FUSE
    options."""
    h = example("hello", "-o", "fsname=greeting,subtype=hi", "-o", "ro,noexec", "-oallow_other,default_permissions",
                debug=False, fstype="fuse.hi")
    (line,) = [l for l in open("/proc/self/mounts").read().splitlines() if l.split()[1] == h.mountpoint]
    source, _, fstype, opts = line.split()[:4]
    assert (source, fstype) == ("greeting", "fuse.hi"), line
    assert {"ro", "noexec", "allow_other", "default_permissions"} <= set(opts.split(",")), line
    assert read_file(os.path.join(h.mountpoint, "hello")) == HELLO_TEXT
    assert h.stop().rc == 0


@pytest.mark.parametrize("args,workers", [(["-s"], 1), (["-o", "threads=3"], 3)])
def test_hello_threads(example, transport, args, workers):
    """-s and -o threads=N: the process is its main thread plus N workers."""
    h = example("hello", *args, debug=False)
    assert read_file(os.path.join(h.mountpoint, "hello")) == HELLO_TEXT
    with open(f"/proc/{h.pid}/status") as f:
        threads = int([l for l in f if l.startswith("Threads:")][0].split()[1])
    assert threads == 1 + workers
    assert h.stop().rc == 0


def test_hello_debug_stays_in_the_foreground(examples_dir, workdir, transport):
    """-d without -f: the process started is the server (no fork), and it
    prints one line per request."""
    mp = os.path.join(workdir, "dbg")
    os.mkdir(mp)
    err_path = os.path.join(workdir, "dbg.stderr")
    argv = [os.path.join(examples_dir, "hello"), "-d", *fuse_cmdline_argv(TRANSPORT_ARGS[transport]), mp]
    with open(err_path, "wb") as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True)
    try:
        wait_for(lambda: is_mounted(mp, "fuse.hello") or p.poll() is not None, 10, what="hello -d mounted")
        assert p.poll() is None, open(err_path).read()
        assert read_file(os.path.join(mp, "hello")) == HELLO_TEXT
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
        lines = debug_lines(open(err_path).read())
        check_debug_transport(lines, transport)
        assert ops(lines, "READ"), lines
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        lazy_umount_all(mp)
    assert not is_mounted(mp, "fuse.hello")


def daemon_pid(mountpoint):
    """The process whose command line ends in @mountpoint (the daemon)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")[:-1]
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if args and args[-1] == mountpoint.encode() and state != "Z":
            return int(pid)
    return None


def test_hello_daemonizes(cli, examples_dir, workdir, transport):
    """Without -f hello returns once the mount serves (furing_main's parent
    exits 0 when the child reports ready); the daemon is a session leader in
    "/" with stdio on /dev/null, and SIGTERM unmounts and ends it."""
    mp = os.path.join(workdir, "bg")
    os.mkdir(mp)
    pid = None
    try:
        r = cli([*fuse_cmdline_argv(TRANSPORT_ARGS[transport]), mp], binary=os.path.join(examples_dir, "hello"),
                mountpoint=mp, timeout=15)
        assert r.rc == 0 and r.stderr == "" and r.stdout == "", r
        assert is_mounted(mp, "fuse.hello"), "hello returned before its mount was there"
        assert read_file(os.path.join(mp, "hello")) == HELLO_TEXT
        pid = daemon_pid(mp)
        assert pid is not None, "no daemon process found"
        assert os.getsid(pid) == pid
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: daemon_pid(mp) is None and not is_mounted(mp, "fuse.hello"), 10,
                 what="the daemon to unmount and exit")
        pid = None
    finally:
        if pid is not None and daemon_pid(mp) == pid:
            os.kill(pid, signal.SIGKILL)
        lazy_umount_all(mp)


# ====================================================================== memfs

def test_memfs_files(example, transport):
    fs = example("memfs")
    m = fs.mountpoint
    assert os.listdir(m) == []
    a = os.path.join(m, "a")
    data = pattern(3 * MiB + 123, 1)
    vfs0 = os.statvfs(m)
    write_file(a, data)
    assert os.stat(a).st_size == len(data)
    # Read it back from memfs, not from the page cache.
    fd = os.open(a, os.O_RDWR)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert_same(os.pread(fd, len(data) + 10, 0), data, "memfs file")
        assert os.pwrite(fd, b"xyz", 10) == 3
        assert os.pread(fd, 16, 5) == data[5:10] + b"xyz" + data[13:21]
        os.ftruncate(fd, 100)
        assert os.fstat(fd).st_size == 100
        os.ftruncate(fd, 200)  # grows with zeros
        assert os.pread(fd, 300, 0) == data[:10] + b"xyz" + data[13:100] + bytes(100)
        fallocate(fd, 0, 0, 4096)
        assert os.fstat(fd).st_size == 4096
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 10)
        assert os.pread(fd, 16, 0) == bytes(10) + b"xyz" + data[13:16]
    finally:
        os.close(fd)
    used = (vfs0.f_bfree - os.statvfs(m).f_bfree) * vfs0.f_frsize
    assert 4096 <= used < 8192, f"statvfs counts {used} bytes used for one 4 KiB file"
    # O_TRUNC, O_APPEND, truncate by path
    write_file(a, b"new")
    assert read_file(a) == b"new"
    fd = os.open(a, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"+more")
    os.close(fd)
    assert read_file(a) == b"new+more"
    os.truncate(a, 3)
    assert read_file(a) == b"new"
    # create with O_EXCL, sparse write past the end
    b = os.path.join(m, "b")
    fd = os.open(b, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
    assert os.pwrite(fd, b"end", 5000) == 3
    os.close(fd)
    assert errno_of(os.open, b, os.O_RDWR | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    assert read_file(b) == bytes(5000) + b"end"
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o640
    # chmod, chown, utimens
    os.chmod(b, 0o4711)
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o4711
    os.chown(b, 1234, 5678)
    st = os.stat(b)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.utime(b, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(b)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    assert sorted(os.listdir(m)) == ["a", "b"]
    vfs = os.statvfs(m)
    assert vfs.f_namemax == 255 and vfs.f_files - vfs.f_ffree == 3  # the root, a and b
    lines = stop_clean(fs, transport)
    assert ops(lines, "CREATE") and ops(lines, "WRITE") and ops(lines, "SETATTR")
    assert sum(int(l.result) for l in ops(lines, "READ") if l.result.isdigit()) >= len(data)


def test_memfs_directories(example, transport):
    fs = example("memfs")
    m = fs.mountpoint
    d = os.path.join(m, "d")
    os.mkdir(d, 0o750)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o750
    assert os.stat(d).st_nlink == 2 and os.stat(m).st_nlink == 3
    os.mkdir(os.path.join(d, "sub"))
    assert os.stat(d).st_nlink == 3
    write_file(os.path.join(d, "f"), b"x")
    names = [f"n{i:03d}" for i in range(300)]  # more than one listing buffer
    for n in names:
        os.mknod(os.path.join(d, n), 0o600 | stat.S_IFREG)
    assert sorted(os.listdir(d)) == sorted(names + ["sub", "f"])
    assert errno_of(os.mkdir, d) == errno.EEXIST
    assert errno_of(os.rmdir, d) == errno.ENOTEMPTY
    assert errno_of(os.rmdir, os.path.join(d, "f")) == errno.ENOTDIR
    assert errno_of(os.unlink, os.path.join(d, "sub")) == errno.EISDIR
    assert errno_of(os.mkdir, os.path.join(d, "f", "x")) == errno.ENOTDIR
    assert errno_of(os.open, os.path.join(d, "f", "x"), os.O_CREAT | os.O_WRONLY) == errno.ENOTDIR
    assert errno_of(os.unlink, os.path.join(d, "nope")) == errno.ENOENT
    long = "L" * 256
    assert errno_of(os.open, os.path.join(d, long), os.O_CREAT | os.O_WRONLY) == errno.ENAMETOOLONG
    assert errno_of(os.mkdir, os.path.join(d, long)) == errno.ENAMETOOLONG
    write_file(os.path.join(d, "L" * 255), b"")  # 255 is allowed
    for n in names + ["L" * 255, "f"]:
        os.unlink(os.path.join(d, n))
    os.rmdir(os.path.join(d, "sub"))
    assert os.listdir(d) == [] and os.stat(d).st_nlink == 2
    os.rmdir(d)
    assert os.listdir(m) == [] and os.stat(m).st_nlink == 2
    lines = stop_clean(fs, transport)
    assert ops(lines, "MKDIR") and ops(lines, "RMDIR") and ops(lines, "MKNOD")
    assert ops(lines, "READDIRPLUS"), "readdirplus was never used"


def test_memfs_rename(example, transport):
    fs = example("memfs")
    m = fs.mountpoint
    p = lambda *n: os.path.join(m, *n)  # noqa: E731
    os.mkdir(p("d1"))
    os.mkdir(p("d2"))
    write_file(p("d1", "a"), b"A")
    write_file(p("d1", "b"), b"B")
    # plain: within a directory, across directories, over an existing file
    os.rename(p("d1", "a"), p("d1", "a2"))
    os.rename(p("d1", "a2"), p("d2", "a"))
    assert sorted(os.listdir(p("d1"))) == ["b"] and os.listdir(p("d2")) == ["a"]
    write_file(p("d2", "victim"), b"V")
    os.rename(p("d2", "a"), p("d2", "victim"))
    assert read_file(p("d2", "victim")) == b"A" and os.listdir(p("d2")) == ["victim"]
    # RENAME_NOREPLACE
    assert errno_of(renameat2, p("d1", "b"), p("d2", "victim"), RENAME_NOREPLACE) == errno.EEXIST
    renameat2(p("d1", "b"), p("d2", "b"), RENAME_NOREPLACE)
    assert read_file(p("d2", "b")) == b"B" and os.listdir(p("d1")) == []
    # RENAME_EXCHANGE: files, then a file and a directory in different parents
    renameat2(p("d2", "b"), p("d2", "victim"), RENAME_EXCHANGE)
    assert read_file(p("d2", "b")) == b"A" and read_file(p("d2", "victim")) == b"B"
    os.mkdir(p("d1", "sub"))
    renameat2(p("d1", "sub"), p("d2", "b"), RENAME_EXCHANGE)
    assert os.path.isdir(p("d2", "b")) and read_file(p("d1", "sub")) == b"A"
    assert os.stat(p("d1")).st_nlink == 2 and os.stat(p("d2")).st_nlink == 3
    assert errno_of(renameat2, p("d1", "sub"), p("d1", "none"), RENAME_EXCHANGE) == errno.ENOENT
    assert errno_of(renameat2, p("d1", "sub"), p("d1", "w"), RENAME_WHITEOUT) == errno.EINVAL
    # what a rename may not replace, or where a directory may not go
    write_file(p("file"), b"F")
    os.mkdir(p("full"))
    write_file(p("full", "x"), b"")
    os.mkdir(p("empty"))
    assert errno_of(os.rename, p("d2"), p("full")) == errno.ENOTEMPTY
    assert errno_of(os.rename, p("d2"), p("file")) == errno.ENOTDIR
    assert errno_of(os.rename, p("file"), p("empty")) == errno.EISDIR
    assert errno_of(os.rename, p("d2"), p("d2", "b", "inside")) == errno.EINVAL
    assert errno_of(os.rename, p("missing"), p("x")) == errno.ENOENT
    os.rename(p("d2"), p("empty"))  # a directory over an empty one
    assert sorted(os.listdir(p("empty"))) == ["b", "victim"] and not os.path.exists(p("d2"))
    assert sorted(os.listdir(m)) == ["d1", "empty", "file", "full"]
    assert os.stat(m).st_nlink == 5
    lines = stop_clean(fs, transport)
    flags = {l.op for l in lines if l.op.startswith("RENAME")}
    assert "RENAME2" in flags, f"renameat2 flags never reached memfs: {flags}"


def test_memfs_links(example, transport):
    fs = example("memfs")
    m = fs.mountpoint
    f, g = os.path.join(m, "f"), os.path.join(m, "g")
    write_file(f, b"shared")
    os.link(f, g)
    assert os.stat(f).st_nlink == 2 and os.stat(f).st_ino == os.stat(g).st_ino
    with open(g, "ab") as out:
        out.write(b"!")
    assert read_file(f) == b"shared!"
    assert errno_of(os.link, f, g) == errno.EEXIST
    os.mkdir(os.path.join(m, "d"))
    assert errno_of(os.link, os.path.join(m, "d"), os.path.join(m, "d2")) == errno.EPERM
    os.unlink(f)
    assert os.stat(g).st_nlink == 1 and read_file(g) == b"shared!"
    os.symlink("g", os.path.join(m, "s"))
    os.symlink("/nowhere/" + "x" * 200, os.path.join(m, "dangling"))
    assert os.readlink(os.path.join(m, "s")) == "g"
    assert os.readlink(os.path.join(m, "dangling")) == "/nowhere/" + "x" * 200
    assert stat.S_ISLNK(os.lstat(os.path.join(m, "s")).st_mode)
    assert read_file(os.path.join(m, "s")) == b"shared!"
    assert errno_of(os.readlink, g) == errno.EINVAL
    fifo = os.path.join(m, "fifo")
    os.mkfifo(fifo, 0o600)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    # A fifo on FUSE is the kernel's: data passes without reaching memfs.
    got = []
    reader = threading.Thread(target=lambda: got.append(read_file(fifo)))
    reader.start()
    with open(fifo, "wb") as w:
        w.write(b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    lines = stop_clean(fs, transport)
    assert ops(lines, "LINK") and ops(lines, "SYMLINK") and ops(lines, "READLINK")


def test_memfs_xattrs(example, transport):
    fs = example("memfs")
    f = os.path.join(fs.mountpoint, "f")
    write_file(f, b"")
    assert os.listxattr(f) == []
    os.setxattr(f, "user.one", b"1")
    os.setxattr(f, "user.bin", b"\0\1\2" * 100)
    os.setxattr(f, "user.empty", b"")
    assert os.getxattr(f, "user.bin") == b"\0\1\2" * 100
    assert os.getxattr(f, "user.empty") == b""
    assert sorted(os.listxattr(f)) == ["user.bin", "user.empty", "user.one"]
    # the size probe, and a buffer one byte short
    assert getxattr_sized(f, "user.bin", 0) == (300, b"")
    assert getxattr_sized(f, "user.bin", 300) == (300, b"\0\1\2" * 100)
    assert errno_of(getxattr_sized, f, "user.bin", 299) == errno.ERANGE
    names = b"user.one\0user.bin\0user.empty\0"
    assert listxattr_sized(f, 0) == (len(names), b"")
    assert sorted(listxattr_sized(f, len(names))[1].split(b"\0")) == sorted(names.split(b"\0"))
    assert errno_of(listxattr_sized, f, len(names) - 1) == errno.ERANGE
    # XATTR_CREATE / XATTR_REPLACE
    assert errno_of(os.setxattr, f, "user.one", b"x", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.setxattr, f, "user.two", b"x", os.XATTR_REPLACE) == errno.ENODATA
    os.setxattr(f, "user.one", b"replaced", os.XATTR_REPLACE)
    os.setxattr(f, "user.two", b"created", os.XATTR_CREATE)
    assert os.getxattr(f, "user.one") == b"replaced" and os.getxattr(f, "user.two") == b"created"
    # remove
    os.removexattr(f, "user.one")
    assert errno_of(os.getxattr, f, "user.one") == errno.ENODATA
    assert errno_of(os.removexattr, f, "user.one") == errno.ENODATA
    assert sorted(os.listxattr(f)) == ["user.bin", "user.empty", "user.two"]
    # on a directory too
    os.setxattr(fs.mountpoint, "user.dir", b"d")
    assert os.getxattr(fs.mountpoint, "user.dir") == b"d"
    lines = stop_clean(fs, transport)
    for op in ("SETXATTR", "GETXATTR", "LISTXATTR", "REMOVEXATTR"):
        assert ops(lines, op), f"no {op} reached memfs"


def test_memfs_unlinked_file_lives_while_open(example, transport):
    """A node with no name left stays while a file is open on it, and is
    freed (statvfs f_ffree) after the last close."""
    fs = example("memfs")
    m = fs.mountpoint
    free0 = os.statvfs(m).f_ffree
    f = os.path.join(m, "f")
    write_file(f, b"still here")
    fd = os.open(f, os.O_RDWR)
    try:
        os.unlink(f)
        assert not os.path.exists(f)
        assert os.fstat(fd).st_nlink == 0
        assert os.pread(fd, 100, 0) == b"still here"
        assert os.pwrite(fd, b"HERE", 6) == 4
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(fd, 100, 0) == b"still HERE"
        assert os.statvfs(m).f_ffree == free0 - 1
    finally:
        os.close(fd)
    wait_for(lambda: os.statvfs(m).f_ffree == free0, 5, what="the unlinked node to be freed")
    stop_clean(fs, transport)


def drop_dentries_and_inodes():
    """Makes the kernel evict unused inodes, which FORGETs them."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")


def test_memfs_readdirplus_counts_lookups(example, transport):
    """Each readdirplus entry hands the kernel a reference. After the kernel
    forgot every node, a listing is its only reference to `f`: if memfs did
    not count it, unlinking `f` would free the node while the kernel (here
    an O_PATH fd) still holds it, and reopening it would fail."""
    fs = example("memfs")
    m = fs.mountpoint
    d, f = os.path.join(m, "d"), os.path.join(m, "d", "f")
    os.mkdir(d)
    write_file(f, b"counted")
    free0 = os.statvfs(m).f_ffree
    drop_dentries_and_inodes()
    wait_for(lambda: ops(debug_lines(fs.stderr_text()), "FORGET")
             or ops(debug_lines(fs.stderr_text()), "BATCH_FORGET"), 5, what="the kernel's FORGET")
    time.sleep(0.2)  # let the workers process the whole batch
    assert os.listdir(d) == ["f"]
    path_fd = os.open(f, os.O_PATH)
    try:
        os.unlink(f)
        fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY)
        try:
            assert os.read(fd, 100) == b"counted"
        finally:
            os.close(fd)
    finally:
        os.close(path_fd)
    # The last reference went with the fd: the node is freed, not leaked.
    wait_for(lambda: os.statvfs(m).f_ffree == free0 + 1, 5, what="the unlinked node to be freed")
    lines = stop_clean(fs, transport)
    assert ops(lines, "READDIRPLUS"), "the listing did not use readdirplus"


def test_memfs_many_files_freed_after_forget(example, transport):
    """Lookup counts balance: after listing, statting and removing many
    files, and the kernel forgetting them, every node is freed."""
    fs = example("memfs")
    m = fs.mountpoint
    free0 = os.statvfs(m).f_ffree
    names = [os.path.join(m, f"f{i}") for i in range(100)]
    for n in names:
        write_file(n, b"x")
    assert len(os.listdir(m)) == 100
    for n in names:
        os.stat(n)
    assert os.statvfs(m).f_ffree == free0 - 100
    for n in names:
        os.unlink(n)
    wait_for(lambda: os.statvfs(m).f_ffree == free0, 5, what="all 100 nodes to be freed")
    stop_clean(fs, transport)


def test_memfs_concurrent_writers(example, transport):
    """Several processes write their own files at once (both workers busy)."""
    fs = example("memfs")
    m = fs.mountpoint
    script = ("import os,sys\n"
              "p=sys.argv[1]; d=bytes([int(sys.argv[2])])*65536\n"
              "fd=os.open(p,os.O_WRONLY|os.O_CREAT,0o644)\n"
              "for i in range(32): os.pwrite(fd,d,i*65536)\n"
              "os.close(fd)\n")
    procs = [subprocess.Popen(["/usr/bin/python3", "-c", script, os.path.join(m, f"w{i}"), str(i)])
             for i in range(4)]
    for p in procs:
        assert p.wait(20) == 0
    for i in range(4):
        assert read_file(os.path.join(m, f"w{i}")) == bytes([i]) * (32 * 65536)
    stop_clean(fs, transport)


def test_hello_prints_nothing(example, transport):
    """The library is silent by default and hello shows only warnings and
    errors: a normal run and stop leave stderr empty."""
    h = example("hello", debug=False)
    assert read_file(os.path.join(h.mountpoint, "hello")) == HELLO_TEXT
    r = h.stop()
    assert r.rc == 0 and r.stderr == "", r
