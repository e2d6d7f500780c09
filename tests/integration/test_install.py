"""The installed library, used as a program outside the tree uses it.

Two installs: the repository's `build` (what scripts/test.sh builds) staged
with DESTDIR, and a fresh build configured for a temporary prefix. For each:
what is installed (soname, static library, header, pkg-config file), that
the shared library exports the header's functions and nothing else, that
the version macros agree with furing_version() and the project version, and
that examples/hello.c and examples/pathfs.c (the path API), copied out of the
tree and compiled with nothing but `pkg-config --cflags --libs furing`, mount
and serve."""

import json
import os
import re
import shutil
import subprocess

import pytest

from furing_helpers import read_file

pytestmark = pytest.mark.timeout(120)

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(REPO, "build")
HEADER = os.path.join(REPO, "include", "furing", "furing.h")
# The project's own warning set (operations leave arguments unused by design).
STRICT = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]


def run(argv, env=None, cwd=None, timeout=90):
    p = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, f"`{' '.join(argv)}` failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-3000:]}"
    return p.stdout


def meson_info(build, what):
    return json.loads(run(["meson", "introspect", build, f"--{what}"]))


class Install:
    """Where one install put things, and how pkg-config finds them."""

    def __init__(self, kind, root, prefix, libdir, includedir, pc_env):
        self.kind = kind
        self.libdir = os.path.join(root + prefix, libdir)
        self.includedir = os.path.join(root + prefix, includedir)
        self.pc_env = dict(os.environ, **pc_env)

    def pkg_config(self, *args):
        return run(["pkg-config", *args, "furing"], env=self.pc_env).split()


def _install(kind, base):
    if kind == "destdir":
        if not os.path.isfile(os.path.join(BUILD, "build.ninja")):
            pytest.fail(f"{BUILD} is not a meson build directory (scripts/build.sh build)", pytrace=False)
        build, root = BUILD, os.path.join(base, "destdir")
        run(["meson", "install", "-C", build, "--destdir", root, "--quiet"])
    else:
        build, root = os.path.join(base, "prefix-build"), ""
        run(["meson", "setup", build, REPO, "--prefix=" + os.path.join(base, "prefix"),
             "-Dbuildtype=plain"])
        run(["meson", "install", "-C", build, "--quiet"])
    opts = {o["name"]: o["value"] for o in meson_info(build, "buildoptions")}
    libdir, includedir = opts["libdir"], opts["includedir"]
    pcdir = os.path.join(root + opts["prefix"], libdir, "pkgconfig")
    # With DESTDIR the .pc file still names the real prefix: the sysroot
    # variable makes pkg-config point into the staging tree.
    pc_env = {"PKG_CONFIG_PATH": pcdir}
    if root:
        pc_env["PKG_CONFIG_SYSROOT_DIR"] = root
    return Install(kind, root, opts["prefix"], libdir, includedir, pc_env)


@pytest.fixture(scope="module")
def installed(session_base):
    """installed(kind) -> Install, made once per module: "destdir" or "prefix"."""
    cache = {}
    base = os.path.join(session_base, "install")

    def get(kind):
        if kind not in cache:
            cache[kind] = _install(kind, base)
        return cache[kind]
    return get


def header_functions(path):
    with open(path) as f:
        return set(re.findall(r"\b(furing_[a-z0-9_]+)\(", f.read()))


MAP = os.path.join(REPO, "lib", "libfuring.map")


def map_nodes():
    """{node: explicit names} of lib/libfuring.map, and the node of its
    wildcard (furing_*), which takes every other public function."""
    with open(MAP) as f:
        text = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
    nodes, wildcard = {}, None
    for node, body in re.findall(r"(FURING_[0-9.]+)\s*\{(.*?)\}", text, flags=re.S):
        names = set()
        for sym in re.findall(r"([A-Za-z_][A-Za-z0-9_*]*)\s*;", body.split("local:")[0].replace("global:", "")):
            if sym == "furing_*":
                wildcard = node
            else:
                names.add(sym)
        nodes[node] = names
    return nodes, wildcard


def dynamic_symbols(lib):
    """The exported functions, without the version nodes' own (absolute)
    symbols; each must carry its node of lib/libfuring.map: a name the map
    lists explicitly (added after the first node) that one, every other the
    wildcard's."""
    nodes, wildcard = map_nodes()
    assert wildcard == "FURING_0.1" and len(nodes) >= 2, (nodes, wildcard)
    explicit = {name: node for node, names in nodes.items() for name in names}
    out = set()
    for line in run(["nm", "-D", "--defined-only", "--with-symbol-versions", lib]).splitlines():
        f = line.split()
        if not f or (f[1] == "A" and f[2] in nodes):
            continue
        name, _, version = f[2].partition("@@")
        want = explicit.get(name, wildcard)
        assert version == want, f"{f[2]}: not in version node {want}"
        out.add(name)
    assert set(explicit) <= out, f"listed in the map but not exported: {sorted(set(explicit) - out)}"
    return out


def readelf_dynamic(path):
    return run(["readelf", "-d", path])


KINDS = ["destdir", "prefix"]


@pytest.mark.parametrize("kind", KINDS)
def test_installed_files(installed, kind):
    inst = installed(kind)
    lib = os.path.join(inst.libdir, "libfuring.so.0")
    for path in (lib, os.path.join(inst.libdir, "libfuring.so"), os.path.join(inst.libdir, "libfuring.a"),
                 os.path.join(inst.libdir, "pkgconfig", "furing.pc"),
                 os.path.join(inst.includedir, "furing", "furing.h")):
        assert os.path.exists(path), f"{kind}: {path} was not installed"
    assert os.path.realpath(os.path.join(inst.libdir, "libfuring.so")) == os.path.realpath(lib)
    assert "Library soname: [libfuring.so.0]" in readelf_dynamic(lib)
    with open(os.path.join(inst.includedir, "furing", "furing.h"), "rb") as a, open(HEADER, "rb") as b:
        assert a.read() == b.read(), "the installed header differs from include/furing/furing.h"
    # The shared library exports the public API and nothing else.
    exported = dynamic_symbols(lib)
    stray = sorted(s for s in exported if not s.startswith("furing_"))
    assert not stray, f"{kind}: exported symbols outside furing_*: {stray[:20]}"
    declared = header_functions(HEADER)
    assert exported == declared, (f"header and library disagree: only declared {sorted(declared - exported)}, "
                                  f"only exported {sorted(exported - declared)}")
    # pkg-config points into this install
    cflags, libs = inst.pkg_config("--cflags"), inst.pkg_config("--libs")
    assert f"-I{inst.includedir}" in cflags, cflags
    assert f"-L{inst.libdir}" in libs and "-lfuring" in libs, libs
    assert "-luring" in inst.pkg_config("--static", "--libs")
    assert inst.pkg_config("--modversion") == [meson_info(BUILD, "projectinfo")["version"]]


@pytest.mark.parametrize("kind", KINDS)
def test_version_macros_match_library_and_project(installed, kind, workdir):
    inst = installed(kind)
    src = os.path.join(workdir, "version.c")
    with open(src, "w") as f:
        f.write('#include <stdio.h>\n#include <furing/furing.h>\n'
                'int main(void)\n{\n'
                '\tprintf("%d.%d.%d %s %d\\n", FURING_VERSION_MAJOR, FURING_VERSION_MINOR,\n'
                '\t       FURING_VERSION_PATCH, furing_version(),\n'
                '\t       FURING_VERSION_NUMBER == ((FURING_VERSION_MAJOR << 16) |\n'
                '\t                                 (FURING_VERSION_MINOR << 8) | FURING_VERSION_PATCH));\n'
                '\treturn 0;\n}\n')
    exe = os.path.join(workdir, "version")
    run(["cc", *STRICT, "-o", exe, src, *inst.pkg_config("--cflags", "--libs")])
    macros, lib_version, number_ok = run([exe], env=dict(os.environ, LD_LIBRARY_PATH=inst.libdir)).split()
    project = meson_info(BUILD, "projectinfo")["version"]
    assert macros == lib_version == project, \
        f"header macros {macros}, furing_version() {lib_version}, meson project {project}"
    assert number_ok == "1"


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_tree_hello(installed, kind, workdir, example_plain):
    inst = installed(kind)
    # Copies: quoted includes cannot reach the repository from here.
    for name in ("hello.c", "memfs.c", "pathfs.c"):
        shutil.copy(os.path.join(REPO, "examples", name), workdir)
    flags = inst.pkg_config("--cflags", "--libs")
    hello = os.path.join(workdir, "hello")
    run(["cc", *STRICT, "-o", hello, "hello.c", *flags], cwd=workdir)
    run(["cc", *STRICT, "-o", "memfs", "memfs.c", *flags], cwd=workdir)
    pathfs = os.path.join(workdir, "pathfs")
    run(["cc", *STRICT, "-o", pathfs, "pathfs.c", *flags], cwd=workdir)
    dyn = readelf_dynamic(hello)
    assert "Shared library: [libfuring.so.0]" in dyn and "RPATH" not in dyn and "RUNPATH" not in dyn
    # The static library links on its own too (liburing from pkg-config --static).
    static_libs = [os.path.join(inst.libdir, "libfuring.a") if a == "-lfuring" else a
                   for a in inst.pkg_config("--static", "--libs")]
    run(["cc", *STRICT, "-o", "hello-static", "hello.c", *inst.pkg_config("--cflags"), *static_libs],
        cwd=workdir)
    assert "libfuring" not in readelf_dynamic(os.path.join(workdir, "hello-static"))

    env = dict(os.environ, LD_LIBRARY_PATH=inst.libdir)
    h = example_plain("hello", binary=hello, env=env, debug=False)
    with open(f"/proc/{h.pid}/maps") as f:
        maps = f.read()
    assert os.path.realpath(os.path.join(inst.libdir, "libfuring.so.0")) in maps, \
        "hello did not run against the installed libfuring"
    assert os.listdir(h.mountpoint) == ["hello"]
    assert read_file(os.path.join(h.mountpoint, "hello")) == b"Hello, World!\n"
    r = h.stop()
    assert r.rc == 0, r.stderr
    assert not h.mounted()
    # The path API's example, built the same way, serves a tree.
    p = example_plain("pathfs", binary=pathfs, env=env, debug=False)
    os.mkdir(os.path.join(p.mountpoint, "d"))
    with open(os.path.join(p.mountpoint, "d", "f"), "wb") as f:
        f.write(b"out of tree\n")
    os.rename(os.path.join(p.mountpoint, "d", "f"), os.path.join(p.mountpoint, "g"))
    assert sorted(os.listdir(p.mountpoint)) == ["d", "g"]
    assert read_file(os.path.join(p.mountpoint, "g")) == b"out of tree\n"
    r = p.stop()
    assert r.rc == 0, r.stderr


def test_examples_build_like_outside_programs():
    """In the tree the examples get what an outside program gets: the public
    include directory only, and the shared library."""
    with open(os.path.join(BUILD, "compile_commands.json")) as f:
        commands = [c for c in json.load(f) if "/examples/" in c["file"]]
    assert {os.path.basename(c["file"]) for c in commands} == {"hello.c", "memfs.c", "pathfs.c", "pathpt.c"}
    for c in commands:
        args = c.get("arguments") or c["command"].split()
        includes = [a[2:] for a in args if a.startswith("-I")] + \
                   [args[i + 1] for i, a in enumerate(args) if a in ("-I", "-isystem", "-iquote")]
        public = os.path.join(REPO, "include")
        seen = {os.path.realpath(os.path.join(c["directory"], d)) for d in includes}
        private = {s for s in seen if s.startswith(os.path.join(BUILD, "examples") + "/") and s.endswith(".p")}
        assert seen - private == {public}, f"{c['file']}: include path {sorted(seen)}"
        with open(os.path.join(c["directory"], c["file"])) as src:
            quoted = [l for l in src if re.match(r'\s*#\s*include\s*"', l)]
        assert not quoted, f"{c['file']} includes from the tree: {quoted}"
    for name in ("hello", "memfs", "pathfs", "pathpt"):
        assert "Shared library: [libfuring.so.0]" in readelf_dynamic(os.path.join(BUILD, "examples", name))


def test_library_alone_builds_without_libnbd(workdir):
    """-Dtool=false: with pkg-config seeing only liburing and cmocka (no
    libnbd), meson sets up and builds libfuring, the examples and probefs,
    and no furing tool; without the option the same setup fails on libnbd."""
    pcdir = os.path.join(workdir, "pc")
    os.mkdir(pcdir)
    for pkg in ("liburing", "cmocka"):
        src = run(["pkg-config", "--variable=pcfiledir", pkg]).strip()
        shutil.copy(os.path.join(src, pkg + ".pc"), pcdir)
    env = dict(os.environ, PKG_CONFIG_LIBDIR=pcdir)
    full = subprocess.run(["meson", "setup", os.path.join(workdir, "full"), REPO], env=env, capture_output=True,
                          text=True, timeout=90)
    assert full.returncode != 0 and "libnbd" in full.stdout + full.stderr, full
    build = os.path.join(workdir, "lib-only")
    run(["meson", "setup", build, REPO, "-Dtool=false", "-Dbuildtype=plain"], env=env)
    run(["ninja", "-C", build], env=env, timeout=110)
    for path in ("libfuring.so.0", "libfuring.a", "examples/hello", "examples/memfs", "examples/pathfs",
                 "examples/pathpt", "tests/lib/probefs"):
        assert os.path.exists(os.path.join(build, path)), f"-Dtool=false did not build {path}"
    assert not os.path.exists(os.path.join(build, "furing")), "-Dtool=false built the tool"
