#!/usr/bin/python3
"""Writes the seed corpus of fuzz/fuzz_decode.c into fuzz/corpus/.

One valid request per supported opcode in each layout (legacy-<op>,
ring-<op>), plus a few variants (INIT from old kernels and a major-8
kernel, names with an extension). Input format (see fuzz_decode.c):
  byte 0: selector (bit 0 ring, bits 1-3 max_write index, bits 4-5 INIT
          wishes, bits 6-7 page size index)
  legacy: in_header | op header | data | extensions
  ring:   in_header | op_in (padded to 128 bytes) | payload (data | extensions)
Run: /usr/bin/python3 fuzz/make_corpus.py   (deterministic; rewrites the files)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

IN_HDR = 40
OP_IN = 128
MAXW_1MIB = 6          # index into max_writes[] in fuzz_decode.c
SEL_URING = 1 << 4

# opcodes (lib/proto/fuse_kernel.h)
OPS = dict(LOOKUP=1, FORGET=2, GETATTR=3, SETATTR=4, READLINK=5, SYMLINK=6, MKNOD=8,
           MKDIR=9, UNLINK=10, RMDIR=11, RENAME=12, LINK=13, OPEN=14, READ=15, WRITE=16,
           STATFS=17, RELEASE=18, FSYNC=20, FLUSH=25, INIT=26, OPENDIR=27, READDIR=28,
           RELEASEDIR=29, FSYNCDIR=30, ACCESS=34, CREATE=35, INTERRUPT=36, DESTROY=38,
           BATCH_FORGET=42, FALLOCATE=43, READDIRPLUS=44, RENAME2=45, LSEEK=46)

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


WRITE_DATA = bytes((i * 7 + 3) & 0xFF for i in range(64))

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
}

# names with an extension (total_extlen) after them
WITH_EXT = {"lookup-ext": "lookup", "create-ext": "create", "write-ext": "write"}


def layout(ring, opcode, hdr, data, ext=b""):
    unique = 2 * (opcode + 1)
    length = IN_HDR + len(hdr) + len(data) + len(ext)
    ih = in_header(length, opcode, unique, extlen=len(ext) // 8)
    sel = (1 if ring else 0) | (MAXW_1MIB << 1) | SEL_URING
    if ring:
        return bytes([sel]) + ih + hdr.ljust(OP_IN, b"\0") + data + ext
    return bytes([sel]) + ih + hdr + data + ext


def main():
    os.makedirs(CORPUS, exist_ok=True)
    for f in os.listdir(CORPUS):
        if f.startswith(("legacy-", "ring-")):
            os.unlink(os.path.join(CORPUS, f))
    n = 0
    for ring in (False, True):
        prefix = "ring-" if ring else "legacy-"
        for name, (opcode, hdr, data) in REQUESTS.items():
            with open(os.path.join(CORPUS, prefix + name), "wb") as f:
                f.write(layout(ring, opcode, hdr, data))
            n += 1
        for name, base in WITH_EXT.items():
            opcode, hdr, data = REQUESTS[base]
            ext = struct.pack("<II", 16, 0xFFFF0001) + b"ext-data"
            with open(os.path.join(CORPUS, prefix + name), "wb") as f:
                f.write(layout(ring, opcode, hdr, data, ext))
            n += 1
    print(f"wrote {n} files to {CORPUS}")


if __name__ == "__main__":
    main()
