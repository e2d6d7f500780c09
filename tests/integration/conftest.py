"""Fixtures for the furing integration tests.

- furing_bin   : path of the binary (repo/build/furing, or $FURING_BIN)
- transport    : "dev" / "ring" parametrization (--io-uring=off / --io-uring=on)
- workdir      : a fresh directory for one test (under the session's base dir)
- make_image   : factory making a sparse / zero / random / given-bytes image
- image        : a 16 MiB sparse image
- furing       : factory starting `furing export`, waiting for the mount, and
                 always cleaning up (SIGTERM, SIGKILL, umount -l) at teardown
- examples_dir : where the example filesystems are (next to the binary)
- example      : the same for an example filesystem (examples/hello.c,
                 examples/memfs.c) mounted on a fresh directory
- cli          : runs the binary to completion (for bad-input tests)
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from furing_helpers import (
    EXAMPLES, FSTYPE, FUSE_CMDLINE_EXAMPLES, TRANSPORT_ARGS, URING_PARAM, StopResult, check_stats_fields,
    fuse_cmdline_argv, is_mounted, lazy_umount_all, mounts, parse_summary, pattern, stats_lines,
)
from nbd_servers import Servers

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
READY_TIMEOUT = 10.0      # seconds for the mount to show up
STOP_TIMEOUT = 10.0       # seconds for a clean exit after SIGTERM/SIGINT/umount
TEARDOWN_GRACE = 5.0      # SIGTERM -> SIGKILL at teardown

_LIVE = set()             # every Popen we started that may still run (safety net)
_LIVE_LOCK = threading.Lock()
# Readiness timeouts in a row: a binary that never mounts would otherwise
# cost READY_TIMEOUT per test; after 3 in a row later waits are short.
_NOT_READY_STREAK = [0]


# ------------------------------------------------------------------ session

def _session_base():
    parent = os.environ.get("FURING_TEST_TMPDIR", "/tmp")
    base = tempfile.mkdtemp(prefix="furing-it-", dir=parent)
    # world-searchable, so the unprivileged tests can reach their own subdir
    os.chmod(base, 0o755)
    return os.path.realpath(base)


@pytest.fixture(scope="session")
def session_base():
    base = _session_base()
    yield base
    # Safety net: whatever a test left behind.
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    leftovers = [m.mountpoint for m in mounts()
                 if m.fstype.startswith("fuse") and m.mountpoint.startswith(base + "/")]
    for mp in leftovers:
        lazy_umount_all(mp)
    if leftovers:
        sys.stderr.write(f"\nfuring tests: lazily unmounted leftover mounts: {leftovers}\n")
    if not os.environ.get("FURING_KEEP_TMP"):
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def furing_bin():
    path = os.environ.get("FURING_BIN") or os.path.join(REPO, "build", "furing")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"furing binary not found or not executable: {path} "
                    f"(build it, or set FURING_BIN)", pytrace=False)
    return os.path.realpath(path)


@pytest.fixture(scope="session")
def examples_dir(furing_bin):
    """$FURING_EXAMPLES_DIR, or examples/ of the build the binary comes from
    (so that test.sh's sanitized build tests its sanitized examples)."""
    path = os.environ.get("FURING_EXAMPLES_DIR") or os.path.join(os.path.dirname(furing_bin), "examples")
    for name in EXAMPLES:
        exe = os.path.join(path, name)
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            pytest.fail(f"example filesystem not found or not executable: {exe} "
                        f"(build it, or set FURING_EXAMPLES_DIR)", pytrace=False)
    return os.path.realpath(path)


@pytest.fixture(scope="session")
def uring_state():
    """Make sure FUSE-over-io_uring is enabled for the session; restore the
    previous value afterwards. Yields the current value ("Y"/"N"/None)."""
    try:
        with open(URING_PARAM) as f:
            old = f.read().strip()
    except OSError:
        yield None
        return
    changed = False
    if old != "Y" and os.geteuid() == 0:
        try:
            with open(URING_PARAM, "w") as f:
                f.write("Y")
            changed = True
        except OSError:
            pass
    with open(URING_PARAM) as f:
        cur = f.read().strip()
    yield cur
    if changed:
        try:
            with open(URING_PARAM, "w") as f:
                f.write(old)
        except OSError:
            pass


@pytest.fixture(params=["dev", "ring"])
def transport(request):
    if request.param == "ring":
        st = request.getfixturevalue("uring_state")
        if st != "Y":
            pytest.skip(f"{URING_PARAM} is {st!r} and cannot be set to Y (need root)")
    return request.param


# ------------------------------------------------------------------ reports

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    hung = getattr(item, "_furing_hung", None)
    if rep.when == "call" and hung:
        rep.sections.append(("furing watchdog", hung))


def _test_failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def _test_timeout(request):
    m = request.node.get_closest_marker("timeout")
    if m is not None:
        if m.args:
            return float(m.args[0])
        if "timeout" in m.kwargs:
            return float(m.kwargs["timeout"])
    try:
        return float(request.config.getini("timeout") or 0) or 120.0
    except (ValueError, KeyError):
        return 120.0


# ------------------------------------------------------------------ per test

_counter = [0]


@pytest.fixture
def workdir(request, session_base):
    _counter[0] += 1
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
    d = os.path.join(session_base, f"{_counter[0]:03d}-{name}")
    os.mkdir(d)
    yield d
    # anything still mounted below this test's dir
    for m in mounts():
        if m.fstype.startswith("fuse") and m.mountpoint.startswith(d + "/"):
            lazy_umount_all(m.mountpoint)


@pytest.fixture
def make_image(workdir):
    """make_image(size, fill="sparse"|"zero"|"random"|bytes, name=..., seed=...)"""
    def make(size=16 * 1024 * 1024, fill="sparse", name="image.raw", seed=1234, mode=0o644):
        path = os.path.join(workdir, name)
        with open(path, "wb") as f:
            if fill == "sparse":
                f.truncate(size)
            elif fill == "zero":
                f.write(bytes(size))
            elif fill == "random":
                f.write(pattern(size, seed))
            elif isinstance(fill, (bytes, bytearray)):
                assert len(fill) == size
                f.write(fill)
            else:
                raise ValueError(fill)
        os.chmod(path, mode)
        return path
    return make


@pytest.fixture
def image(make_image):
    return make_image()


class Furing:
    """One running FUSE server: `furing export`, or an example filesystem
    (fstype fuse.<its subtype>, no summary line)."""

    def __init__(self, argv, image, mountpoint, workdir, transport, env, tag, fstype=FSTYPE,
                 summary=True):
        self.argv = argv
        self.image = image
        self.mountpoint = mountpoint
        self.transport = transport
        self.fstype = fstype
        self.summary = summary  # prints `furing: summary ...` on a clean exit
        self.stderr_path = os.path.join(workdir, f"furing{tag}.stderr")
        self.stdout_path = os.path.join(workdir, f"furing{tag}.stdout")
        self.proc = None
        self.fds = []
        self.result = None
        self.stopped_by_test = False
        self.watchdog_fired = False
        self._env = env

    # --- lifecycle
    def start(self):
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=self._env, start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(self.proc)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        if _NOT_READY_STREAK[0] >= 3:
            timeout = min(timeout, 1.0)
        deadline = time.monotonic() + timeout
        while True:
            if is_mounted(self.mountpoint, self.fstype):
                _NOT_READY_STREAK[0] = 0
                return self
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"{self.argv[0]} exited with {rc} before the mount appeared; argv={self.argv}\n"
                    f"stderr:\n{self.stderr_text()}")
            if time.monotonic() >= deadline:
                _NOT_READY_STREAK[0] += 1
                raise AssertionError(
                    f"mount {self.mountpoint} ({self.fstype}) not ready within {timeout}s; "
                    f"argv={self.argv}\nstderr:\n{self.stderr_text()}")
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def mounted(self):
        return is_mounted(self.mountpoint, self.fstype)

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def send(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    # --- files on the mount
    def open(self, flags=os.O_RDWR):
        fd = os.open(self.mountpoint, flags)
        self.fds.append(fd)
        return fd

    def close(self, fd):
        self.fds.remove(fd)
        os.close(fd)

    def close_all(self):
        while self.fds:
            fd = self.fds.pop()
            try:
                os.close(fd)
            except OSError:
                pass

    # --- stop
    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for the process to exit on its own; return StopResult."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"furing did not exit within {timeout}s; stderr:\n"
                                 f"{self.stderr_text()[-3000:]}")
        self.stopped_by_test = True
        text = self.stderr_text()
        self.result = StopResult(rc, text, parse_summary(text))
        return self.result

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, close_fds=True):
        """Close our fds, send sig, wait for exit: StopResult(rc, stderr, summary)."""
        if close_fds:
            self.close_all()
        self.send(sig)
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def summary_problems(self):
        """Invariants of every clean exit: one summary line, consistent
        with the transport the test asked for."""
        text = self.stderr_text()
        n = len(stats_lines(text, "summary"))
        if n != 1:
            return [f"{n} summary lines on a clean exit (expected 1)"]
        try:
            s = parse_summary(text)
            check_stats_fields(s, self.transport)
            if self.transport == "ring":
                moved = {op: n for op, n in s["dev_ops"].items() if op in ("READ", "WRITE")}
                if moved:
                    return [f"--io-uring=on but READ/WRITE went through /dev/fuse: {moved}"]
                if s["requests"] > 0 and s["ring"] == 0:
                    return [f"--io-uring=on but no request came through the ring: {s}"]
        except AssertionError as e:
            return [f"summary: {e}"]
        return []

    def cleanup(self):
        """Teardown: never leaves a process or a mount behind. Returns a list
        of problems (strings) seen on the way."""
        problems = []
        if self.proc is None:
            return problems
        killed = self.watchdog_fired
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(TEARDOWN_GRACE)
                if rc != 0:
                    problems.append(f"exit code {rc} on SIGTERM at teardown")
            except subprocess.TimeoutExpired:
                problems.append(f"did not exit within {TEARDOWN_GRACE}s of SIGTERM: SIGKILLed")
                self.kill()
                killed = True
        elif self.watchdog_fired:
            problems.append("a request hung: the test watchdog SIGKILLed the server")
        self.close_all()
        # after a SIGKILL the mount is expected to stay (dead); otherwise it is a bug
        if lazy_umount_all(self.mountpoint) and not killed:
            problems.append("mount still present after the process exited: umount -l")
        if self.proc.returncode == 0 and self.summary:
            problems += self.summary_problems()
        with _LIVE_LOCK:
            _LIVE.discard(self.proc)
        return problems


IO_URING_SYSCTL = "/proc/sys/kernel/io_uring_disabled"


@pytest.fixture
def io_uring_sysctl_off():
    """kernel.io_uring_disabled=2 (nobody may use io_uring) for one test."""
    if os.geteuid() != 0 or not os.path.exists(IO_URING_SYSCTL):
        pytest.skip("needs root and kernel.io_uring_disabled")
    with open(IO_URING_SYSCTL) as f:
        old = f.read().strip()
    with open(IO_URING_SYSCTL, "w") as f:
        f.write("2")
    try:
        yield
    finally:
        with open(IO_URING_SYSCTL, "w") as f:
            f.write(old)


def supervise(request, instances, factory):
    """Yields `factory` (which starts servers and appends them to
    `instances`) with a watchdog and a teardown around the test: a
    generator fixture does `yield from supervise(...)`.

    Watchdog: a hung FUSE request is not interruptible by pytest-timeout's
    SIGALRM, so shortly before the test's timeout the servers are killed,
    which aborts the connection and unblocks the test. Teardown: every
    server stopped and its mount gone; a server that needed SIGKILL, exited
    non-zero or left its mount fails the test."""
    limit = _test_timeout(request)

    def watchdog():
        for inst in list(instances):
            if inst.proc is not None and inst.proc.poll() is None:
                inst.watchdog_fired = True
                inst.proc.kill()
                request.node._furing_hung = (
                    f"HANG: after {limit * 0.8:.0f}s the test was still blocked; the server "
                    f"{' '.join(inst.argv)} was SIGKILLed to unblock it (errors like ENOTCONN "
                    f"in the test are a consequence). Its stderr:\n{inst.stderr_text()[-2000:]}")
    timer = threading.Timer(limit * 0.8, watchdog)
    timer.daemon = True
    timer.start()

    yield factory

    timer.cancel()
    problems = []
    for inst in instances:
        problems += [f"{os.path.basename(inst.mountpoint)}: {p}" for p in inst.cleanup()]
    if _test_failed(request):
        for inst in instances:
            print(f"---- stderr of {' '.join(inst.argv)} (last 4000 chars) ----")
            print(inst.stderr_text()[-4000:])
    if problems and not _test_failed(request):
        pytest.fail("teardown: " + "; ".join(problems), pytrace=False)
    elif problems:
        print("teardown problems: " + "; ".join(problems))


def _servers(request, workdir):
    """Yields launch(argv, mountpoint, transport, ...) -> Furing, which
    starts a server and waits for its mount; owns the watchdog and the
    teardown of everything it started."""
    instances = []

    def launch(argv, mountpoint, transport, image=None, wait=True, env=None, **kw):
        inst = Furing(argv, image, mountpoint, workdir, transport, env, len(instances), **kw)
        instances.append(inst)
        inst.start()
        if wait:
            inst.wait_ready()
        return inst

    yield from supervise(request, instances, launch)


def _transport_argv(transport, transport_args):
    if transport_args is not None:
        return list(transport_args)
    return TRANSPORT_ARGS[transport] if transport is not None else []


def _factory(request, furing_bin, workdir, transport):
    servers = _servers(request, workdir)
    launch = next(servers)
    count = [0]

    def start(image, *extra, writable=False, growable=False, mountpoint=None, precreate=True,
              debug=False, wait=True, env=None, prefix=None, transport_args=None, binary=None,
              kernel_passthrough=False):
        if mountpoint is None:
            mountpoint = os.path.join(workdir, f"mnt{count[0]}")
        count[0] += 1
        if precreate and not os.path.exists(mountpoint):
            open(mountpoint, "wb").close()
        argv = list(prefix or []) + [binary or furing_bin, "export"]
        argv += _transport_argv(transport, transport_args)
        if writable:
            argv.append("--writable")
        if growable:
            argv.append("--growable")
        if debug:
            argv.append("--debug")
        # Read-only exports read through the kernel by default when root;
        # the tests exercise furing's own read path unless they ask
        # (test_export_kpt.py tests the kernel's).
        if not kernel_passthrough and not any(str(a).startswith("--kernel-passthrough") for a in extra):
            argv.append("--kernel-passthrough=off")
        argv += [str(a) for a in extra]
        argv += [image, mountpoint]
        return launch(argv, mountpoint, transport, image=image, wait=wait, env=env)

    yield start
    yield from servers


def _example_factory(request, examples_dir, workdir, transport):
    servers = _servers(request, workdir)
    launch = next(servers)
    count = [0]

    def start(name, *extra, debug=True, wait=True, env=None, binary=None, fstype=None,
              transport_args=None):
        mountpoint = os.path.join(workdir, f"{name}{count[0]}")
        count[0] += 1
        os.mkdir(mountpoint)
        argv = [binary or os.path.join(examples_dir, name)]
        opts = _transport_argv(transport, transport_args) + (["--debug"] if debug else [])
        if name in FUSE_CMDLINE_EXAMPLES:
            opts = ["-f"] + fuse_cmdline_argv(opts)
        argv += opts + [str(a) for a in extra] + [mountpoint]
        return launch(argv, mountpoint, transport, wait=wait, env=env,
                      fstype=fstype or f"fuse.{name}", summary=False)

    yield start
    yield from servers


@pytest.fixture
def furing(request, furing_bin, transport, workdir):
    """furing(image, *extra, writable=False, growable=False, mountpoint=None,
    precreate=True, debug=False, wait=True, env=None, prefix=None,
    transport_args=None, binary=None, kernel_passthrough=False) -> Furing,
    started with the transport's --io-uring option (and, unless asked,
    --kernel-passthrough=off) and ready (mounted) unless wait=False."""
    yield from _factory(request, furing_bin, workdir, transport)


@pytest.fixture
def furing_plain(request, furing_bin, workdir):
    """Like `furing` but not parametrized over transports: no --io-uring
    option unless transport_args= is given."""
    yield from _factory(request, furing_bin, workdir, None)


@pytest.fixture
def ring(uring_state, furing_plain):
    """ring(image, *extra, **kw) -> Furing: a writable export over
    FUSE-over-io_uring only (`--io-uring=on`); skips where it cannot be
    enabled."""
    if uring_state != "Y":
        pytest.skip("FUSE-over-io_uring cannot be enabled here")

    def start(image, *extra, **kw):
        return furing_plain(image, *extra, transport_args=["--io-uring=on"], writable=True, **kw)
    return start


@pytest.fixture
def example(request, examples_dir, transport, workdir):
    """example(name, *extra, debug=True, wait=True, env=None, binary=None,
    fstype=None, transport_args=None) -> Furing: starts the example
    filesystem `name` (hello, memfs) with the transport's --io-uring option
    on a new directory and waits for its mount (fuse.<name>). With debug,
    each request leaves one `furing: [ring qN]|[dev] OP ...` line in
    .stderr_text(). Same watchdog and teardown as `furing`."""
    yield from _example_factory(request, examples_dir, workdir, transport)


@pytest.fixture
def example_plain(request, examples_dir, workdir):
    """Like `example` but not parametrized over transports: no --io-uring
    option unless transport_args= is given."""
    yield from _example_factory(request, examples_dir, workdir, None)


class CliResult:
    def __init__(self, rc, stdout, stderr):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr

    def __repr__(self):
        return f"CliResult(rc={self.rc}, stdout={self.stdout[-500:]!r}, stderr={self.stderr[-1500:]!r})"


@pytest.fixture
def cli(furing_bin, workdir):
    """cli(args, mountpoint=None, timeout=10, env=None, prefix=None) runs
    `furing ARGS` to completion. A run that does not finish in time is
    killed, its mount removed, and the test fails ("hang")."""
    def run(args, mountpoint=None, timeout=10, env=None, prefix=None, binary=None):
        argv = list(prefix or []) + [binary or furing_bin] + [str(a) for a in args]
        out_p = os.path.join(workdir, "cli.stdout")
        err_p = os.path.join(workdir, "cli.stderr")
        with open(out_p, "wb") as out, open(err_p, "wb") as err:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=env, start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(p)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            if mountpoint:
                lazy_umount_all(mountpoint)
            with open(err_p, "rb") as f:
                tail = f.read().decode("utf-8", "replace")[-2000:]
            raise AssertionError(f"`{' '.join(argv)}` did not finish within {timeout}s "
                                 f"(hang or unexpectedly serving); stderr:\n{tail}")
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(p)
        with open(out_p, "rb") as f:
            so = f.read().decode("utf-8", "replace")
        with open(err_p, "rb") as f:
            se = f.read().decode("utf-8", "replace")
        return CliResult(rc, so, se)
    return run


@pytest.fixture
def servers(workdir):
    """NBD servers (nbd_servers.Servers) for one test, all stopped after it."""
    s = Servers(workdir)
    yield s
    s.stop_all()
