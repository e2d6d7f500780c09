"""`furing daemon` and `furing ctl`: exports added, used, listed and removed
at run time through the control socket (doc/control.md), bad requests
answered without harm to the exports that serve, the socket's guard."""

import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from furing_helpers import assert_same, is_mounted, kill_after, lazy_umount_all, pattern, wait_for
from nbd_servers import Servers
from test_unprivileged import SETPRIV, USER_ENV, dev_fuse_for_users, userdir  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(90)

MiB = 1024 * 1024
READY_TIMEOUT = 10.0
REPLY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class Control:
    """One connection to the daemon: the greeting, then request/reply."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(REPLY_TIMEOUT)
        self.sock.connect(path)
        self.buf = b""
        self.greeting = self.read()

    def read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def send_raw(self, data):
        self.sock.sendall(data)

    def reply(self):
        """The next reply, past any events sent meanwhile (to every client:
        a backend that fails while a request is on its way), as a client
        waiting for a reply does (doc/control.md, Framing)."""
        while True:
            msg = self.read()
            if "event" not in msg:
                return msg

    def request(self, command, **args):
        msg = {"command": command}
        if args:
            msg["arguments"] = args
        self.send_raw(json.dumps(msg).encode() + b"\n")
        return self.reply()

    def close(self):
        self.sock.close()


class Daemon:
    def __init__(self, binary, workdir, prefix=(), env=None, sockdir=None, args=()):
        self.sock_path = os.path.join(sockdir or workdir, "control.sock")
        self.stderr_path = os.path.join(workdir, "daemon.stderr")
        self.workdir = workdir
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(list(prefix) + [binary, "daemon", "--control", self.sock_path, *args],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                                         start_new_session=True)
        self.mountpoints = []

    def wait_ready(self):
        def connects():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                Control(self.sock_path).close()
                return True
            except OSError:
                return False
        wait_for(connects, READY_TIMEOUT, what="the control socket")
        return self

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def connect(self):
        return Control(self.sock_path)

    def request(self, command, **args):
        c = self.connect()
        try:
            return c.request(command, **args)
        finally:
            c.close()

    def add(self, id, source, mountpoint, **options):
        """export-add, which must succeed; the mountpoint is tracked for the teardown."""
        self.mountpoints.append(mountpoint)
        options.setdefault("kernel-passthrough", "off")
        r = self.request("export-add", id=id, type="export", source=source, mountpoint=mountpoint,
                         **options)
        assert r.get("reply") == "export-add" and "return" in r, r
        return r["return"]

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"daemon did not stop within {STOP_TIMEOUT}s:\n{self.stderr()[-3000:]}")

    def cleanup(self):
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT)
                if rc != 0:
                    problems.append(f"exit code {rc} on SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append("did not stop on SIGTERM: SIGKILLed")
                self.proc.kill()
                self.proc.wait(5)
        for mp in self.mountpoints:
            if lazy_umount_all(mp):
                problems.append(f"{mp} still mounted after the daemon exited")
        if "Sanitizer" in self.stderr() or "runtime error" in self.stderr():
            problems.append("sanitizer report in the daemon's stderr")
        return problems


@pytest.fixture
def daemon(request, furing_bin, workdir):
    started = []

    def start(binary=None, wait=True, **kw):
        d = Daemon(binary or furing_bin, workdir, **kw)
        started.append(d)
        return d.wait_ready() if wait else d

    # Shortly before the test's limit (a hung mount blocks it for good).
    timer = kill_after(80, lambda: [d.proc for d in started])
    yield start
    timer.cancel()
    problems = []
    for d in started:
        problems += d.cleanup()
    failed = getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed
    if failed:
        for d in started:
            print(f"---- daemon stderr ----\n{d.stderr()[-4000:]}")
    elif problems:
        pytest.fail("teardown: " + "; ".join(problems), pytrace=False)


def make_image(workdir, name, size=4 * MiB, seed=1):
    path = os.path.join(workdir, name)
    with open(path, "wb") as f:
        f.write(pattern(size, seed))
    return path


def error_class(reply):
    assert "error" in reply, f"expected an error reply, got {reply}"
    assert isinstance(reply["error"].get("desc"), str) and "\n" not in reply["error"]["desc"], reply
    return reply["error"]["class"]


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def safe_del_when_closed(d, id, timeout=5.0):
    """The kernel lets go of a closed file at once, but allow a moment."""
    deadline = time.monotonic() + timeout
    while True:
        r = d.request("export-del", id=id, mode="safe")
        if "return" in r or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


# ---------------------------------------------------------------- tests

def test_greeting(daemon):
    d = daemon()
    g = d.connect().greeting["greeting"]
    assert g["program"] == "furing" and g["protocol"] == 1 and g["version"]
    assert set(g["capabilities"]["types"]) == {"export", "passthrough"}
    assert {"export-add", "export-del", "query-exports"} <= set(g["capabilities"]["commands"])
    st = os.stat(d.sock_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600


def test_exports_io_query_del(daemon, workdir, uring_state):
    d = daemon()
    img1 = make_image(workdir, "one.raw", seed=1)
    img2 = make_image(workdir, "two.raw", seed=2)
    mnt1 = os.path.join(workdir, "one.img")          # created by the daemon
    mnt2 = os.path.join(workdir, "two.img")
    open(mnt2, "wb").close()                         # an existing file
    ring = "on" if uring_state == "Y" else "auto"
    r1 = d.add("one", img1, mnt1, writable=True, threads=2, **{"io-uring": ring, "queue-depth": 16})
    r2 = d.add("two", img2, mnt2, **{"io-uring": "off", "cache": "none"})
    assert r1["id"] == "one" and r1["state"] == "running" and r1["size"] == 4 * MiB
    assert is_mounted(mnt1) and is_mounted(mnt2)
    if uring_state == "Y":
        assert r1["transport"] == "io_uring"
    assert r2["transport"] == "/dev/fuse"

    # I/O on both, at once
    assert_same(read_all(mnt2), read_all(img2), "read of export two")
    data = pattern(65536, 9)
    fd = os.open(mnt1, os.O_RDWR)
    try:
        assert os.pwrite(fd, data, 12345) == len(data)
        assert_same(os.pread(fd, len(data), 12345), data, "read back on export one")
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(img1, "rb") as f:
        f.seek(12345)
        assert_same(f.read(len(data)), data, "the image behind export one")
    with pytest.raises(OSError) as ei:
        os.open(mnt2, os.O_WRONLY)
    assert ei.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)

    q = d.request("query-exports")
    assert q["reply"] == "query-exports"
    by_id = {x["id"]: x for x in q["return"]["exports"]}
    assert set(by_id) == {"one", "two"}
    assert by_id["one"]["source"] == img1 and by_id["one"]["mountpoint"] == mnt1
    assert by_id["one"]["type"] == "export" and by_id["one"]["state"] == "running"
    assert by_id["one"]["options"]["writable"] is True and by_id["one"]["options"]["threads"] == 2
    assert by_id["two"]["options"]["cache"] == "none"
    one = d.request("query-exports", id="one")["return"]["exports"]
    assert [x["id"] for x in one] == ["one"]

    # safe: refused while the file is open, done once it is closed
    fd = os.open(mnt1, os.O_RDONLY)
    try:
        r = d.request("export-del", id="one", mode="safe")
        assert r["reply"] == "export-del" and error_class(r) == "Busy", r
        assert is_mounted(mnt1)
        assert os.pread(fd, 4096, 0) == read_all(img1)[:4096]
    finally:
        os.close(fd)
    r = safe_del_when_closed(d, "one")
    assert r.get("return", {}).get("id") == "one", r
    assert "requests=" in r["return"]["summary"]
    assert not is_mounted(mnt1)
    assert not os.path.exists(mnt1)                  # the daemon made it, the daemon removed it

    # hard: at once, with the file open; its user gets errors
    fd = os.open(mnt2, os.O_RDONLY)
    try:
        t0 = time.monotonic()
        r = d.request("export-del", id="two", mode="hard")
        assert "return" in r, r
        assert time.monotonic() - t0 < 10
        assert not is_mounted(mnt2)
        with pytest.raises(OSError):
            os.pread(fd, 4096, 0)
    finally:
        try:
            os.close(fd)                             # its FLUSH fails too (ENOTCONN)
        except OSError:
            pass
    assert os.path.isfile(mnt2)                      # it was there before: it stays
    assert d.request("query-exports")["return"]["exports"] == []
    assert d.stop() == 0


def test_bad_requests_leave_exports_serving(daemon, workdir, tmp_path_factory):
    d = daemon()
    img = make_image(workdir, "img.raw")
    mnt = os.path.join(workdir, "img.mnt")
    d.add("keep", img, mnt)
    expect = read_all(img)
    c = d.connect()

    def bad(raw, cls, command=None):
        c.send_raw(raw + b"\n")
        r = c.read()
        assert r.get("reply") == command, r
        assert error_class(r) == cls, r

    bad(b"{not json", "ProtocolError")
    bad(b"[1, 2]", "ProtocolError")
    bad(b'"export-add"', "ProtocolError")
    bad(b"\xff\xfe{}", "ProtocolError")
    # Not UTF-8 inside a string: the parser's message quotes those bytes,
    # and the reply must still be made (the fuzzer found it was not).
    bad(b'{"comnd":"\'@","\x7f\\\xd9\x91' + b"\x7f" * 13 + b'\x8ae}', "ProtocolError")
    bad(b'{"command": 5}', "ProtocolError")
    bad(b'{"command": "query-exports", "command": "export-del"}', "ProtocolError")
    bad(b'{"command": "query-exports", "extra": 1}', "ProtocolError", "query-exports")
    bad(b'{"command": "query-exports", "arguments": [1]}', "InvalidArgument", "query-exports")
    bad(b'{"command": "no-such-thing"}', "CommandNotFound", "no-such-thing")
    bad(b'{"command": "query-exports", "arguments": {"bogus": 1}}', "InvalidArgument", "query-exports")
    # a tag comes back with its reply
    c.send_raw(b'{"command": "nope", "tag": [7]}\n')
    assert c.read()["tag"] == [7]

    base = {"type": "export", "source": img}

    def add(cls, **args):
        a = dict(base, id="x", mountpoint=os.path.join(workdir, "x.mnt"))
        a.update(args)
        a = {k: v for k, v in a.items() if v is not None}
        r = c.request("export-add", **a)
        assert r["reply"] == "export-add"
        assert error_class(r) == cls, (args, r)
        return r

    add("InvalidArgument", id=None)
    add("InvalidArgument", id=5)
    add("InvalidArgument", id="")
    add("InvalidArgument", id="a/b")
    add("InvalidArgument", type=None)
    add("InvalidArgument", type="disk")
    add("InvalidArgument", type="passthrough")                 # x.mnt: no directory
    add("InvalidArgument", type="passthrough", source=workdir, mountpoint=workdir + "/adir2",
        writable=True)                                        # an export's option
    add("InvalidArgument", source="img.raw")                  # relative
    add("InvalidArgument", mountpoint="x.mnt")                # relative
    add("InvalidArgument", source=["/a"])
    add("InvalidArgument", writable="yes")
    add("InvalidArgument", writable=1)
    add("InvalidArgument", threads="many")
    add("InvalidArgument", threads=-1)
    add("InvalidArgument", threads=1.5)
    add("InvalidArgument", cache="sometimes")
    add("InvalidArgument", growable=True)                     # needs writable
    add("InvalidArgument", pidfile="/tmp/p")                  # a process option
    add("InvalidArgument", daemonize=True)
    add("InvalidArgument", nonsense=True)
    add("Exists", id="keep")                                  # the id is taken
    add("Exists", mountpoint=mnt)                             # so is the mountpoint
    os.mkdir(os.path.join(workdir, "adir"))
    os.mkdir(os.path.join(workdir, "adir2"))
    add("InvalidArgument", mountpoint=os.path.join(workdir, "adir"))
    os.mkfifo(os.path.join(workdir, "afifo"))
    add("InvalidArgument", mountpoint=os.path.join(workdir, "afifo"))
    open(os.path.join(workdir, "plain"), "wb").close()
    os.symlink(os.path.join(workdir, "plain"), os.path.join(workdir, "alink"))
    add("InvalidArgument", mountpoint=os.path.join(workdir, "alink"))
    add("Failed", source=os.path.join(workdir, "missing.raw"))
    assert not os.path.exists(os.path.join(workdir, "x.mnt"))  # nothing left by a failed add

    r = c.request("export-del", id="nope")
    assert error_class(r) == "NotFound"
    r = c.request("export-del", id="keep", mode="gently")
    assert error_class(r) == "InvalidArgument"
    r = c.request("export-del")
    assert error_class(r) == "InvalidArgument"

    # still serving, on the same connection and a new one
    assert c.request("query-exports")["return"]["exports"][0]["id"] == "keep"
    assert_same(read_all(mnt), expect, "the export after bad requests")
    c.close()

    # a client that hangs up mid-message
    c = d.connect()
    c.send_raw(b'{"command": "export-add", "arguments": {"id": "half')
    c.close()
    # a message longer than the daemon takes: an error, then the door
    c = d.connect()
    c.send_raw(b'{"command": "query-exports", "tag": "' + b"a" * (70 * 1024))
    r = c.read()
    assert error_class(r) == "ProtocolError"
    with pytest.raises((ConnectionError, OSError)):
        c.read()
    c.close()
    # many connections at once, some never speaking
    idle = [d.connect() for _ in range(8)]
    assert d.request("query-exports")["return"]["exports"][0]["state"] == "running"
    for x in idle:
        x.close()
    # random bytes and mangled requests, one line each: an error for each
    # (or, for the odd mutation that is still valid, an export, removed again)
    rnd = random.Random(19)
    good = json.dumps({"command": "export-add", "arguments": {
        "id": "r", "type": "export", "source": img, "mountpoint": mnt, "threads": 1}}).encode()
    c = d.connect()
    for i in range(300):
        if i % 2:
            line = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
        else:
            line = bytearray(good)
            for _ in range(rnd.randrange(1, 6)):
                line[rnd.randrange(len(line))] = rnd.randrange(256)
        line = bytes(line).replace(b"\n", b" ")
        if not line.strip(b" \t\r"):
            continue
        c.send_raw(line + b"\n")
        r = c.read()
        if "return" in r:                  # a mutation that is still a valid request
            assert c.request("export-del", id=r["return"]["id"], mode="hard").get("return"), r
        else:
            assert "error" in r, (line, r)
    c.close()
    assert_same(read_all(mnt), expect, "the export after bad clients")
    assert [x["id"] for x in d.request("query-exports")["return"]["exports"]] == ["keep"]
    assert d.proc.poll() is None


def test_passthrough_beside_an_export(daemon, workdir):
    d = daemon()
    src = os.path.join(workdir, "src")
    mnt = os.path.join(workdir, "pt")
    os.mkdir(src)
    os.mkdir(mnt)
    with open(os.path.join(src, "old"), "wb") as f:
        f.write(b"from before")
    img = make_image(workdir, "img.raw")
    emnt = os.path.join(workdir, "img.mnt")
    d.add("img", img, emnt)
    d.mountpoints.append(mnt)
    r = d.request("export-add", id="tree", type="passthrough", source=src, mountpoint=mnt,
                  cache="none", threads=1)
    assert r.get("reply") == "export-add" and "return" in r, r
    assert r["return"]["type"] == "passthrough" and r["return"]["mountpoint"] == mnt
    assert is_mounted(mnt)
    assert read_all(os.path.join(mnt, "old")) == b"from before"
    with open(os.path.join(mnt, "new"), "wb") as f:
        f.write(b"through the mount")
    assert read_all(os.path.join(src, "new")) == b"through the mount"
    assert sorted(os.listdir(mnt)) == ["new", "old"]
    assert_same(read_all(emnt), read_all(img), "the export beside it")
    fd = os.open(os.path.join(mnt, "old"), os.O_RDONLY)
    try:
        assert error_class(d.request("export-del", id="tree")) == "Busy"
    finally:
        os.close(fd)
    r = safe_del_when_closed(d, "tree")
    assert "return" in r, r
    assert not is_mounted(mnt) and os.path.isdir(mnt)
    assert [x["id"] for x in d.request("query-exports")["return"]["exports"]] == ["img"]


def test_add_and_remove_beside_io(daemon, workdir):
    """Exports come and go while another serves I/O without a pause: the
    one under I/O sees no error and loses no write."""
    d = daemon()
    img = make_image(workdir, "busy.raw", size=8 * MiB)
    mnt = os.path.join(workdir, "busy.mnt")
    d.add("busy", img, mnt, writable=True)
    stop = threading.Event()
    failures = []
    rounds = [0]

    def io():
        fd = os.open(mnt, os.O_RDWR)
        try:
            i = 0
            while not stop.is_set():
                off = (i * 69632) % (8 * MiB - 65536)
                data = pattern(65536, i)
                if os.pwrite(fd, data, off) != len(data) or os.pread(fd, len(data), off) != data:
                    failures.append(f"round {i}: data differs at {off}")
                    return
                i += 1
            rounds[0] = i
        except OSError as e:
            failures.append(f"I/O error on the busy export: {e}")
        finally:
            os.close(fd)

    t = threading.Thread(target=io)
    t.start()
    try:
        other = make_image(workdir, "other.raw")
        for n in range(6):
            m = os.path.join(workdir, f"other{n}.mnt")
            d.add(f"other{n}", other, m)
            assert_same(read_all(m), read_all(other), "an export added beside the busy one")
            r = d.request("export-del", id=f"other{n}", mode="hard" if n % 2 else "safe")
            assert "return" in r, r
    finally:
        stop.set()
        t.join(30)
    assert not failures, failures
    assert rounds[0] > 0
    r = d.request("export-del", id="busy")
    assert "return" in r and r["return"]["clean"], r


HOLDER = "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nprint('open', flush=True)\nsys.stdin.read()\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to uid 65534")
def test_unprivileged_daemon_safe_del(daemon, userdir):
    """A daemon run as a user mounts and unmounts through fusermount3; its
    safe removal is refused while the user holds the file open."""
    udir, img, mp, binary = userdir
    d = daemon(binary=binary, prefix=SETPRIV, env=USER_ENV, sockdir=udir)
    d.add("u", img, mp)
    assert is_mounted(mp)
    # root may not open a user's fuse mount without allow_other: the user holds it
    holder = subprocess.Popen(SETPRIV + ["/usr/bin/python3", "-c", HOLDER, mp], env=USER_ENV,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        r = d.request("export-del", id="u")
        assert error_class(r) == "Busy", r
        assert is_mounted(mp)
    finally:
        holder.stdin.close()
        holder.wait(10)
    r = safe_del_when_closed(d, "u")
    assert "return" in r, r
    assert not is_mounted(mp)


def test_ctl(daemon, workdir, cli):
    d = daemon()
    img = make_image(workdir, "img.raw")
    mnt = os.path.join(workdir, "ctl.mnt")
    d.mountpoints.append(mnt)
    r = cli(["ctl", d.sock_path, "export-add", "id=c1", "type=export", f"source={img}",
             f"mountpoint={mnt}", "writable=true", "threads=1", "kernel-passthrough=off"], timeout=30)
    assert r.rc == 0, r
    assert "id: c1" in r.stdout and "serving" in r.stdout
    assert is_mounted(mnt)
    r = cli(["ctl", d.sock_path, "query-exports"])
    assert r.rc == 0 and r.stdout.startswith("c1 running export "), r
    assert "writable=true" in r.stdout and "threads=1" in r.stdout
    r = cli(["ctl", "--json", d.sock_path, "query-exports"])
    assert r.rc == 0, r
    reply = json.loads(r.stdout)
    assert reply["reply"] == "query-exports"
    assert reply["return"]["exports"][0]["options"]["threads"] == 1   # sent as a number
    r = cli(["ctl", d.sock_path, "export-add", "id=c1", "type=export", f"source={img}",
             f"mountpoint={mnt}"])
    assert r.rc == 1 and "Exists" in r.stderr, r
    r = cli(["ctl", "--json", d.sock_path, "export-del", "id=nope"])
    assert r.rc == 1 and json.loads(r.stdout)["error"]["class"] == "NotFound", r
    r = cli(["ctl", d.sock_path, "export-del", "noequals"])
    assert r.rc == 2, r
    r = cli(["ctl", d.sock_path])
    assert r.rc == 2, r
    r = cli(["ctl", os.path.join(workdir, "no.sock"), "query-exports"])
    assert r.rc == 1, r
    r = cli(["ctl", d.sock_path, "export-del", "id=c1", "mode=hard"], timeout=30)
    assert r.rc == 0, r
    assert not is_mounted(mnt)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_other_users_refused(daemon, workdir):
    d = daemon()
    os.chmod(workdir, 0o755)
    probe = ("import socket,sys\n"
             "s=socket.socket(socket.AF_UNIX)\n"
             "try:\n"
             "    s.connect(sys.argv[1])\n"
             "except OSError as e:\n"
             "    print('refused', e.errno); sys.exit(0)\n"
             "print(s.makefile().readline().strip())\n")
    run = lambda: subprocess.run(["/usr/bin/python3", "-c", probe, d.sock_path], user=65534, group=65534,
                                 extra_groups=[], capture_output=True, text=True, timeout=10)
    out = run()
    assert out.stdout.startswith("refused"), out          # mode 0600
    os.chmod(d.sock_path, 0o666)                          # loosened by hand: credentials still checked
    out = run()
    reply = json.loads(out.stdout)
    assert reply["error"]["class"] == "PermissionDenied", out
    assert d.request("query-exports")["return"]["exports"] == []


def test_outside_unmount_and_stop(daemon, workdir):
    d = daemon()
    imgs = [make_image(workdir, f"i{i}.raw", seed=i) for i in range(3)]
    mnts = [os.path.join(workdir, f"m{i}") for i in range(3)]
    for i in range(3):
        d.add(f"e{i}", imgs[i], mnts[i])
    # someone unmounts one: the daemon notices and forgets it
    subprocess.run(["umount", mnts[0]], check=True, timeout=10)
    wait_for(lambda: [x["id"] for x in d.request("query-exports")["return"]["exports"]] == ["e1", "e2"],
             10, what="the daemon to drop an export unmounted from outside")
    assert_same(read_all(mnts[1]), read_all(imgs[1]), "a neighbour of the unmounted export")
    # SIGTERM: every export removed, the socket too, exit 0
    assert d.stop() == 0
    for m in mnts:
        assert not is_mounted(m)
    assert not os.path.exists(d.sock_path)
    err = d.stderr()
    assert "[e1] summary " in err and "[e2] summary " in err


def test_stale_socket_replaced_live_one_refused(daemon, furing_bin, workdir):
    d = daemon()
    # a second daemon on a live socket refuses to start
    p = subprocess.run([furing_bin, "daemon", "--control", d.sock_path], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 1 and "another daemon" in p.stderr, p
    d.proc.kill()
    d.proc.wait(5)
    assert os.path.exists(d.sock_path)                    # left behind by the killed daemon
    d2 = daemon()                                         # replaces it
    assert d2.request("query-exports")["return"]["exports"] == []
    p = subprocess.run([furing_bin, "daemon"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2, p


# ------------------------------------------------ --config, reload, systemd

def write_config(path, entries):
    """The file atomically replaced: a reload never sees half of it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"exports": entries}, f, indent=2)
    os.rename(tmp, path)


def export_entry(id, source, mountpoint, **options):
    options.setdefault("kernel-passthrough", "off")
    return {"id": id, "type": "export", "source": source, "mountpoint": mountpoint, **options}


def listed(d):
    r = d.request("query-exports")
    return {x["id"]: x for x in r["return"]["exports"]}


class Reader(threading.Thread):
    """Reads a served file over and over through one open descriptor, as a
    client that must not notice a reload of other exports."""

    def __init__(self, path, expected):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY)
        self.expected = expected
        self.stop = threading.Event()
        self.rounds = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                data = os.pread(self.fd, len(self.expected), 0)
                if data != self.expected:
                    raise AssertionError(f"round {self.rounds}: read {len(data)} bytes that differ")
                self.rounds += 1
        except Exception as e:  # noqa: BLE001 (reported by finish)
            self.error = e

    def finish(self):
        self.stop.set()
        self.join(10)
        os.close(self.fd)
        assert not self.is_alive(), "the reader hung"
        assert self.error is None, f"I/O on the unchanged export failed: {self.error!r}"
        return self.rounds


def test_config_start_reload(daemon, workdir):
    imgs = {n: make_image(workdir, f"{n}.raw", seed=i + 1) for i, n in enumerate("abc")}
    mnts = {n: os.path.join(workdir, f"{n}.img") for n in "abc"}
    conf = os.path.join(workdir, "daemon.json")
    write_config(conf, [export_entry("a", imgs["a"], mnts["a"]), export_entry("b", imgs["b"], mnts["b"])])
    d = daemon(args=("--config", conf))
    d.mountpoints += mnts.values()
    assert set(listed(d)) == {"a", "b"}
    for n in "ab":
        assert is_mounted(mnts[n])
        assert_same(read_all(mnts[n]), read_all(imgs[n]), f"export {n}")

    reader = Reader(mnts["a"], read_all(imgs["a"]))
    reader.start()
    wait_for(lambda: reader.rounds >= 2 or reader.error, 10, what="the reader's first reads")
    # b goes, c comes, a stays: the reload command.
    write_config(conf, [export_entry("a", imgs["a"], mnts["a"]), export_entry("c", imgs["c"], mnts["c"])])
    r = d.request("reload")
    assert r.get("return") == {"config": conf, "added": ["c"], "removed": ["b"], "replaced": [],
                               "unchanged": ["a"]}, r
    assert set(listed(d)) == {"a", "c"}
    assert not is_mounted(mnts["b"]) and not os.path.exists(mnts["b"])
    assert_same(read_all(mnts["c"]), read_all(imgs["c"]), "export c")

    # c's arguments change: SIGHUP replaces it (removed, started again).
    write_config(conf, [export_entry("a", imgs["a"], mnts["a"]), export_entry("c", imgs["c"], mnts["c"],
                                                                             writable=True)])
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: listed(d)["c"]["options"].get("writable") is True, 10, what="c replaced by SIGHUP")
    assert "reload: export 'c' started again" in d.stderr()
    with open(mnts["c"], "r+b") as f:
        f.write(b"written")
    assert read_all(imgs["c"])[:7] == b"written"

    rounds_before = reader.rounds
    wait_for(lambda: reader.rounds > rounds_before or reader.error, 10, what="reads after the reloads")
    reader.finish()
    assert "[a] removed" not in d.stderr(), "the unchanged export was touched"
    assert d.stop() == 0
    for m in mnts.values():
        assert not is_mounted(m)


@pytest.mark.parametrize("case", ["syntax", "unknown-arg", "duplicate-id", "relative", "not-an-object"])
def test_config_bad_file_at_start(furing_bin, workdir, case):
    img = make_image(workdir, "a.raw")
    good = export_entry("a", img, os.path.join(workdir, "a.img"))
    other = export_entry("b", img, os.path.join(workdir, "b.img"))
    conf = os.path.join(workdir, "daemon.json")
    if case == "syntax":
        with open(conf, "w") as f:
            f.write('{"exports": [\n  {"id": "a",}\n]}\n')
        expect = "line 2"
    else:
        bad = {"unknown-arg": dict(other, writeable=True),
               "duplicate-id": dict(other, id="a"),
               "relative": dict(other, source="a.raw"),
               "not-an-object": "b"}[case]
        write_config(conf, [good, bad])
        expect = "exports[1]"
    sock = os.path.join(workdir, "control.sock")
    r = subprocess.run([furing_bin, "daemon", "--control", sock, "--config", conf],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and conf in lines[0] and expect in lines[0], r.stderr
    assert not os.path.exists(sock), "the daemon went on after a bad file"
    assert not is_mounted(os.path.join(workdir, "a.img"))


def test_config_export_fails_at_start(furing_bin, workdir):
    img = make_image(workdir, "a.raw")
    mnt = os.path.join(workdir, "a.img")
    conf = os.path.join(workdir, "daemon.json")
    write_config(conf, [export_entry("a", img, mnt),
                        export_entry("b", os.path.join(workdir, "missing.raw"), os.path.join(workdir, "b.img"))])
    sock = os.path.join(workdir, "control.sock")
    try:
        r = subprocess.run([furing_bin, "daemon", "--control", sock, "--config", conf],
                           capture_output=True, text=True, timeout=30)
    finally:
        lazy_umount_all(mnt)
    assert r.returncode == 1, r
    assert f"config {conf}: exports[1] (id 'b'): cannot start" in r.stderr, r.stderr
    assert not is_mounted(mnt) and not os.path.exists(mnt) and not os.path.exists(sock)


def test_config_bad_file_at_reload(daemon, workdir):
    img = make_image(workdir, "a.raw")
    mnt = os.path.join(workdir, "a.img")
    conf = os.path.join(workdir, "daemon.json")
    write_config(conf, [export_entry("a", img, mnt)])
    d = daemon(args=("--config", conf))
    d.mountpoints.append(mnt)
    before = listed(d)
    # A new entry that is fine next to one that is not: neither happens.
    write_config(conf, [export_entry("b", img, os.path.join(workdir, "b.img")),
                        export_entry("c", img, os.path.join(workdir, "c.img"), threads="many")])
    r = d.request("reload")
    assert error_class(r) == "InvalidArgument" and r["reply"] == "reload", r
    assert "exports[1] (id 'c')" in r["error"]["desc"] and "nothing changed" in r["error"]["desc"], r
    with open(conf, "w") as f:
        f.write("{")
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.stderr().count("nothing changed") >= 2, 10, what="the SIGHUP's error line")
    line = [x for x in d.stderr().splitlines() if "nothing changed" in x][-1]
    assert line.startswith(f"furing: reload: config {conf}: line 1"), line
    assert listed(d) == before
    assert_same(read_all(mnt), read_all(img), "export a")
    assert not os.path.exists(os.path.join(workdir, "b.img"))


def test_reload_without_config(daemon):
    d = daemon()
    assert error_class(d.request("reload")) == "Unsupported"
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP ignored" in d.stderr(), 10, what="the SIGHUP's line")
    assert d.stop() == 0


class NotifySocket:
    """What systemd listens on for a Type=notify service."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout=READY_TIMEOUT):
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def close(self):
        self.sock.close()


def test_ready_notification(daemon, furing_bin, workdir):
    img = make_image(workdir, "a.raw", size=16 * MiB)
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    with open(os.path.join(src, "f"), "wb") as f:
        f.write(b"in the tree")
    mnts = [os.path.join(workdir, "a.img"), os.path.join(workdir, "tree")]
    os.mkdir(mnts[1])
    conf = os.path.join(workdir, "daemon.json")
    # An export and a passthrough mount, two threads each: a start that
    # takes a moment.
    write_config(conf, [export_entry("a", img, mnts[0], threads=2),
                        {"id": "tree", "type": "passthrough", "source": src, "mountpoint": mnts[1],
                         "threads": 2}])
    ns = NotifySocket(os.path.join(workdir, "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=ns.path)
    try:
        d = daemon(args=("--config", conf), env=env, wait=False)
        d.mountpoints += mnts
        msg = ns.next()
        # The first word the daemon says is READY, and by then both serve.
        assert msg.get("READY") == "1", msg
        for mnt in mnts:
            assert is_mounted(mnt), f"READY=1 before {mnt} was mounted"
        assert_same(read_all(mnts[0]), read_all(img), mnts[0])
        assert read_all(os.path.join(mnts[1], "f")) == b"in the tree"
        d.wait_ready()
        r = subprocess.run([furing_bin, "ctl", d.sock_path, "reload"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r
        assert ns.next().get("RELOADING") == "1"
        assert ns.next().get("READY") == "1"
        # systemctl stop: SIGTERM, every mount gone, status 0.
        assert d.stop() == 0
        assert ns.next().get("STOPPING") == "1"
        for mnt in mnts:
            assert not is_mounted(mnt)
    finally:
        ns.close()


def test_systemd_units_verify(furing_bin, workdir):
    """The units meson configures, checked by systemd-analyze verify with
    the built binary in place of the installed one and the repository's
    pages on MANPATH (verify checks Documentation= and the executables)."""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze is not installed (Debian: systemd; scripts/setup.sh installs it)",
                    pytrace=False)
    unitdir = os.path.join(os.path.dirname(furing_bin), "systemd")
    units = sorted(f for f in os.listdir(unitdir) if f.endswith(".service"))
    assert units == ["furing-daemon.service", "furing-daemon@.service"], units
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    man = os.path.join(workdir, "man")
    for section, page in (("1", "furing.1"), ("5", "furing-daemon.conf.5")):
        os.makedirs(os.path.join(man, "man" + section), exist_ok=True)
        shutil.copy(os.path.join(repo, "doc", "man", page), os.path.join(man, "man" + section))
    paths = []
    for u in units:
        with open(os.path.join(unitdir, u)) as f:
            text = f.read()
        assert "Type=notify" in text and "ExecReload=" in text and "@bindir@" not in text
        text = re.sub(r"^(Exec\w+=)\S+/furing ", lambda m: m.group(1) + furing_bin + " ", text, flags=re.M)
        paths.append(os.path.join(workdir, u))
        with open(paths[-1], "w") as f:
            f.write(text)
    r = subprocess.run([analyze, "verify", *paths], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MANPATH=man))
    assert r.returncode == 0 and not r.stderr.strip(), r


def test_reload_busy_and_socket_exports(daemon, workdir):
    """A reload removes `safe`: an open export stays until a later reload
    finds it closed. Exports added over the socket are not the file's: a
    reload leaves them, and a file taking their id or mountpoint is invalid."""
    img_a, img_b, img_s = (make_image(workdir, f"{n}.raw", seed=i) for i, n in enumerate("abs"))
    mnt_a, mnt_b, mnt_s = (os.path.join(workdir, f"{n}.img") for n in "abs")
    conf = os.path.join(workdir, "daemon.json")
    write_config(conf, [export_entry("a", img_a, mnt_a), export_entry("b", img_b, mnt_b)])
    d = daemon(args=("--config", conf))
    d.add("s", img_s, mnt_s)
    d.mountpoints += [mnt_a, mnt_b]

    for bad, what in ((export_entry("s", img_a, os.path.join(workdir, "x.img")), "the id is an export added"),
                      (export_entry("x", img_a, mnt_s), "served by export 's'")):
        write_config(conf, [export_entry("a", img_a, mnt_a), export_entry("b", img_b, mnt_b), bad])
        r = d.request("reload")
        assert error_class(r) == "InvalidArgument" and what in r["error"]["desc"], r
        assert set(listed(d)) == {"a", "b", "s"}

    write_config(conf, [export_entry("a", img_a, mnt_a)])
    with open(mnt_b, "rb") as held:
        r = d.request("reload")
        assert error_class(r) == "Failed" and "export 'b' not removed" in r["error"]["desc"], r
        assert set(listed(d)) == {"a", "b", "s"}
        assert_same(held.read(), read_all(img_b), "the busy export's file")
    r = safe_reload(d)
    assert r["return"]["removed"] == ["b"] and r["return"]["unchanged"] == ["a"], r
    assert set(listed(d)) == {"a", "s"}, "the socket's export is not the file's to remove"
    assert_same(read_all(mnt_s), read_all(img_s), "export s")


def safe_reload(d, timeout=5.0):
    """As safe_del_when_closed: the kernel lets go of a closed file at once,
    but allow a moment."""
    deadline = time.monotonic() + timeout
    while True:
        r = d.request("reload")
        if "return" in r or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


# ---------------------------------------------------------------- statistics and events

BLOCK = 4096


def stats_of(d, id):
    r = d.request("query-stats", id=id)
    assert r.get("reply") == "query-stats" and "return" in r, r
    (x,) = r["return"]["exports"]
    assert x["id"] == id
    return x


def direct_io(mnt, reads, writes):
    """@reads blocks read and @writes written, one request each: cache=none
    exports open with direct I/O, so none is served from the page cache."""
    fd = os.open(mnt, os.O_RDWR if writes else os.O_RDONLY)
    try:
        for i in range(reads):
            assert len(os.pread(fd, BLOCK, i * BLOCK)) == BLOCK
        for i in range(writes):
            assert os.pwrite(fd, pattern(BLOCK, i), i * BLOCK) == BLOCK
    finally:
        os.close(fd)


def test_query_stats_count_io(daemon, workdir, uring_state):
    d = daemon()
    ring = "on" if uring_state == "Y" else "auto"
    d.add("r", make_image(workdir, "r.raw", seed=3), os.path.join(workdir, "r.img"), writable=True,
          cache="none", **{"io-uring": ring})
    d.add("v", make_image(workdir, "v.raw", seed=4), os.path.join(workdir, "v.img"), cache="none",
          **{"io-uring": "off"})
    counters = ("requests", "errors", "bytes-read", "bytes-written", "dev-requests", "ring-requests",
                "busy-polls", "busy-poll-hits", "placement-changes")
    before = stats_of(d, "r")
    assert all(isinstance(before[k], int) and before[k] >= 0 for k in counters), before
    assert before["state"] == "running" and before["type"] == "export" and before["backend"] == "ok"
    assert before["summary"].startswith("requests=")
    n, m = 64, 16
    direct_io(os.path.join(workdir, "r.img"), n, m)
    after = stats_of(d, "r")
    assert after["requests"] >= before["requests"] + n + m, (before, after)
    assert after["bytes-read"] >= before["bytes-read"] + n * BLOCK, (before, after)
    assert after["bytes-written"] >= before["bytes-written"] + m * BLOCK, (before, after)
    assert after["requests"] == after["dev-requests"] + after["ring-requests"]
    assert all(after[k] >= before[k] for k in counters), (before, after)   # counters only grow
    if uring_state == "Y":
        assert after["ring-requests"] >= before["ring-requests"] + n + m
        assert [q["queue"] for q in after["queues"]] == list(range(len(after["queues"])))
        assert len(after["queues"]) >= 1
        grown = sum(q["requests"] for q in after["queues"]) - sum(q["requests"] for q in before["queues"])
        assert grown >= n + m, (before["queues"], after["queues"])

    # the /dev/fuse export: counted apart, and no queues
    v0 = stats_of(d, "v")
    direct_io(os.path.join(workdir, "v.img"), n, 0)
    v1 = stats_of(d, "v")
    assert v1["dev-requests"] >= v0["dev-requests"] + n and v1["ring-requests"] == 0, (v0, v1)
    assert v1["queues"] == []
    # "r" did nothing meanwhile
    assert stats_of(d, "r")["bytes-read"] == after["bytes-read"]

    every = d.request("query-stats")["return"]["exports"]
    assert [x["id"] for x in every] == ["r", "v"]
    assert error_class(d.request("query-stats", id="nope")) == "NotFound"
    assert error_class(d.request("query-stats", bogus=1)) == "InvalidArgument"
    assert d.stop() == 0


PROM_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
PROM_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_prometheus(text):
    """The text exposition format, strictly enough to catch a scraper's
    complaints: {family: {"type", "help", "samples": [(labels, value)]}}.
    A family's HELP and TYPE come once, before its samples, which are
    contiguous; every sample belongs to a declared family."""
    assert text.endswith("\n"), "the last line ends with a newline"
    families, order, current = {}, [], None
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], *line[7:].split(" ", 1)
            f = families.setdefault(name, {"samples": []})
            assert kind.lower() not in f, f"two {kind} lines for {name}"
            assert not f["samples"], f"{kind} of {name} after its samples"
            f[kind.lower()] = rest
            if name not in order:
                order.append(name)
            current = name
            continue
        assert line and not line.startswith("#"), f"unexpected line {line!r}"
        m = PROM_SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels_text, value = m.groups()
        assert name == current, f"sample {name} outside its family's block (in {current})"
        labels, pos = {}, 0
        while labels_text and pos < len(labels_text):
            lm = PROM_LABEL.match(labels_text, pos)
            assert lm, f"bad labels in {line!r}"
            assert lm.group(1) not in labels, f"label {lm.group(1)} twice in {line!r}"
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        families[name]["samples"].append((labels, float(value)))
    for name, f in families.items():
        assert f.get("type") in ("counter", "gauge", "untyped"), (name, f)
        assert "help" in f, name
        if f["type"] == "counter":
            assert name.endswith("_total"), name
            assert all(v >= 0 for _, v in f["samples"]), name
    return families


def metric(families, name, **labels):
    hits = [v for l, v in families[name]["samples"] if all(l.get(k) == w for k, w in labels.items())]
    assert len(hits) == 1, (name, labels, families[name]["samples"])
    return hits[0]


def test_metrics_prometheus(daemon, workdir, uring_state, cli):
    d = daemon()
    ring = "on" if uring_state == "Y" else "auto"
    for id in ("m1", "m2"):
        d.add(id, make_image(workdir, f"{id}.raw"), os.path.join(workdir, f"{id}.img"), writable=True,
              cache="none", **{"io-uring": ring})
    n = 32
    direct_io(os.path.join(workdir, "m1.img"), n, 8)
    r = d.request("metrics")
    assert r.get("reply") == "metrics" and isinstance(r["return"]["text"], str), r
    fam = parse_prometheus(r["return"]["text"])
    st = {x["id"]: x for x in d.request("query-stats")["return"]["exports"]}
    assert metric(fam, "furing_read_bytes_total", export="m1") >= n * BLOCK
    assert metric(fam, "furing_written_bytes_total", export="m1") >= 8 * BLOCK
    assert metric(fam, "furing_read_bytes_total", export="m2") <= st["m2"]["bytes-read"]
    for id in ("m1", "m2"):
        assert metric(fam, "furing_export_info", export=id, type="export", state="running") == 1
        total = metric(fam, "furing_requests_total", export=id, transport="dev") + \
            metric(fam, "furing_requests_total", export=id, transport="io_uring")
        assert total <= st[id]["requests"]                       # taken first: it cannot be ahead
        assert metric(fam, "furing_errors_total", export=id) == 0
        assert metric(fam, "furing_backend_up", export=id) == 1
    assert metric(fam, "furing_requests_total", export="m1", transport="dev") + \
        metric(fam, "furing_requests_total", export="m1", transport="io_uring") >= n + 8
    queues = [l for l, _ in fam["furing_queue_requests_total"]["samples"] if l["export"] == "m1"]
    assert [int(l["queue"]) for l in queues] == list(range(len(st["m1"]["queues"])))
    if uring_state == "Y":
        assert sum(v for l, v in fam["furing_queue_requests_total"]["samples"] if l["export"] == "m1") >= n + 8
    one = parse_prometheus(d.request("metrics", id="m2")["return"]["text"])
    assert {l["export"] for f in one.values() for l, _ in f["samples"]} == {"m2"}
    assert error_class(d.request("metrics", id="nope")) == "NotFound"

    # furing ctl prints the text itself, not a JSON string
    out = cli(["ctl", d.sock_path, "metrics"])
    assert out.rc == 0, out
    assert out.stdout.startswith("# HELP "), out.stdout[:200]
    assert metric(parse_prometheus(out.stdout), "furing_read_bytes_total", export="m1") >= n * BLOCK
    out = cli(["ctl", d.sock_path, "query-stats", "id=m1"])
    assert out.rc == 0 and out.stdout.startswith("m1 requests="), out
    assert d.stop() == 0


def test_event_when_unmounted_from_outside(daemon, workdir):
    d = daemon()
    listeners = [d.connect(), d.connect()]
    caps = listeners[0].greeting["greeting"]["capabilities"]
    assert {"export-deleted", "backend-failed", "backend-recovered"} <= set(caps["events"])
    assert {"query-stats", "metrics"} <= set(caps["commands"])
    mnts = {id: os.path.join(workdir, f"{id}.img") for id in ("gone", "deleted", "stays")}
    for id, mnt in mnts.items():
        d.add(id, make_image(workdir, f"{id}.raw"), mnt)
    try:
        # export-del is answered by its reply: no event for it
        assert "return" in d.request("export-del", id="deleted", mode="hard")
        t0 = time.time()
        subprocess.run(["umount", "-l", mnts["gone"]], check=True, timeout=10)
        for c in listeners:
            c.sock.settimeout(5)
            ev = c.read()                               # the first message since the greeting
            assert ev.get("event") == "export-deleted", ev
            assert ev["data"]["id"] == "gone" and ev["data"]["reason"] == "unmounted", ev
            assert ev["data"]["clean"] is True and ev["data"]["summary"].startswith("requests="), ev
            ts = ev["timestamp"]["seconds"] + ev["timestamp"]["microseconds"] / 1e6
            assert t0 - 1 <= ts <= time.time() + 1, ev
        # the listeners still talk, and the neighbour serves
        r = listeners[0].request("query-exports")
        assert [x["id"] for x in r["return"]["exports"]] == ["stays"], r
        assert_same(read_all(mnts["stays"]), read_all(os.path.join(workdir, "stays.raw")), "the neighbour")
    finally:
        for c in listeners:
            c.close()
    assert d.stop() == 0


def eio_now(fd):
    try:
        os.pread(fd, BLOCK, 0)
        return False
    except OSError as e:
        return e.errno == errno.EIO


def next_event(c, name):
    """The next event named @name on @c, skipping others; replies are not
    expected on a connection that only listens."""
    while True:
        msg = c.read()
        assert "event" in msg, f"not an event: {msg}"
        if msg["event"] == name:
            return msg


def test_backend_events_of_an_nbd_export(daemon, workdir):
    """The NBD server of an export dies: every client hears backend-failed,
    query-stats and metrics say the backend is unreachable; it comes back:
    backend-recovered."""
    d = daemon()
    servers = Servers(workdir)
    fd = None
    try:
        srv = servers.nbdkit("memory", 16 * MiB)
        mnt = os.path.join(workdir, "nbd.img")
        d.mountpoints.append(mnt)
        r = d.request("export-add", id="n", type="export", source=srv.uri, mountpoint=mnt, writable=True,
                      timeout=5, **{"kernel-passthrough": "off"})
        assert "return" in r, r
        assert stats_of(d, "n")["backend"] == "ok"
        listener = d.connect()
        listener.sock.settimeout(10)
        fd = os.open(mnt, os.O_RDWR)
        assert not eio_now(fd)

        srv.kill()
        wait_for(lambda: eio_now(fd), 10, interval=0.2, what="EIO once the server died")
        ev = next_event(listener, "backend-failed")
        assert ev["data"]["id"] == "n" and ev["data"]["desc"], ev
        assert stats_of(d, "n")["backend"] == "unreachable"
        fam = parse_prometheus(d.request("metrics", id="n")["return"]["text"])
        assert metric(fam, "furing_backend_up", export="n") == 0

        servers.restart(srv)
        wait_for(lambda: not eio_now(fd), 15, interval=0.2, what="the reconnect")
        ev = next_event(listener, "backend-recovered")
        assert ev["data"]["id"] == "n", ev
        assert stats_of(d, "n")["backend"] == "ok"
        listener.close()
    finally:
        if fd is not None:
            os.close(fd)
        servers.stop_all()
    r = d.request("export-del", id="n", mode="safe")
    assert "return" in r, r
