"""Every operation through `furing passthrough` against the same operation
on SOURCE's own filesystem: pt_ops.py runs the same script on the mount and
on a plain copy of the starting tree, by the same user, and every result
and errno must agree; then SOURCE must hold what the copy holds, and the
mount must show SOURCE. As root and as a second, unprivileged user (uid
65534: files it creates must be its own, or the setgid directory's group;
what SOURCE refuses it, the mount refuses), over both transports, in each
cache mode and with kernel passthrough."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import pt_ops
from pt_fixtures import NOBODY, diff_states, open_up, passthrough, run_as, tree_state  # noqa: F401

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (two users, mounts)"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing"),
]

OPS = open(pt_ops.__file__).read()


def run_ops(root, role):
    if role == "root":
        p = subprocess.run([sys.executable, "-c", OPS, root, role], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
    else:
        p = run_as(NOBODY, NOBODY, OPS, root, role)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, f"ops script failed on {root} as {role}:\n{out[-3000:]}"
    return json.loads(out)


def differences(mnt, ref):
    assert [l for l, _ in mnt] == [l for l, _ in ref], "the two runs did different operations"
    return [f"{label}: mount {a!r} != source {b!r}" for (label, a), (_, b) in zip(mnt, ref) if a != b]


HOLES = "fallocate, punch hole, SEEK_DATA/SEEK_HOLE"


def kernel_seeks(results):
    """The results with the holes op's seeks as the kernel's own llseek
    answers them: under the writeback cache furing leaves SEEK_DATA and
    SEEK_HOLE to the kernel (SOURCE may not hold the cached writes yet),
    which sees no holes: data up to the end, the hole at the end."""
    out = []
    for label, r in results:
        if label == HOLES and isinstance(r, list):
            size = r[0]
            r = r[:2] + [0, size, 8192] + r[5:]
        out.append((label, r))
    return out


def writeback(mode):
    return "--cache=always" in mode and "--kernel-passthrough" not in mode


def check(pt, workdir, role, mode=()):
    ref = os.path.join(workdir, "reference")
    mnt = run_ops(pt.mountpoint, role)
    want = run_ops(ref, role)
    if writeback(mode):
        want = kernel_seeks(want)
    diffs = differences(mnt, want)
    assert not diffs, "\n".join(diffs)
    problems = diff_states(tree_state(pt.source), tree_state(ref), "SOURCE vs reference")
    problems += diff_states(tree_state(pt.mountpoint), tree_state(pt.source), "mount vs SOURCE")
    assert not problems, "\n".join(problems)
    r = pt.stop()
    assert r.rc == 0, r.stderr
    return r


def start(passthrough, workdir, *extra):
    src = os.path.join(workdir, "src")
    ref = os.path.join(workdir, "reference")
    for d in (src, ref):
        os.mkdir(d)
        pt_ops.make_tree(d)
    open_up(workdir)
    return passthrough("--allow-other", *extra, source=src)


@pytest.mark.parametrize("role", ["root", "user"])
def test_ops_match_source(passthrough, workdir, transport, role):
    r = check(start(passthrough, workdir), workdir, role)
    # Creating calls went through the ring and statx/openat2 answered.
    ops = r.summary["ring_ops"] if transport == "ring" else r.summary["dev_ops"]
    for op in ("LOOKUP", "CREATE", "MKDIR", "SYMLINK", "LINK", "RENAME2", "SETATTR", "READDIRPLUS", "SETXATTR"):
        assert ops.get(op, 0) > 0 or (op == "RENAME2" and ops.get("RENAME", 0) > 0), f"no {op} served: {ops}"


@pytest.mark.parametrize("mode", [
    ["--cache=none"],
    ["--cache=always"],
    ["--kernel-passthrough"],
    ["--kernel-passthrough", "--cache=always"],
    ["--backend-io=ring"],
    ["--backend-io=inline", "--threads=1"],
], ids=lambda m: " ".join(m).replace("--", ""))
def test_ops_match_source_modes(passthrough, workdir, transport, mode):
    r = check(start(passthrough, workdir, *mode), workdir, "root", mode)
    ops = r.summary["ring_ops"] if transport == "ring" else r.summary["dev_ops"]
    if "--kernel-passthrough" in mode:
        assert "kernel passthrough" in r.stderr, r.stderr
        assert ops.get("READ", 0) == 0 and ops.get("WRITE", 0) == 0, f"data went through furing: {ops}"
    else:
        assert ops.get("READ", 0) > 0 and ops.get("WRITE", 0) > 0, ops
    if mode == ["--cache=always"]:
        assert "writeback" in r.stderr, r.stderr


# --backend-io=ring: on a disk SOURCE (the test's /tmp) the default makes the
# creating calls inline with the thread's fsuid/fsgid; ring makes them as SQEs
# with the caller's io_uring personality.
@pytest.mark.parametrize("mode", [["--cache=always"], ["--cache=none"], ["--backend-io=ring"]],
                         ids=["always", "none", "backend-io=ring"])
def test_ops_match_source_as_user_modes(passthrough, workdir, transport, mode):
    check(start(passthrough, workdir, *mode), workdir, "user", mode)
