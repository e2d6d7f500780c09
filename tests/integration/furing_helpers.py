"""Helpers shared by the furing integration tests (imported by conftest.py
and the test modules; pytest puts this directory on sys.path)."""

import ctypes
import ctypes.util
import mmap
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import namedtuple

MiB = 1024 * 1024
KiB = 1024

FSTYPE = "fuse.furing"
URING_PARAM = "/sys/module/fuse/parameters/enable_uring"

# Every option the contract names; --help must list all of them.
ALL_OPTIONS = [
    "--writable", "--growable", "--allow-other", "--threads", "--io-uring",
    "--queue-depth", "--payload-size", "--pin", "--debug", "--daemonize",
    "--pidfile", "--help", "--no-pin", "--backend-io", "--backend-direct", "--writethrough",
    "--cache", "--format", "--timeout",
]

TRANSPORT_ARGS = {"dev": ["--io-uring=off"], "ring": ["--io-uring=on"]}

# The example filesystems (examples/*.c), built next to the binary.
EXAMPLES = ("hello", "memfs", "pathfs", "pathpt")

# Examples whose command line is the usual FUSE one (furing_parse_cmdline):
# started with -f (in the foreground, under the fixture's supervision) and
# the tool-style options below translated to it.
FUSE_CMDLINE_EXAMPLES = ("hello", "pathfs", "pathpt", "pathasync")  # pathasync: tests/lib


def fuse_cmdline_argv(opts):
    """--io-uring=MODE -> -o io_uring=MODE, --debug -> -d; others unchanged."""
    out = []
    for o in opts:
        if o.startswith("--io-uring="):
            out += ["-o", "io_uring=" + o.split("=", 1)[1]]
        elif o == "--debug":
            out.append("-d")
        else:
            out.append(o)
    return out


# ---------------------------------------------------------------- polling

def kill_after(seconds, procs):
    """A started daemon timer that SIGKILLs every process procs() lists
    still running after @seconds: a hung mount blocks a test in a system
    call pytest-timeout cannot interrupt. cancel() it at teardown."""
    def fire():
        for proc in procs():
            if proc.poll() is None:
                proc.kill()
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def wait_for(pred, timeout, interval=0.02, what="condition"):
    """Poll pred() until it returns a truthy value; return it. Raise
    AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        val = pred()
        if val:
            return val
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- mounts

Mount = namedtuple("Mount", "mountpoint fstype source mount_opts super_opts")

_OCT = re.compile(r"\\([0-7]{3})")


def _unescape(s):
    return _OCT.sub(lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """Parse /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, sep, right = line.rstrip("\n").partition(" - ")
            if not sep:
                continue
            lf = left.split(" ")
            rf = right.split(" ")
            out.append(Mount(_unescape(lf[4]), rf[0], _unescape(rf[1]) if len(rf) > 1 else "",
                             lf[5], rf[2] if len(rf) > 2 else ""))
    return out


def mounts_at(path, fstype_prefix="fuse"):
    path = os.path.realpath(path)
    return [m for m in mounts() if m.mountpoint == path and m.fstype.startswith(fstype_prefix)]


def is_mounted(path, fstype=FSTYPE):
    path = os.path.realpath(path)
    return any(m.mountpoint == path and m.fstype == fstype for m in mounts())


def lazy_umount_all(path):
    """umount -l every fuse mount stacked on path. Returns how many."""
    n = 0
    for _ in range(8):
        if not mounts_at(path):
            break
        subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)
        n += 1
    return n


# ---------------------------------------------------------------- stats lines

StopResult = namedtuple("StopResult", "rc stderr summary")

_STATS_RE = re.compile(r"^furing: (summary|stats) (.*)$")


def _parse_ops(v):
    ops = {}
    if not v:
        return ops
    for item in v.split(","):
        if not item:
            continue
        name, sep, cnt = item.rpartition(":")
        if not sep:
            raise AssertionError(f"bad ops item {item!r} in {v!r}")
        ops[name] = int(cnt)
    return ops


def parse_stats_line(line):
    """Parse 'furing: summary k=v ...' / 'furing: stats k=v ...' into a dict
    (ints; dev_ops/ring_ops become {OP: count})."""
    m = _STATS_RE.match(line.strip())
    if not m:
        raise AssertionError(f"not a stats line: {line!r}")
    d = {"kind": m.group(1)}
    for tok in m.group(2).split():
        k, sep, v = tok.partition("=")
        if not sep:
            raise AssertionError(f"token {tok!r} is not key=value in {line!r}")
        if k in ("dev_ops", "ring_ops"):
            d[k] = _parse_ops(v)
        else:
            try:
                d[k] = int(v)
            except ValueError:
                raise AssertionError(f"{k}={v!r} is not an integer in {line!r}")
    return d


def stats_lines(text, kind):
    return [l for l in text.splitlines() if l.startswith(f"furing: {kind} ")]


def parse_summary(text):
    lines = stats_lines(text, "summary")
    return parse_stats_line(lines[-1]) if lines else None


def op_count(stats, op):
    """Count of op over both transports."""
    return stats.get("dev_ops", {}).get(op, 0) + stats.get("ring_ops", {}).get(op, 0)


def check_stats_fields(st, transport=None):
    """Common assertions on a parsed summary/stats dict."""
    for k in ("requests", "errors", "bytes_read", "bytes_written", "dev", "ring"):
        assert k in st, f"field {k} missing in {st}"
        assert st[k] >= 0
    assert "dev_ops" in st and "ring_ops" in st, f"ops lists missing in {st}"
    qs = [k for k in st if re.fullmatch(r"q\d+", k)]
    if transport == "dev":
        assert st["ring"] == 0, f"dev transport but ring={st['ring']}"
        assert not qs, f"q fields in dev mode: {qs}"
        assert not st["ring_ops"], f"ring ops in dev mode: {st['ring_ops']}"
    elif transport == "ring":
        assert qs, f"no q fields in ring mode: {st}"
    return qs


# ---------------------------------------------------------------- data

def pattern(n, seed):
    return random.Random(seed).randbytes(n)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pread_full(fd, size, off):
    """One pread; the contract is that reads inside the image are complete."""
    return os.pread(fd, size, off)


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, min(i + 4096, n)):
                if a[j] != b[j]:
                    return j
    return n if len(a) != len(b) else None


def assert_same(actual, expected, what):
    if actual != expected:
        d = first_diff(actual, expected)
        raise AssertionError(
            f"{what}: differs at byte {d} (len actual={len(actual)} expected={len(expected)})")


def errno_of(fn, *args):
    """Run fn(*args); return the errno of the OSError it raises, or None."""
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return None


# ---------------------------------------------------------------- fallocate

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"fallocate(mode={mode:#x}, off={off}, len={length}): {os.strerror(e)}")


# ---------------------------------------------------------------- dead mounts

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
MS_NOSUID, MS_NODEV = 2, 4


def mount_dead_fuse(mountpoint, fstype):
    """Mounts a FUSE filesystem of type `fstype` ("fuse", "fuse.NAME") on
    the regular file `mountpoint` with no server: closing the /dev/fuse fd
    at once aborts the connection, which leaves what a killed server leaves,
    a mount on which every access fails with ENOTCONN. Root only."""
    fd = os.open("/dev/fuse", os.O_RDWR)
    try:
        opts = f"fd={fd},rootmode=100644,user_id=0,group_id=0".encode()
        if _libc.mount(b"dead-test", mountpoint.encode(), fstype.encode(), MS_NOSUID | MS_NODEV, opts):
            e = ctypes.get_errno()
            raise OSError(e, f"mount -t {fstype} {mountpoint}: {os.strerror(e)}")
    finally:
        os.close(fd)


_libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS = -100, 0x100, 0x2000, 0x7ff


def stat_errno_uncached(path):
    """The errno of an lstat of `path` that must reach the filesystem
    (statx with AT_STATX_FORCE_SYNC), or None. os.stat may answer from the
    kernel's attribute cache, which outlives a killed server for a second."""
    buf = ctypes.create_string_buffer(256)
    if _libc.statx(AT_FDCWD, path.encode(), AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC,
                   STATX_BASIC_STATS, buf):
        return ctypes.get_errno()
    return None


# ---------------------------------------------------------------- processes

def wait_serving(f, timeout=10):
    """Waits for a started Furing's "serving" line: its readiness check
    cannot tell a new mount from a dead one it replaces."""
    wait_for(lambda: "furing: serving " in f.stderr_text() or not f.running(), timeout,
             what="the serving line")
    assert f.running(), f"furing exited with {f.proc.returncode}:\n{f.stderr_text()}"


def kernel_version():
    """The running kernel's (major, minor)."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return int(m.group(1)), int(m.group(2))


def online_cpus():
    """The CPUs this process may run on, sorted."""
    return sorted(os.sched_getaffinity(0))


def thread_cpus(pid):
    """{tid: (comm, Cpus_allowed_list)} for the threads of @pid that are
    still there when read."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                allowed = next(l.split(":", 1)[1].strip() for l in f if l.startswith("Cpus_allowed_list"))
        except FileNotFoundError:
            continue
        found[int(tid)] = (comm, allowed)
    return found


def proc_alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def kill_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def terminate_and_unmount(proc, mountpoint, wait=10):
    """SIGTERM a server still running, SIGKILL it if it has not exited within
    `wait` seconds, then lazily unmount whatever it left at `mountpoint`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    lazy_umount_all(mountpoint)


def error_lines(stderr):
    """Non-empty stderr lines other than a summary line."""
    return [l for l in stderr.splitlines() if l.strip() and not l.startswith("furing: summary ")]


def assert_one_error_line(stderr, what=""):
    lines = error_lines(stderr)
    assert len(lines) == 1, f"{what}: expected exactly one error line on stderr, got {lines!r}"
    assert lines[0].startswith("furing: "), f"{what}: error line {lines[0]!r} lacks 'furing: '"
    assert len(lines[0]) > len("furing: ") + 3, f"{what}: error line too terse: {lines[0]!r}"
    return lines[0]


def assert_no_crash(rc, what=""):
    assert rc is not None and rc >= 0, f"{what}: killed by signal {-rc if rc else rc}"


# ---------------------------------------------------------------- renameat2, raw xattr calls

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4

_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.getxattr.restype = ctypes.c_ssize_t
_libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.listxattr.restype = ctypes.c_ssize_t


def _raise_errno(what):
    e = ctypes.get_errno()
    raise OSError(e, f"{what}: {os.strerror(e)}")


def renameat2(old, new, flags):
    """renameat2(2) (Python's os.rename has no flags)."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        _raise_errno(f"renameat2({old}, {new}, {flags:#x})")


def getxattr_sized(path, name, size):
    """getxattr(2) with a buffer of exactly `size` bytes (0: a NULL buffer,
    the length probe). Returns (length, bytes) or raises OSError (ERANGE)."""
    buf = ctypes.create_string_buffer(size) if size else None
    n = _libc.getxattr(os.fsencode(path), os.fsencode(name), buf, size)
    if n < 0:
        _raise_errno(f"getxattr({path}, {name}, {size})")
    return n, (buf.raw[:n] if size else b"")


def listxattr_sized(path, size):
    """listxattr(2) with a buffer of exactly `size` bytes (0: the probe)."""
    buf = ctypes.create_string_buffer(size) if size else None
    n = _libc.listxattr(os.fsencode(path), buf, size)
    if n < 0:
        _raise_errno(f"listxattr({path}, {size})")
    return n, (buf.raw[:n] if size else b"")


# ---------------------------------------------------------------- --debug lines

DebugLine = namedtuple("DebugLine", "where op args result")
_DEBUG_RE = re.compile(r"^furing: \[(ring q\d+|dev)\] ([A-Z0-9_]+) unique=\d+ nodeid=\d+(.*) -> (.*)$")
# The kernel sends these over /dev/fuse even when requests use io_uring.
DEV_ONLY_OPS = {"FORGET", "BATCH_FORGET", "INTERRUPT", "NOTIFY_REPLY"}


def debug_lines(text):
    """The `furing: [ring qN]|[dev] OP unique=.. nodeid=.. ARGS -> RESULT`
    lines of --debug output."""
    out = []
    for line in text.splitlines():
        m = _DEBUG_RE.match(line)
        if m:
            out.append(DebugLine(m.group(1), m.group(2), m.group(3).strip(), m.group(4)))
    return out


def check_debug_transport(lines, transport):
    """Every request came over the transport the server was told to use."""
    assert lines, "no --debug request lines at all"
    if transport == "dev":
        wrong = [l for l in lines if l.where != "dev"]
    else:
        wrong = [l for l in lines if l.op not in DEV_ONLY_OPS and not l.where.startswith("ring q")]
        assert any(l.where.startswith("ring q") for l in lines), "no request came over the ring"
    assert not wrong, f"{transport}: requests over the wrong transport: {wrong[:5]}"


def read_direct(path, size):
    """The whole file with O_DIRECT reads of 1 MiB (an aligned buffer)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, MiB)
    out = bytearray()
    try:
        while len(out) < size:
            n = os.preadv(fd, [buf], len(out))
            if n == 0:
                break
            out += buf[:n]
    finally:
        os.close(fd)
        buf.close()
    return bytes(out)


def write_direct(fd, data, off):
    """One O_DIRECT write of data (a multiple of 4096) at off."""
    buf = mmap.mmap(-1, len(data))
    try:
        buf.write(data)
        assert os.pwritev(fd, [buf], off) == len(data)
    finally:
        buf.close()
