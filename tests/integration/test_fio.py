"""fio with crc32c verification (libaio, O_DIRECT, iodepth 32) on a 64 MiB
export. Runs under both transports."""

import json
import os
import shutil
import subprocess

import pytest

from furing_helpers import MiB, assert_same, read_file

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed"),
]

IMAGE_SIZE = 64 * MiB

FIO_COMMON = [
    "--ioengine=libaio", "--direct=1", "--iodepth=32", "--verify=crc32c",
    "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--fallocate=none", "--size=64m",
    "--runtime=20", "--output-format=json", "--group_reporting",
]

JOBS = {
    "randwrite-4k": ["--rw=randwrite", "--bs=4k", "--io_size=24m"],
    "randwrite-mixed-bs": ["--rw=randwrite", "--bssplit=4k/30:16k/20:64k/20:256k/15:1m/15",
                           "--blockalign=4k", "--io_size=48m"],
}


def run_fio(name, filename, extra, workdir, timeout=45):
    out = os.path.join(workdir, f"fio-{name}.json")
    argv = ["fio", f"--name={name}", f"--filename={filename}", f"--output={out}"] + FIO_COMMON + extra
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    text = read_file(out).decode("utf-8", "replace") if os.path.exists(out) else ""
    assert p.returncode == 0, (f"fio {name} failed rc={p.returncode}\n"
                               f"{p.stdout.decode(errors='replace')[-3000:]}\n{text[-3000:]}")
    # fio may print warnings before the JSON document
    res = json.loads(text[text.index("{"):])
    job = res["jobs"][0]
    assert job["error"] == 0, job
    return job


@pytest.mark.parametrize("job", list(JOBS))
def test_fio_verify(furing, make_image, workdir, job):
    img = make_image(IMAGE_SIZE)
    f = furing(img, writable=True)
    res = run_fio(job, f.mountpoint, JOBS[job], workdir)
    written = res["write"]["io_bytes"]
    assert written > 0
    # whatever fio wrote through the mount is in the backing file
    with open(f.mountpoint, "rb", buffering=0) as g:
        via_mount = g.read()
    assert_same(via_mount, read_file(img), "export vs backing after fio")
    r = f.stop()
    assert r.rc == 0, r.stderr
    assert r.summary is not None, r.stderr[-2000:]
    assert r.summary["bytes_written"] >= written, (r.summary, written)
    assert r.summary["bytes_read"] >= res["read"]["io_bytes"] + IMAGE_SIZE, r.summary
