"""The daemon under valgrind memcheck, both transports: real I/O through the
mount, a clean stop, and no memory error or definite leak.

Uses the plain (unsanitized) build, since valgrind cannot run an ASan binary:
$FURING_PLAIN_BIN, or build/furing. The loop waits in poll(2) under valgrind
(FURING_LOOP_WAIT=poll: tools/cli.c sets furing_config.wait_with_poll from it,
doc/api.md)."""

import os
import shutil

import pytest

from furing_helpers import MiB, assert_same, pattern, read_file

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed"),
]

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--quiet"]


@pytest.fixture
def plain_bin():
    path = os.environ.get("FURING_PLAIN_BIN") or os.path.join(REPO, "build", "furing")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build it (scripts/build.sh)", pytrace=False)
    return path


def test_memcheck_clean(furing, make_image, plain_bin):
    img = make_image(8 * MiB)
    env = dict(os.environ, FURING_LOOP_WAIT="poll")
    env.pop("LD_PRELOAD", None)
    f = furing(img, writable=True, prefix=VALGRIND, binary=plain_bin, env=env, wait=False)
    f.wait_ready(60)
    model = bytearray(8 * MiB)
    with open(f.mountpoint, "r+b", buffering=0) as g:
        for i, (off, n) in enumerate(((0, 4096), (12345, 70000), (3 * MiB - 1, MiB + 2), (8 * MiB - 10, 10))):
            data = pattern(n, i)
            g.seek(off)
            assert g.write(data) == n
            model[off:off + n] = data
        g.seek(0)
        assert_same(g.read(), bytes(model), "read back under valgrind")
        os.fsync(g.fileno())
    assert_same(read_file(img), bytes(model), "image under valgrind")
    r = f.stop(timeout=60)
    assert r.rc == 0, f"valgrind reported errors or the daemon failed:\n{r.stderr[-4000:]}"
    assert r.summary["bytes_written"] >= 4096 + 70000 + MiB + 2 + 10, r.summary
