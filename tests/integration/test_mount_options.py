"""What the library writes into mount options: names chosen by a filesystem
(fsname, subtype) and furing_config.mount_options. Hostile names must
either mount intact (as /proc/self/mountinfo shows them) or be refused with a
clear error, never become options; both on the direct mount(2) path (root)
and through fusermount3 (uid 65534). Driven through tests/lib/probefs.c."""

import os
import shutil
import subprocess
import time

import pytest

from furing_helpers import _unescape, mounts_at, terminate_and_unmount
from test_library import build_dir
from test_unprivileged import SETPRIV, UID, GID, USER_ENV, dev_fuse_for_users  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (and uid 65534 for the fusermount3 path)"),
]

PROBEFS = os.path.join(build_dir(), "tests", "lib", "probefs")


class Server:
    def __init__(self, args, mountpoint, stderr_path, prefix=(), env=None):
        self.mountpoint = mountpoint
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen(list(prefix) + [PROBEFS] + list(args) + [mountpoint],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         env=env, start_new_session=True)

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def mounted_or_exited(self, timeout=10):
        """The mount once it is there, or None when probefs exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = mounts_at(self.mountpoint)
            if m:
                return m[-1]
            if self.proc.poll() is not None:
                return None
            time.sleep(0.02)
        raise AssertionError(f"probefs neither mounted nor exited:\n{self.stderr()}")

    def stop(self):
        terminate_and_unmount(self.proc, self.mountpoint)


@pytest.fixture
def start(workdir):
    servers = []

    def run(*args, user=False):
        n = len(servers)
        mp = os.path.join(workdir, f"mnt{n}")
        os.mkdir(mp)
        prefix, env = (), None
        if user:
            os.chmod(workdir, 0o755)
            os.chown(mp, UID, GID)
            prefix, env = SETPRIV, USER_ENV
        s = Server(["--io-uring=off", "--no-signals"] + list(args), mp, os.path.join(workdir, f"probefs{n}.stderr"),
                   prefix, env)
        servers.append(s)
        return s

    yield run
    for s in servers:
        s.stop()


@pytest.fixture(params=["root", "user"])
def path(request):
    """The direct mount(2) path, or fusermount3's as uid 65534."""
    if request.param == "user":
        if shutil.which("fusermount3") is None:
            pytest.skip("fusermount3 missing")
        request.getfixturevalue("dev_fuse_for_users")
    return request.param


HOSTILE_FSNAMES = ["a,suid.tar", "x,allow_other", "back\\slash", "a\\,b", "ends\\", "a=b c", "new\nline", "tab\there",
                   ",", "\\"]
HOSTILE_SUBTYPES = ["s,t", "u\\v", "a=b c", "x,rootmode=40000", "dot.ted"]


def check_not_injected(m, user):
    opts, sup = m.mount_opts.split(","), m.super_opts.split(",")
    assert "nosuid" in opts and "nodev" in opts and "suid" not in opts, m
    assert "allow_other" not in sup, m
    assert [o for o in sup if o.startswith("rootmode=")] in ([], ["rootmode=40000"]), m
    assert f"user_id={UID if user else 0}" in sup, m


@pytest.mark.parametrize("fsname", HOSTILE_FSNAMES)
def test_hostile_fsname_mounts_intact(start, path, fsname):
    s = start("--fsname", fsname, "--subtype", "probefs", user=path == "user")
    m = s.mounted_or_exited()
    assert m is not None, f"probefs refused fsname {fsname!r}:\n{s.stderr()}"
    assert m.source == fsname, m
    assert m.fstype == "fuse.probefs", m
    check_not_injected(m, path == "user")
    if path == "root":  # it serves (the user's mount is closed to root without allow_other)
        assert "data" in os.listdir(s.mountpoint)


@pytest.mark.parametrize("subtype", HOSTILE_SUBTYPES)
def test_hostile_subtype_mounts_intact(start, path, subtype):
    s = start("--fsname", "probe", "--subtype", subtype, user=path == "user")
    m = s.mounted_or_exited()
    assert m is not None, f"probefs refused subtype {subtype!r}:\n{s.stderr()}"
    assert _unescape(m.fstype) == "fuse." + subtype, m  # mountinfo escapes the type too
    assert m.source == "probe", m
    check_not_injected(m, path == "user")


@pytest.mark.parametrize("field,value,message", [
    ("--fsname", "", "fsname is empty"),
    ("--subtype", "", "subtype is empty"),
    ("--subtype", "s" * 256, "subtype is longer than 255 bytes"),
    ("--fsname", "f" * 4096, "fsname is longer than 4095 bytes"),
], ids=["empty-fsname", "empty-subtype", "long-subtype", "long-fsname"])
def test_unmountable_names_refused(start, field, value, message):
    s = start(field, value)
    assert s.mounted_or_exited() is None, f"mounted with {field} {value[:20]!r}..."
    assert s.proc.wait(10) == 1
    assert message in s.stderr(), s.stderr()
    assert not mounts_at(s.mountpoint)


# ------------------------------------------------- furing_config.mount_options

def test_mount_options_reach_the_mount(start, path):
    s = start("--fsname", "cfg-name", "--mount-options",
              "noexec,nosuid,nodev,noatime,max_read=65536,fsname=opt name=1,subtype=optfs", user=path == "user")
    m = s.mounted_or_exited()
    assert m is not None, s.stderr()
    opts, sup = m.mount_opts.split(","), m.super_opts.split(",")
    for o in ("noexec", "nosuid", "nodev", "noatime"):
        assert o in opts, m
    assert "max_read=65536" in sup, m
    assert m.source == "opt name=1" and m.fstype == "fuse.optfs", m  # the options win over the fields
    check_not_injected(m, path == "user")


def test_no_mount_options_no_extra_flags(start):
    s = start("--mount-options", "nodev")
    m = s.mounted_or_exited()
    assert m is not None, s.stderr()
    opts = m.mount_opts.split(",")
    assert "noexec" not in opts and "noatime" not in opts, m
    assert "max_read=1048576" in m.super_opts.split(","), m  # the payload size, the default


REFUSED = [
    ("suid", "unknown option 'suid'"),
    ("exec", "unknown option 'exec'"),
    ("allow_other", "unknown option 'allow_other'"),
    ("noexec,rootmode=40777", "unknown option 'rootmode=40777'"),
    ("user_id=0", "unknown option 'user_id=0'"),
    ("fd=0", "unknown option 'fd=0'"),
    ("blksize=4096", "blksize= applies only to fuseblk"),
    ("max_read=abc", "max_read=abc is not a number"),
    ("max_read=100", "outside 4096..1048576"),
    ("max_read=4194304", "outside 4096..1048576"),
    ("max_read=-1", "max_read=-1 is not a number"),
    ("fsname=a\\,suid", "a backslash is not allowed"),
    ("subtype=", "subtype= is empty"),
    ("fsname=", "fsname= is empty"),
    ("context=a\"b", "is not allowed in a context"),
    ("context=a b", "is not allowed in a context"),
    ("noexec,", "empty option"),
    (",noexec", "empty option"),
    ("noexec,,noatime", "empty option"),
]


@pytest.mark.parametrize("options,message", REFUSED, ids=[o for o, _ in REFUSED])
def test_hostile_mount_options_refused(start, options, message):
    s = start("--mount-options", options)
    assert s.mounted_or_exited() is None, f"mounted with mount_options {options!r}"
    assert s.proc.wait(10) == 1
    err = s.stderr()
    assert "mount_options: " in err and message in err, err
    assert not mounts_at(s.mountpoint)


def test_context_needs_root_and_a_security_module(start, path):
    """context= goes to the kernel on the direct path: it is in mountinfo
    when a security module took it, else the start fails saying why.
    fusermount3 (3.14) does not pass it on: refused before it runs."""
    s = start("--mount-options", "context=system_u:object_r:tmp_t:s0", user=path == "user")
    m = s.mounted_or_exited()
    if path == "user":
        assert m is None and "context= needs root" in s.stderr(), s.stderr()
    elif m is None:
        assert "(context= needs a security module such as SELinux)" in s.stderr(), s.stderr()
        assert not os.path.exists("/sys/fs/selinux"), "refused with SELinux present"
    else:
        assert "context=system_u:object_r:tmp_t:s0" in m.super_opts or "context=" in m.mount_opts, m
