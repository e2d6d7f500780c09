"""Busy polling (furing_config.busy_poll_us, `--busy-poll`): workers spin
for their next request only while requests come fast, never when nothing
arrives, and the option turns it off. How much it saves is measured in
bench/, not here."""

import os
import time

import pytest

from furing_helpers import KiB

pytestmark = pytest.mark.timeout(60)


def cpu_ticks(pid):
    """utime + stime of every thread of @pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def one_at_a_time(f, n):
    fd = f.open(os.O_RDONLY)
    try:
        for i in range(n):
            assert len(os.pread(fd, 4 * KiB, (i % 64) * 4 * KiB)) == 4 * KiB
    finally:
        f.close(fd)


def test_no_cpu_when_idle(furing, make_image, transport):
    img = make_image(1024 * KiB, "random", seed=7)
    f = furing(img)
    one_at_a_time(f, 3000)
    time.sleep(0.3)  # the last spin (50 us at most) is long over
    before = cpu_ticks(f.pid)
    time.sleep(2.0)
    idle = cpu_ticks(f.pid) - before
    r = f.stop()
    assert r.rc == 0, r.stderr
    s = r.summary
    # Whether it spun depends on how fast this client is (timing is the
    # bench's business); what it did must add up.
    assert s["busy_poll_hits"] <= s["busy_polls"], s
    assert idle <= 1, f"an idle export used {idle} clock ticks of CPU in 2 s"


def test_busy_poll_off(furing, make_image, transport):
    img = make_image(1024 * KiB, "random", seed=8)
    f = furing(img, "--busy-poll=0")
    one_at_a_time(f, 500)
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary["busy_polls"] == 0, r.summary


def test_busy_poll_bad_values(cli, image, workdir):
    for bad in ("-1", "1000001", "x", ""):
        r = cli(["export", f"--busy-poll={bad}", image, os.path.join(workdir, "mp")])
        assert r.rc == 2, (bad, r.stderr)
        assert "--busy-poll" in r.stderr, r.stderr
