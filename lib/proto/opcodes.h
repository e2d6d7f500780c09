/* Every FUSE opcode furing knows, one row each, in the order of their
 * numbers. The decoder (decode.c) and the dispatcher (../dispatch.c) expand
 * this one list into their tables, indexed by opcode, so the two cannot
 * disagree about which opcodes exist, and a row given twice fails the build
 * (-Woverride-init).
 *
 * Adding an operation: a row here, its handler fu_serve_<serve> (one of
 * ../dispatch*.c), its member of struct furing_ops.
 *
 * Columns of X(name, header, tail, answered, serve, needs):
 *   name      FUSE_<name>, and how the debug lines and the stats line
 *             call it (tests key counts by it: "READ", "GETATTR", ...)
 *   header    the op header's size; FU_IN(x) is sizeof(struct fuse_x_in).
 *             INIT's is its minimum, SETXATTR's the one without
 *             FUSE_SETXATTR_EXT (decode.c takes 16 bytes when it is agreed)
 *   tail      what may follow the header (decode.c's enum fu_tail, without
 *             its TAIL_): NONE, NAME, NAME2, ...; UNSERVED: the decoder
 *             answers ENOSYS and no other column is looked at
 *   answered  false for the opcodes the kernel never expects an answer to
 *   serve     the engine's handler, fu_serve_<serve>: builds the typed
 *             arguments from the wire structs and calls the operation
 *   needs     OPS(member): a filesystem without that operation gets ENOSYS
 *             before the handler runs; ANY: the handler runs in any case
 *             (the engine's own opcodes, and those whose missing operation
 *             has a meaning of its own: see their handlers)
 *
 * The protocol layer expands the first four columns, the engine the first
 * and the last two; neither substitutes the other's, so OPS and ANY are
 * defined only where the dispatch table is (an unsubstituted argument is
 * never expanded). The list names engine functions without needing them:
 * this header stays pure protocol for the fuzzer and the unit tests. */
#ifndef FURING_PROTO_OPCODES_H
#define FURING_PROTO_OPCODES_H

#include <stdbool.h>

#include "fuse_kernel.h"

#define FU_IN(x) sizeof(struct fuse_##x##_in)

/* clang-format off */
#define FU_OPCODES(X) \
	X(LOOKUP,             0,                            NAME,      true,  lookup,          OPS(lookup))          \
	X(FORGET,             FU_IN(forget),                NONE,      false, forget,          ANY)                  \
	X(GETATTR,            FU_IN(getattr),               NONE,      true,  getattr,         OPS(getattr))         \
	X(SETATTR,            FU_IN(setattr),               NONE,      true,  setattr,         OPS(setattr))         \
	X(READLINK,           0,                            NONE,      true,  readlink,        OPS(readlink))        \
	X(SYMLINK,            0,                            NAME2,     true,  symlink,         OPS(symlink))         \
	X(MKNOD,              FU_IN(mknod),                 NAME,      true,  mknod,           OPS(mknod))           \
	X(MKDIR,              FU_IN(mkdir),                 NAME,      true,  mkdir,           OPS(mkdir))           \
	X(UNLINK,             0,                            NAME,      true,  unlink,          OPS(unlink))          \
	X(RMDIR,              0,                            NAME,      true,  rmdir,           OPS(rmdir))           \
	X(RENAME,             FU_IN(rename),                NAME2,     true,  rename,          OPS(rename))          \
	X(LINK,               FU_IN(link),                  NAME,      true,  link,            OPS(link))            \
	X(OPEN,               FU_IN(open),                  NONE,      true,  open,            ANY)                  \
	X(READ,               FU_IN(read),                  NONE,      true,  read,            OPS(read))            \
	X(WRITE,              FU_IN(write),                 WRITE,     true,  write,           OPS(write))           \
	X(STATFS,             0,                            NONE,      true,  statfs,          OPS(statfs))          \
	X(RELEASE,            FU_IN(release),               NONE,      true,  release,         ANY)                  \
	X(FSYNC,              FU_IN(fsync),                 NONE,      true,  fsync,           OPS(fsync))           \
	X(SETXATTR,           FUSE_COMPAT_SETXATTR_IN_SIZE, XATTR,     true,  setxattr,        OPS(setxattr))        \
	X(GETXATTR,           FU_IN(getxattr),              NAME,      true,  getxattr,        OPS(getxattr))        \
	X(LISTXATTR,          FU_IN(getxattr),              NONE,      true,  listxattr,       OPS(listxattr))       \
	X(REMOVEXATTR,        0,                            NAME,      true,  removexattr,     OPS(removexattr))     \
	X(FLUSH,              FU_IN(flush),                 NONE,      true,  flush,           OPS(flush))           \
	X(INIT,               FUSE_INIT_IN_COMPAT_SIZE,     INIT,      true,  init,            ANY)                  \
	X(OPENDIR,            FU_IN(open),                  NONE,      true,  opendir,         ANY)                  \
	X(READDIR,            FU_IN(read),                  NONE,      true,  readdir,         OPS(readdir))         \
	X(RELEASEDIR,         FU_IN(release),               NONE,      true,  releasedir,      ANY)                  \
	X(FSYNCDIR,           FU_IN(fsync),                 NONE,      true,  fsyncdir,        OPS(fsyncdir))        \
	X(GETLK,              FU_IN(lk),                    NONE,      true,  lock,            ANY)                  \
	X(SETLK,              FU_IN(lk),                    NONE,      true,  lock,            ANY)                  \
	X(SETLKW,             FU_IN(lk),                    NONE,      true,  lock,            ANY)                  \
	X(ACCESS,             FU_IN(access),                NONE,      true,  access,          OPS(access))          \
	X(CREATE,             FU_IN(create),                NAME,      true,  create,          OPS(create))          \
	X(INTERRUPT,          FU_IN(interrupt),             NONE,      false, interrupt,       ANY)                  \
	X(BMAP,               0,                            UNSERVED,  true,  enosys,          ANY)                  \
	X(DESTROY,            0,                            NONE,      true,  destroy,         ANY)                  \
	X(IOCTL,              FU_IN(ioctl),                 IOCTL,     true,  ioctl,           OPS(ioctl))           \
	X(POLL,               FU_IN(poll),                  NONE,      true,  poll,            OPS(poll))            \
	X(NOTIFY_REPLY,       FU_IN(notify_retrieve),       RETRIEVED, false, notify_reply,    ANY)                  \
	X(BATCH_FORGET,       FU_IN(batch_forget),          FORGETS,   false, batch_forget,    ANY)                  \
	X(FALLOCATE,          FU_IN(fallocate),             NONE,      true,  fallocate,       OPS(fallocate))       \
	X(READDIRPLUS,        FU_IN(read),                  NONE,      true,  readdirplus,     OPS(readdirplus))     \
	X(RENAME2,            FU_IN(rename2),               NAME2,     true,  rename2,         OPS(rename))          \
	X(LSEEK,              FU_IN(lseek),                 NONE,      true,  lseek,           OPS(lseek))           \
	X(COPY_FILE_RANGE,    FU_IN(copy_file_range),       NONE,      true,  copy_file_range, OPS(copy_file_range)) \
	X(SETUPMAPPING,       0,                            UNSERVED,  true,  enosys,          ANY)                  \
	X(REMOVEMAPPING,      0,                            UNSERVED,  true,  enosys,          ANY)                  \
	X(SYNCFS,             FU_IN(syncfs),                NONE,      true,  syncfs,          OPS(syncfs))          \
	/* O_TMPFILE: create_in and the placeholder name the VFS gives the dentry. */                                \
	X(TMPFILE,            FU_IN(create),                NAME,      true,  tmpfile,         OPS(tmpfile))         \
	X(STATX,              FU_IN(statx),                 NONE,      true,  statx,           OPS(statx))           \
	X(COPY_FILE_RANGE_64, FU_IN(copy_file_range),       NONE,      true,  copy_file_range, OPS(copy_file_range))
/* clang-format on */

#endif
