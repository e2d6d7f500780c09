#!/usr/bin/python3
"""Writes the seed corpora of the two fuzz targets.

fuzz/corpus/ (fuzz_decode.c): one valid request per supported opcode in
each layout (legacy-<op>, ring-<op>), plus a few variants (INIT from old
kernels and a major-8 kernel, names with an extension, SETXATTR with the
16-byte header). Input format (see fuzz_decode.c):
  byte 0: selector (bit 0 ring, bits 1-3 max_write index, bits 4-5 INIT
          wishes / setxattr_ext, bits 6-7 page size index)
  legacy: in_header | op header | data | extensions
  ring:   in_header | op_in (padded to 128 bytes) | payload (data | extensions)

fuzz/corpus-engine/ (fuzz_engine.c): the same requests as one-action scripts
for either transport (engine-legacy-<op>, engine-ring-<op>), and a few
longer scripts (a file's life, I/O answered later, an interrupt, a
retrieve, answers gathered from the request's buffer, operations left
NULL). Input format: see fuzz_engine.c.
Run: /usr/bin/python3 fuzz/make_corpus.py   (deterministic; rewrites the files)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
ENGINE_CORPUS = os.path.join(HERE, "corpus-engine")

IN_HDR = 40
OP_IN = 128
MAXW_1MIB = 6          # index into max_writes[] in fuzz_decode.c
SEL_URING = 1 << 4
SEL_SETXATTR_EXT = 1 << 5

# opcodes (lib/proto/fuse_kernel.h)
OPS = dict(LOOKUP=1, FORGET=2, GETATTR=3, SETATTR=4, READLINK=5, SYMLINK=6, MKNOD=8,
           MKDIR=9, UNLINK=10, RMDIR=11, RENAME=12, LINK=13, OPEN=14, READ=15, WRITE=16,
           STATFS=17, RELEASE=18, FSYNC=20, SETXATTR=21, GETXATTR=22, LISTXATTR=23,
           REMOVEXATTR=24, FLUSH=25, INIT=26, OPENDIR=27, READDIR=28, RELEASEDIR=29,
           FSYNCDIR=30, GETLK=31, SETLK=32, SETLKW=33, ACCESS=34, CREATE=35, INTERRUPT=36,
           DESTROY=38, IOCTL=39, POLL=40, NOTIFY_REPLY=41, BATCH_FORGET=42, FALLOCATE=43,
           READDIRPLUS=44, RENAME2=45, LSEEK=46, COPY_FILE_RANGE=47, SYNCFS=50, TMPFILE=51,
           STATX=52, COPY_FILE_RANGE_64=53)

# 6.18's INIT offer: flags bits 0-30 except FILE_OPS(2), MAP_ALIGNMENT(26), SUBMOUNTS(27)
FLAGS_618 = ((1 << 31) - 1) & ~((1 << 2) | (1 << 26) | (1 << 27))
FLAGS2_618 = sum(1 << b for b in (0, 2, 3, 4, 5, 6, 7, 8, 10))
OVER_IO_URING = 1 << 9


def in_header(length, opcode, unique, nodeid=1, extlen=0):
    return struct.pack("<IIQQIIIHH", length, opcode, unique, nodeid, 1000, 1000, 4242, extlen, 0)


def init_in(major, minor, flags, flags2, size=64):
    b = struct.pack("<IIIII", major, minor, 128 * 1024, flags, flags2) + bytes(44)
    return b[:size]


def read_in(size=4096):
    return struct.pack("<QQIIQII", 7, 1 << 20, size, 0, 0, 0x8002, 0)


def lk_in(typ, start=0, end=(1 << 63) - 1, flags=0):
    return struct.pack("<QQQQIIII", 3, 0x77, start, end, typ, 4242, flags, 0)


def ioctl_in(in_size, out_size, flags=0):
    return struct.pack("<QIIQII", 3, flags, 0x80045401, 0x1000, in_size, out_size)


def copy_in():
    return struct.pack("<QQQQQQQ", 3, 0, 5, 6, 4096, 1 << 20, 0)


WRITE_DATA = bytes((i * 7 + 3) & 0xFF for i in range(64))
IOCTL_DATA = bytes(range(16))
RETRIEVED = bytes((i * 5) & 0xFF for i in range(32))

# name -> (opcode, op header, data)
REQUESTS = {
    "init": (OPS["INIT"], init_in(7, 45, FLAGS_618, FLAGS2_618 | OVER_IO_URING), b""),
    "init-7.31": (OPS["INIT"], init_in(7, 31, FLAGS_618 & ((1 << 30) - 1), 0, 16), b""),
    "init-major8": (OPS["INIT"], init_in(8, 0, 0, 0, 16), b""),
    "destroy": (OPS["DESTROY"], b"", b""),
    "lookup": (OPS["LOOKUP"], b"", b"file.txt\0"),
    "forget": (OPS["FORGET"], struct.pack("<Q", 1), b""),
    "batch_forget": (OPS["BATCH_FORGET"], struct.pack("<II", 2, 0),
                     struct.pack("<QQQQ", 2, 1, 3, 5)),
    "interrupt": (OPS["INTERRUPT"], struct.pack("<Q", 0x1000), b""),
    "getattr": (OPS["GETATTR"], struct.pack("<IIQ", 1, 0, 3), b""),
    "setattr": (OPS["SETATTR"], struct.pack("<IIQQQQQQIIIIIIII", 1 << 3, 0, 3, 1 << 20, 0,
                                            0, 0, 0, 0, 0, 0, 0o100644, 0, 0, 0, 0), b""),
    "readlink": (OPS["READLINK"], b"", b""),
    "symlink": (OPS["SYMLINK"], b"", b"link\0/some/target\0"),
    "mknod": (OPS["MKNOD"], struct.pack("<IIII", 0o100644, 0, 0o022, 0), b"node\0"),
    "mkdir": (OPS["MKDIR"], struct.pack("<II", 0o40755, 0o022), b"dir\0"),
    "unlink": (OPS["UNLINK"], b"", b"file\0"),
    "rmdir": (OPS["RMDIR"], b"", b"dir\0"),
    "rename": (OPS["RENAME"], struct.pack("<Q", 1), b"old\0new\0"),
    "rename2": (OPS["RENAME2"], struct.pack("<QII", 1, 1, 0), b"old\0new\0"),
    "link": (OPS["LINK"], struct.pack("<Q", 2), b"hard\0"),
    "create": (OPS["CREATE"], struct.pack("<IIII", 0o102, 0o100644, 0o022, 0), b"new\0"),
    "access": (OPS["ACCESS"], struct.pack("<II", 4, 0), b""),
    "open": (OPS["OPEN"], struct.pack("<II", 0o2, 0), b""),
    "opendir": (OPS["OPENDIR"], struct.pack("<II", 0o200000, 0), b""),
    "release": (OPS["RELEASE"], struct.pack("<QIIQ", 3, 0o2, 0, 0), b""),
    "releasedir": (OPS["RELEASEDIR"], struct.pack("<QIIQ", 4, 0, 0, 0), b""),
    "flush": (OPS["FLUSH"], struct.pack("<QIIQ", 3, 0, 0, 99), b""),
    "read": (OPS["READ"], read_in(), b""),
    "readdir": (OPS["READDIR"], read_in(), b""),
    "readdirplus": (OPS["READDIRPLUS"], read_in(), b""),
    "write": (OPS["WRITE"], struct.pack("<QQIIQII", 3, 4096, len(WRITE_DATA), 0, 0, 0, 0),
              WRITE_DATA),
    "fsync": (OPS["FSYNC"], struct.pack("<QII", 3, 1, 0), b""),
    "fsyncdir": (OPS["FSYNCDIR"], struct.pack("<QII", 4, 0, 0), b""),
    "fallocate": (OPS["FALLOCATE"], struct.pack("<QQQII", 3, 0, 1 << 20, 1, 0), b""),
    "lseek": (OPS["LSEEK"], struct.pack("<QQII", 3, 0, 3, 0), b""),
    "statfs": (OPS["STATFS"], b"", b""),
    "setxattr": (OPS["SETXATTR"], struct.pack("<II", 5, 1), b"user.x\0value"),
    "getxattr": (OPS["GETXATTR"], struct.pack("<II", 64, 0), b"user.x\0"),
    "getxattr-size": (OPS["GETXATTR"], struct.pack("<II", 0, 0), b"user.x\0"),
    "listxattr": (OPS["LISTXATTR"], struct.pack("<II", 4096, 0), b""),
    "removexattr": (OPS["REMOVEXATTR"], b"", b"user.x\0"),
    "getlk": (OPS["GETLK"], lk_in(1, 0, 99), b""),
    "setlk": (OPS["SETLK"], lk_in(1, 100), b""),
    "setlkw": (OPS["SETLKW"], lk_in(2), b""),
    "flock": (OPS["SETLK"], lk_in(1, flags=1), b""),
    "poll": (OPS["POLL"], struct.pack("<QQII", 3, 9, 1, 1), b""),
    "ioctl": (OPS["IOCTL"], ioctl_in(len(IOCTL_DATA), 64), IOCTL_DATA),
    "ioctl-out": (OPS["IOCTL"], ioctl_in(0, 256), b""),
    "copy_file_range": (OPS["COPY_FILE_RANGE"], copy_in(), b""),
    "copy_file_range_64": (OPS["COPY_FILE_RANGE_64"], copy_in(), b""),
    "statx": (OPS["STATX"], struct.pack("<IIQII", 1, 0, 3, 0, 0x7FF), b""),
    "syncfs": (OPS["SYNCFS"], struct.pack("<Q", 0), b""),
    "tmpfile": (OPS["TMPFILE"], struct.pack("<IIII", 0o20000002, 0o100600, 0o022, 0), b"tmp\0"),
    "notify_reply": (OPS["NOTIFY_REPLY"], struct.pack("<QQIIQQ", 0, 0, len(RETRIEVED), 0, 0, 0), RETRIEVED),
}

# SETXATTR as a kernel that agreed FUSE_SETXATTR_EXT sends it (16-byte header)
SETXATTR_EXT = (OPS["SETXATTR"], struct.pack("<IIII", 5, 1, 1, 0), b"user.x\0value")

# names with an extension (total_extlen) after them
WITH_EXT = {"lookup-ext": "lookup", "create-ext": "create", "write-ext": "write"}


def request(opcode, hdr, data, ext=b"", ring=False):
    """The bytes of one request: in_header | op header | data | extensions."""
    unique = 2 * (opcode + 1)
    length = IN_HDR + len(hdr) + len(data) + len(ext)
    return in_header(length, opcode, unique, extlen=len(ext) // 8) + hdr + data + ext


def layout(ring, opcode, hdr, data, ext=b"", sel_extra=0):
    sel = (1 if ring else 0) | (MAXW_1MIB << 1) | SEL_URING | sel_extra
    req = request(opcode, hdr, data, ext)
    if ring:
        return bytes([sel]) + req[:IN_HDR] + hdr.ljust(OP_IN, b"\0") + data + ext
    return bytes([sel]) + req


# ---- fuzz_engine.c scripts ----
# byte 0: payload 8192, max_write 8192; byte 1: 4 legacy slots, ring depth 2, two queues
ENGINE_CFG = bytes([0x00, 0x17])
ENGINE_CFG_EXT = bytes([0x08, 0x17])  # FUSE_SETXATTR_EXT agreed
A_DEV, A_RING, A_IO, A_DEFERRED, A_RETRIEVE = 0x00, 0x04, 0x08, 0x0A, 0x0D
F_AIM = 0x20  # action flag: INTERRUPT at a request in flight, NOTIFY_REPLY at a retrieve
# fe_fs.c's first choice for an operation: answer now (0), with an error (7),
# after I/O (9), put aside (11), from another thread (13), twice (15)
NOW, ERR, IO, ASIDE, ELSEWHERE, TWICE = 0, 7, 9, 11, 13, 15


def act_request(ring, req, flags=0):
    return bytes([(A_RING if ring else A_DEV) | flags]) + struct.pack("<H", len(req)) + req


def script(script_bytes, choices=b"", cfg=ENGINE_CFG, null_ops=None):
    """null_ops: a mask of operations left NULL (fuzz_engine.c's nullable[])"""
    if null_ops is None:
        return cfg + struct.pack("<H", len(script_bytes)) + script_bytes + choices
    cfg = bytes([cfg[0] | 0x20]) + cfg[1:]
    mask = struct.pack("<Q", null_ops)[:6]
    return cfg + struct.pack("<H", len(script_bytes)) + mask + script_bytes + choices


# bits of fuzz_engine.c's nullable[]
NULL_FORGET, NULL_FORGET_MULTI = 1 << 1, 1 << 2
NULL_ALL = (1 << 48) - 1


def engine_scripts():
    """name -> input bytes"""
    out = {}
    for ring in (False, True):
        prefix = "engine-ring-" if ring else "engine-legacy-"
        for name, (opcode, hdr, data) in REQUESTS.items():
            if name.startswith("init"):
                continue
            out[prefix + name] = script(act_request(ring, request(opcode, hdr, data)))
        opcode, hdr, data = SETXATTR_EXT
        out[prefix + "setxattr-ext"] = script(act_request(ring, request(opcode, hdr, data)), cfg=ENGINE_CFG_EXT)
        r = lambda n: request(*REQUESTS[n])
        # a file's life: the read after I/O (one pread), the write from
        # another thread, the listing put aside and answered at the end
        life = ("lookup", "open", "read", "write", "readdirplus", "flush", "release")
        out[prefix + "session"] = script(
            b"".join(act_request(ring, r(n)) for n in life) + bytes([A_IO, 0]),
            bytes([NOW, IO, 0, 0, ELSEWHERE, ASIDE]))
        # an interrupt (always over /dev/fuse) aimed at a read put aside
        out[prefix + "interrupt"] = script(act_request(ring, r("read")) + act_request(False, r("interrupt"), F_AIM),
                                           bytes([ASIDE]))
        # a retrieve and its NOTIFY_REPLY
        out[prefix + "retrieve"] = script(bytes([A_RETRIEVE]) + act_request(ring, r("notify_reply"), F_AIM))
        # the answer gathered from pieces of the request's buffer (READ), and
        # ioctl data built in the request's buffer
        out[prefix + "read-pieces"] = script(act_request(ring, r("read")), bytes([NOW, 0, 3, 0, 3]))
        out[prefix + "ioctl-buf"] = script(act_request(ring, r("ioctl-out")), bytes([NOW, 64, 0, 0, 0, 0, 0, 0, 0, 1]))
        # every operation NULL: the engine's own answers (ENOSYS, the
        # defaults of open, opendir, release, releasedir)
        every = [n for n in REQUESTS if not n.startswith("init")]
        out[prefix + "null-ops"] = script(b"".join(act_request(ring, r(n)) for n in every), null_ops=NULL_ALL)
        out[prefix + "null-ops-no-open"] = script(b"".join(act_request(ring, r(n)) for n in ("open", "opendir")),
                                                  cfg=bytes([0x40, 0x17]), null_ops=NULL_ALL)
        # forget without forget_multi, and the other way round
        forgets = act_request(ring, r("forget")) + act_request(ring, r("batch_forget"))
        out[prefix + "forget-only"] = script(forgets, null_ops=NULL_FORGET_MULTI)
        out[prefix + "forget-multi-only"] = script(forgets, null_ops=NULL_FORGET)
    return out


def rewrite(directory, prefixes, files):
    os.makedirs(directory, exist_ok=True)
    for f in os.listdir(directory):
        if f.startswith(prefixes):
            os.unlink(os.path.join(directory, f))
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


def main():
    decode = {}
    for ring in (False, True):
        prefix = "ring-" if ring else "legacy-"
        for name, (opcode, hdr, data) in REQUESTS.items():
            decode[prefix + name] = layout(ring, opcode, hdr, data)
        for name, base in WITH_EXT.items():
            opcode, hdr, data = REQUESTS[base]
            ext = struct.pack("<II", 16, 0xFFFF0001) + b"ext-data"
            decode[prefix + name] = layout(ring, opcode, hdr, data, ext)
        opcode, hdr, data = SETXATTR_EXT
        decode[prefix + "setxattr-ext"] = layout(ring, opcode, hdr, data, sel_extra=SEL_SETXATTR_EXT)
    rewrite(CORPUS, ("legacy-", "ring-"), decode)
    engine = engine_scripts()
    rewrite(ENGINE_CORPUS, ("engine-",), engine)
    print(f"wrote {len(decode)} files to {CORPUS} and {len(engine)} to {ENGINE_CORPUS}")


if __name__ == "__main__":
    main()
