"""The library itself, through tests/lib/probefs.c (a filesystem written only
against the public header): notifications from another thread, answers
from other threads (also ones that race their operation's return),
per-request data, interrupts, worker timers (and what replaces them without
io_uring), poll, kernel passthrough,
INIT capabilities, init/destroy pairing, start-up failures, and the
library's manners as a guest (signals, log)."""

import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from furing_helpers import is_mounted, kill_after, terminate_and_unmount, wait_for

pytestmark = pytest.mark.timeout(60)

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
FSTYPE = "fuse.probefs"
TRANSPORT = {"dev": ["--io-uring=off"], "ring": ["--io-uring=on"]}
CAP_PASSTHROUGH = 1 << 37
CAP_EXPIRE_ONLY = 1 << 35


def build_dir():
    """The build the furing binary under test comes from (build-asan in the
    test command), so probefs runs against the same library build."""
    furing = os.environ.get("FURING_BIN")
    if furing:
        d = os.path.dirname(os.path.realpath(furing))
        if os.path.exists(os.path.join(d, "tests", "lib", "probefs")):
            return d
    return os.path.join(REPO, "build")


class Probe:
    def __init__(self, argv, mountpoint, workdir, env):
        self.argv = argv
        self.mountpoint = mountpoint
        self.stderr_path = os.path.join(workdir, f"probefs-{os.path.basename(mountpoint)}.stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, env=env, start_new_session=True)

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def path(self, name):
        return os.path.join(self.mountpoint, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def command(self, cmd):
        """Writes a command to /ctl (answered by probefs's notifier thread)
        and returns the notification's return code."""
        fd = os.open(self.path("ctl"), os.O_WRONLY)
        try:
            os.write(fd, cmd.encode())
        finally:
            os.close(fd)
        status = self.read("status").decode().strip()
        assert status.startswith("ret="), status
        return int(status[4:])

    def counters(self):
        return dict(kv.split("=") for kv in self.read("counters").decode().split())

    def granted(self):
        wait_for(lambda: "granted=" in self.stderr_text(), 5, what="granted line")
        line = [l for l in self.stderr_text().splitlines() if "granted=" in l][0]
        return int(line.split("granted=")[1], 16)

    def stop(self, timeout=10):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def probefs(request, workdir):
    started = []
    binary = os.path.join(build_dir(), "tests", "lib", "probefs")

    def start(*args, transport=None, wait=True, env=None, binary=binary, mountpoint=None):
        mp = mountpoint or os.path.join(workdir, f"probe{len(started)}")
        if mountpoint is None:
            os.mkdir(mp)
        argv = [binary] + (TRANSPORT[transport] if transport else []) + [str(a) for a in args] + [mp]
        p = Probe(argv, mp, workdir, dict(os.environ, **(env or {})))
        started.append(p)
        if wait:
            deadline = time.monotonic() + 10
            while not is_mounted(mp, FSTYPE):
                assert p.proc.poll() is None, f"probefs exited {p.proc.returncode}:\n{p.stderr_text()}"
                assert time.monotonic() < deadline, f"probefs did not mount:\n{p.stderr_text()}"
                time.sleep(0.02)
        return p

    # A request the filesystem never answers: kill the servers shortly
    # before the test's timeout.
    timer = kill_after(48, lambda: [p.proc for p in started])
    yield start
    timer.cancel()
    for p in started:
        terminate_and_unmount(p.proc, p.mountpoint, wait=8)


# ------------------------------------------------------------ notifications

def test_inval_inode_from_another_thread(probefs, transport):
    p = probefs(transport=transport)
    fd = os.open(p.path("data"), os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 0) == b"initial\n"
        assert p.command("set changed\n") == 0
        # The kernel keeps the page (KEEP_CACHE, long timeouts): still the old text.
        assert os.pread(fd, 100, 0) == b"initial\n"
        assert p.command("inval_inode") == 0
        assert os.pread(fd, 100, 0) == b"changed"
    finally:
        os.close(fd)


def test_store_and_retrieve(probefs, transport):
    p = probefs(transport=transport)
    fd = os.open(p.path("data"), os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 0) == b"initial\n"
        assert p.command("store 0 STORED") == 0
        # The page now holds what was stored, not what probefs would read.
        assert os.pread(fd, 6, 0) == b"STORED"
        assert p.command("retrieve 0 6") == 0
        wait_for(lambda: p.read("retrieved") == b"STORED", 5, what="retrieve reply")
    finally:
        os.close(fd)


def test_notifications_of_unknown_nodes_say_enoent(probefs, transport):
    """Before the kernel has looked the node up there is nothing to
    invalidate: the notification says so instead of failing silently."""
    p = probefs(transport=transport)
    assert p.command("inval_inode") == -2  # -ENOENT: /data was never looked up


def test_inval_entry_and_delete(probefs, transport):
    p = probefs(transport=transport)
    os.stat(p.path("entry"))
    assert p.command("hide_entry") == 0
    # The name is cached for an hour: the kernel still finds it.
    os.stat(p.path("entry"))
    assert p.command("inval_entry") == 0
    with pytest.raises(FileNotFoundError):
        os.stat(p.path("entry"))

    q = probefs(transport=transport)
    st = os.stat(q.path("entry"))
    assert p.command  # keep p alive
    assert q.command("delete_entry") == 0
    with pytest.raises(FileNotFoundError):
        os.stat(q.path("entry"))
    assert st.st_ino != 0


def test_poll_notification(probefs, transport):
    p = probefs(transport=transport)
    fd = os.open(p.path("pollable"), os.O_RDONLY)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(100) == []  # not ready: probefs keeps the poll handle

        def wake():
            time.sleep(0.3)
            p.command("poll_wake")
        t = threading.Thread(target=wake)
        t.start()
        events = poller.poll(10000)
        t.join()
        assert events and events[0][1] & select.POLLIN, events
    finally:
        os.close(fd)


# ------------------------------------------------------- answers elsewhere

def test_answers_from_other_threads(probefs, transport):
    """/slow is answered from a thread of probefs's own, /ctl from its
    notifier thread: many at once, all complete and correct."""
    p = probefs(transport=transport)
    results = []

    def reader():
        for _ in range(20):
            results.append(p.read("slow"))
    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"slow\n"] * 160
    for i in range(20):
        assert p.command(f"set v{i}\n") == 0


def test_worker_timer(probefs, transport):
    p = probefs(transport=transport)
    start = time.monotonic()
    assert p.read("timer") == b"timer\n"
    assert time.monotonic() - start >= 0.019  # answered from a 20 ms timer


def test_interrupt_reaches_filesystem(probefs, transport):
    """A signal to a reader blocked in /block: the kernel sends INTERRUPT
    (over /dev/fuse even with the ring), probefs answers the read EINTR from
    the worker that read the interrupt."""
    p = probefs(transport=transport)
    child = subprocess.Popen([sys.executable, "-c", f"""
import os, signal, sys
def stop(*a):
    raise InterruptedError
signal.signal(signal.SIGUSR1, stop)
fd = os.open({p.path('block')!r}, os.O_RDONLY)
print('reading', flush=True)
try:
    os.read(fd, 10)
    sys.exit(3)
except InterruptedError:
    sys.exit(0)
"""], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"reading\n"
        time.sleep(0.3)  # into the read
        child.send_signal(signal.SIGUSR1)
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert p.counters()["interrupts"] == "1"


def read_concurrently(p, name, threads=8, each=20):
    results = []
    lock = threading.Lock()

    def reader():
        for _ in range(each):
            data = p.read(name)
            with lock:
                results.append(data)
    ts = [threading.Thread(target=reader) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert len(results) == threads * each, f"{name}: {len(results)} of {threads * each} reads finished"
    return results


def test_reply_racing_its_operation(probefs, transport):
    """/race is answered from another thread while its operation still runs
    (the operation returns only after the answer): every read gets its own
    answer, and the mount keeps serving (the slot is not reused early)."""
    p = probefs("--threads", "2", transport=transport)
    assert read_concurrently(p, "race") == [b"race\n"] * 160
    assert p.read("data") == b"initial\n"
    assert p.stop() == 0


def test_request_data_pointer(probefs, transport):
    """furing_req_set_data: a malloc'd struct bigger than the scratch,
    found again with furing_req_data in the completion of the request's
    furing_req_pread; every request arrives with NULL."""
    p = probefs(transport=transport)
    results = read_concurrently(p, "reqdata", threads=4, each=25)
    assert all(r.startswith(b"reqdata off=0 size=") and r.endswith(b"\n") for r in results), set(results)
    p.read("timer")
    c = p.counters()
    assert c["data_stale"] == "0", c
    assert c["timer_fallbacks"] == "0", c  # worker timers exist on both transports


def test_without_io_uring(probefs, workdir, io_uring_sysctl_off):
    """No io_uring at all (blocking workers, one request each at a time):
    furing_worker_timeout is unavailable and probefs answers /timer from a
    thread of its own, as the header says to; answers from other threads,
    also ones that race their operation, and per-request data work, and
    the worker waits for a pending answer instead of reading the next
    request over it."""
    log = os.path.join(workdir, "lib.log")
    p = probefs("--threads", "2", "--log", log)
    assert "blocking reads" in open(log).read()
    t0 = time.monotonic()
    assert p.read("timer") == b"timer\n"
    assert time.monotonic() - t0 >= 0.019
    assert p.counters()["timer_fallbacks"] == "1"
    assert read_concurrently(p, "slow", threads=8, each=10) == [b"slow\n"] * 80
    assert read_concurrently(p, "race", threads=4, each=10) == [b"race\n"] * 40
    results = read_concurrently(p, "reqdata", threads=4, each=10)
    assert all(r.startswith(b"reqdata off=0 size=") for r in results), set(results)
    for i in range(5):
        assert p.command(f"set v{i}\n") == 0  # /ctl's write is answered by the notifier thread
    assert p.counters()["data_stale"] == "0"
    assert p.stop() == 0


# ------------------------------------------------------ kernel passthrough

@pytest.mark.skipif(os.geteuid() != 0, reason="kernel passthrough needs CAP_SYS_ADMIN")
def test_kernel_passthrough(probefs, transport, workdir):
    backing = os.path.join(workdir, "backing")
    content = os.urandom(3 * 4096 + 100)
    with open(backing, "wb") as f:
        f.write(content)
    p = probefs("--want-passthrough", "--backing", backing, transport=transport)
    assert p.granted() & CAP_PASSTHROUGH
    fd = os.open(p.path("passthru"), os.O_RDONLY)
    try:
        assert os.pread(fd, len(content) + 100, 0) == content
    finally:
        os.close(fd)
    assert p.counters()["passthru_reads"] == "0"  # the kernel read the backing file


def test_init_asks_only_for_what_it_wants(probefs, transport):
    p = probefs(transport=transport)
    g = p.granted()
    assert not g & CAP_PASSTHROUGH
    assert g & CAP_EXPIRE_ONLY  # asked for in init, offered by 6.18


# --------------------------------------------------------------- start-up

def marker_lines(path):
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_init_refusal_fails_start_cleanly(probefs, workdir):
    marker = os.path.join(workdir, "marker")
    p = probefs("--refuse-init", "--marker", marker, wait=False)
    assert p.proc.wait(15) == 1
    err = p.stderr_text()
    assert "init refused the mount" in err, err
    assert not is_mounted(p.mountpoint, FSTYPE)
    assert marker_lines(marker) == ["init", "destroy"]


def test_destroy_runs_without_an_init_operation(probefs, workdir):
    """ops->destroy runs after a session whose table has no init."""
    marker = os.path.join(workdir, "marker")
    p = probefs("--no-init", "--marker", marker)
    assert p.stop() == 0
    assert marker_lines(marker) == ["destroy"]


def test_no_init_no_destroy(probefs, workdir):
    """A mount that fails before FUSE_INIT never calls init, nor destroy."""
    marker = os.path.join(workdir, "marker")
    p = probefs("--marker", marker, wait=False, mountpoint=os.path.join(workdir, "missing"))
    assert p.proc.wait(15) == 1
    assert "missing" in p.stderr_text()
    assert marker_lines(marker) == []


def test_worker_start_failure(probefs, workdir, transport):
    marker = os.path.join(workdir, "marker")
    p = probefs("--threads", "2", "--fail-worker-start", "--marker", marker, transport=transport, wait=False)
    assert p.proc.wait(15) == 1
    assert "worker_start failed" in p.stderr_text()
    assert not is_mounted(p.mountpoint, FSTYPE)
    assert marker_lines(marker) == ["init", "destroy"]


def test_workers_that_do_not_arm_in_time(probefs, workdir, transport):
    """A worker that is not ready within start_timeout_ms: the start call
    says so and undoes everything; it does not report success early, nor
    wait for ever."""
    marker = os.path.join(workdir, "marker")
    p = probefs("--threads", "2", "--slow-worker-start", "3000", "--start-timeout", "500", "--marker", marker,
                transport=transport, wait=False)
    assert p.proc.wait(20) == 1
    err = p.stderr_text()
    assert "did not arm their queues within 500 ms" in err, err
    assert "serving" not in err, err
    assert not is_mounted(p.mountpoint, FSTYPE)
    assert marker_lines(marker) == ["init", "destroy"]


@pytest.mark.parametrize("fault,message", [
    # probefs starts two threads of its own before the session's two workers
    ("thread:4", "cannot start worker thread 2 of 2"),
    ("ring", "cannot create its io_uring"),
])
def test_resource_failure_at_start(probefs, workdir, transport, fault, message):
    """A thread that cannot be created, a worker ring that cannot be set up:
    the start call fails with the reason, everything is torn down."""
    plain = os.path.join(REPO, "build")  # a preload shim and ASan do not mix
    shim = os.path.join(plain, "tests", "lib", "libfailshim.so")
    binary = os.path.join(plain, "tests", "lib", "probefs")
    p = probefs("--threads", "2", transport=transport, wait=False, binary=binary,
                env={"LD_PRELOAD": shim, "FAILSHIM": fault})
    assert p.proc.wait(15) == 1
    err = p.stderr_text()
    assert message in err, err
    assert not is_mounted(p.mountpoint, FSTYPE)


# ------------------------------------------------------------- manners

def sig_masks(pid):
    masks = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("SigBlk", "SigCgt"):
                masks[k] = int(v.strip(), 16)
    return masks


def bit(sig):
    return 1 << (sig - 1)


def test_no_signal_handlers_unless_asked(probefs, transport):
    p = probefs("--no-signals", transport=transport)
    p.granted()  # started: glibc blocks signals for a moment while it creates a thread
    m = sig_masks(p.proc.pid)  # the main thread
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        assert not m["SigCgt"] & bit(s), f"signal {s} caught without being asked"
        assert not m["SigBlk"] & bit(s), f"signal {s} blocked in the application's thread"
    q = probefs(transport=transport)
    q.granted()
    m = sig_masks(q.proc.pid)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        assert m["SigCgt"] & bit(s), f"furing_session_handle_signals did not take {s}"
    assert q.stop() == 0
    p.proc.kill()
    p.proc.wait(5)


def test_log_callback_takes_every_message(probefs, workdir, transport):
    log = os.path.join(workdir, "lib.log")
    p = probefs("--log", log, "--debug", transport=transport)
    assert p.read("slow") == b"slow\n"
    os.kill(p.proc.pid, signal.SIGUSR1)
    wait_for(lambda: "stats requests=" in open(log).read(), 5, what="stats in the log")
    assert p.stop() == 0
    text = open(log).read()
    assert "info: " in text and "debug: [" in text, text
    assert "furing:" not in p.stderr_text(), p.stderr_text()


def test_silent_without_a_log_callback(probefs, transport):
    """No furing_config.log: the library prints nothing, not even the
    start-up layout (INFO) or the SIGUSR1 counters; probefs's own
    "probefs: serving" line is the whole of stderr."""
    p = probefs(transport=transport)
    assert p.read("slow") == b"slow\n"
    os.kill(p.proc.pid, signal.SIGUSR1)
    time.sleep(0.3)
    assert p.stop() == 0
    lines = p.stderr_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probefs: serving"), lines
