"""Bad input: exit codes (2 usage, 1 runtime), exactly one 'furing: ' error
line, no crash, no hang, nothing left mounted or created."""

import os

import pytest

from furing_helpers import (
    ALL_OPTIONS, MiB, URING_PARAM, assert_no_crash, assert_one_error_line, mounts_at, pattern, read_file,
)

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def paths(make_image, workdir):
    """An image and a mountpoint path that does not exist yet."""
    return make_image(MiB), os.path.join(workdir, "never.mnt")


def check_failed(r, rc, mp, what):
    assert_no_crash(r.rc, what)
    assert r.rc == rc, f"{what}: exit {r.rc}, expected {rc}; {r}"
    line = assert_one_error_line(r.stderr, what)
    assert not mounts_at(mp), f"{what}: something is mounted on {mp}"
    return line


def test_help_lists_every_option(cli):
    r = cli(["export", "--help"])
    assert r.rc == 0, r
    text = r.stdout + r.stderr
    missing = [o for o in ALL_OPTIONS if o not in text]
    assert not missing, f"--help does not mention {missing}:\n{text}"
    for v in ("auto", "on", "off"):
        assert v in text


def test_top_level_help(cli):
    r = cli(["--help"])
    assert r.rc == 0, r
    assert "export" in r.stdout + r.stderr


USAGE_ERRORS = {
    "no-args": lambda img, mp: [],
    "no-subcommand-args": lambda img, mp: ["export"],
    "missing-mountpoint": lambda img, mp: ["export", img],
    "too-many-args": lambda img, mp: ["export", img, mp, mp + "2"],
    "unknown-subcommand": lambda img, mp: ["frobnicate", img, mp],
    "unknown-option": lambda img, mp: ["export", "--bogus", img, mp],
    "threads-0": lambda img, mp: ["export", "--threads", "0", img, mp],
    "threads-abc": lambda img, mp: ["export", "--threads", "abc", img, mp],
    "threads-negative": lambda img, mp: ["export", "--threads=-2", img, mp],
    "threads-missing-value": lambda img, mp: ["export", img, mp, "--threads"],
    "io-uring-maybe": lambda img, mp: ["export", "--io-uring=maybe", img, mp],
    "queue-depth-abc": lambda img, mp: ["export", "--queue-depth", "abc", img, mp],
    "payload-size-abc": lambda img, mp: ["export", "--payload-size", "lots", img, mp],
    "growable-without-writable": lambda img, mp: ["export", "--growable", img, mp],
    "backend-io-fast": lambda img, mp: ["export", "--backend-io=fast", img, mp],
    "cache-maybe": lambda img, mp: ["export", "--cache=maybe", img, mp],
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_error(cli, paths, case):
    img, mp = paths
    r = cli(USAGE_ERRORS[case](img, mp), mountpoint=mp)
    check_failed(r, 2, mp, case)
    assert not os.path.exists(mp), f"{case}: mountpoint file was created and left behind"


# Numbers that wrap: a shift past 64 bits, or strtoul's negation of a '-'
# that hides behind leading white space. Each wrapped to an accepted value.
WRAPPING_NUMBERS = {
    "payload-size-M-wraps-to-1M": ("--payload-size", "4503599627370497M"),     # 2^52+1 MiB = 2^72+1 MiB
    "payload-size-K-wraps-to-8K": ("--payload-size", "18014398509481992K"),    # (2^54+8) KiB
    "payload-size-too-big": ("--payload-size", "18446744073709551616"),        # 2^64: ERANGE
    "payload-size-space-minus": ("--payload-size", " -17592186044415M"),       # wraps to 1 MiB
    "threads-space-minus": ("--threads", " -18446744073709551615"),            # wraps to 1
    "queue-depth-tab-minus": ("--queue-depth", "\t-18446744073709551615"),     # wraps to 1
    "queue-depth-too-big": ("--queue-depth", "18446744073709551617"),
}


@pytest.mark.parametrize("case", list(WRAPPING_NUMBERS))
def test_numeric_option_overflow(cli, paths, case):
    img, mp = paths
    opt, value = WRAPPING_NUMBERS[case]
    r = cli(["export", "--io-uring=off", opt, value, img, mp], mountpoint=mp)
    line = check_failed(r, 2, mp, case)
    assert opt in line, f"{case}: the error does not name {opt}: {line!r}"
    assert not os.path.exists(mp), f"{case}: mountpoint file was created and left behind"


def test_missing_image(cli, workdir):
    mp = os.path.join(workdir, "never.mnt")
    r = cli(["export", os.path.join(workdir, "nope.raw"), mp], mountpoint=mp)
    check_failed(r, 1, mp, "missing image")
    assert not os.path.exists(mp), "mountpoint file was created and left behind"


def test_image_is_directory(cli, workdir):
    d = os.path.join(workdir, "imgdir")
    os.mkdir(d)
    mp = os.path.join(workdir, "never.mnt")
    r = cli(["export", d, mp], mountpoint=mp)
    check_failed(r, 1, mp, "image is a directory")
    assert not os.path.exists(mp)


def test_image_is_char_device(cli, workdir):
    mp = os.path.join(workdir, "never.mnt")
    r = cli(["export", "/dev/null", mp], mountpoint=mp)
    check_failed(r, 1, mp, "image is /dev/null")
    assert not os.path.exists(mp)


def test_mountpoint_is_directory(cli, paths, workdir):
    img, _ = paths
    mp = os.path.join(workdir, "mpdir")
    os.mkdir(mp)
    r = cli(["export", img, mp], mountpoint=mp)
    check_failed(r, 1, mp, "mountpoint is a directory")
    assert os.path.isdir(mp)


def test_mountpoint_busy(furing, cli, make_image, transport):
    img = make_image(2 * MiB, "random", seed=40)
    other = make_image(MiB, name="other.raw")
    first = furing(img, writable=True)
    r = cli(["export", "--io-uring=off", other, first.mountpoint], mountpoint=first.mountpoint)
    assert_no_crash(r.rc, "busy")
    assert r.rc == 1, r
    assert_one_error_line(r.stderr, "mountpoint busy")
    assert len(mounts_at(first.mountpoint)) == 1, "a second mount was stacked on the first"
    # the first export is untouched and keeps serving
    assert first.running() and first.mounted()
    fd = first.open(os.O_RDWR)
    assert os.fstat(fd).st_size == 2 * MiB
    d = pattern(4096, 41)
    assert os.pwrite(fd, d, 4096) == 4096
    assert os.pread(fd, 4096, 4096) == d
    assert read_file(img)[4096:8192] == d
    res = first.stop()
    assert res.rc == 0, res.stderr


def _set_uring(value):
    with open(URING_PARAM, "w") as f:
        f.write(value)


@pytest.fixture
def uring_disabled(uring_state):
    """enable_uring=N for the duration of one test."""
    if os.geteuid() != 0 or uring_state is None:
        pytest.skip("needs root and the fuse enable_uring parameter")
    _set_uring("N")
    try:
        yield
    finally:
        _set_uring(uring_state)


def test_io_uring_on_refused_when_kernel_wont(cli, paths, uring_disabled):
    img, mp = paths
    r = cli(["export", "--io-uring=on", img, mp], mountpoint=mp)
    check_failed(r, 1, mp, "--io-uring=on with enable_uring=N")
    assert "echo Y > /sys/module/fuse/parameters/enable_uring" in r.stderr, r.stderr
    assert not os.path.exists(mp)


def test_io_uring_auto_falls_back_to_dev(furing_plain, image, uring_disabled):
    f = furing_plain(image, writable=True, transport_args=["--io-uring=auto"])
    fd = f.open(os.O_RDWR)
    assert os.pwrite(fd, b"x" * 4096, 0) == 4096
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["ring"] == 0 and r.summary["dev"] > 0, r.summary
    why = [l for l in r.stderr.splitlines() if "enable_uring" in l]
    assert len(why) == 1 and "serving over /dev/fuse" in why[0], r.stderr


def test_io_uring_auto_uses_ring_when_available(furing_plain, image, uring_state):
    if uring_state != "Y":
        pytest.skip("enable_uring is not Y")
    f = furing_plain(image, writable=True, transport_args=["--io-uring=auto"])
    fd = f.open(os.O_RDWR)
    assert os.pwrite(fd, b"x" * 4096, 0) == 4096
    assert os.pread(fd, 4096, 0) == b"x" * 4096
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["ring"] > 0, f"auto did not use the ring although it is enabled: {r.summary}"


def test_io_uring_on_refused_when_sysctl_disables_it(cli, paths, io_uring_sysctl_off):
    img, mp = paths
    r = cli(["export", "--io-uring=on", img, mp], mountpoint=mp)
    check_failed(r, 1, mp, "--io-uring=on with kernel.io_uring_disabled=2")
    assert "sysctl -w kernel.io_uring_disabled=0" in r.stderr, r.stderr


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_blocking_fallback_without_io_uring(furing_plain, make_image, io_uring_sysctl_off, mode):
    """Without io_uring at all the export still serves, over /dev/fuse with
    blocking reads, and says so in one line."""
    img = make_image(4 * 1024 * 1024, "random", seed=5)
    model = bytearray(read_file(img))
    f = furing_plain(img, writable=True, transport_args=[f"--io-uring={mode}"])
    fd = f.open(os.O_RDWR)
    for off, n in ((0, 4096), (123457, 70000), (4 * 1024 * 1024 - 100, 100)):
        data = os.urandom(n)
        assert os.pwrite(fd, data, off) == n
        model[off:off + n] = data
    assert os.pread(fd, len(model), 0) == bytes(model)
    os.fsync(fd)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert read_file(img) == bytes(model)
    assert r.summary["ring"] == 0 and r.summary["dev_ops"].get("WRITE", 0) >= 3, r.summary
    why = [l for l in r.stderr.splitlines() if "blocking reads" in l]
    assert len(why) == 1 and "io_uring_disabled=2" in why[0], r.stderr
