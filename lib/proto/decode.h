/* Strict request decoding: raw bytes from either transport -> a validated,
 * typed view. Pure functions: no I/O, no threads, no allocation; fuzzed by
 * fuzz/fuzz_decode.c.
 *
 * The two transports place a request's parts differently (doc/protocol.md 3.1):
 *   legacy: one buffer  = in_header | op header | names/data | extensions
 *   ring:   in_out      = in_header, op_in = op header, payload = names/data
 * so the caller describes what it holds with struct fu_wire and the decoder
 * checks every length against the opcode's structures before any field is
 * used. */
#ifndef FURING_PROTO_DECODE_H
#define FURING_PROTO_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuse_kernel.h"

struct fu_wire {
	const void *in;     /* the fuse_in_header bytes */
	size_t in_len;      /* bytes available there (>= 40 or the request is malformed) */
	const void *arg;    /* legacy: everything after the in_header; ring: op_in */
	size_t arg_len;     /* legacy: bytes after the in_header; ring: capacity of op_in (128) */
	const void *data;   /* ring: the payload buffer; legacy: NULL */
	size_t data_len;    /* ring: ring_ent_in_out.payload_sz, which the transport has
	                     * already checked against its buffer's size; legacy: 0 */
	bool split;         /* true for the ring layout */
	/* Ring, zero-copy WRITE (Linux 7.3): the data_len bytes are the
	 * caller's pages lent to the server's buffer table, not mapped here;
	 * data is NULL. Only a WRITE without extensions may say so. */
	bool data_lent;
};

/* A copy of the opcode's header, so that the view never aliases a buffer that
 * the reply will overwrite. */
union fu_op_arg {
	struct fuse_init_in init; /* zero-filled past what an old kernel sent */
	struct fuse_getattr_in getattr;
	struct fuse_setattr_in setattr;
	struct fuse_open_in open;
	struct fuse_release_in release;
	struct fuse_flush_in flush;
	struct fuse_read_in read;
	struct fuse_write_in write;
	struct fuse_fsync_in fsync;
	struct fuse_fallocate_in fallocate;
	struct fuse_lseek_in lseek;
	struct fuse_forget_in forget;
	struct fuse_batch_forget_in batch_forget;
	struct fuse_interrupt_in interrupt;
	struct fuse_mknod_in mknod;
	struct fuse_mkdir_in mkdir;
	struct fuse_rename_in rename;
	struct fuse_rename2_in rename2;
	struct fuse_link_in link;
	struct fuse_create_in create;
	struct fuse_access_in access;
	struct fuse_setxattr_in setxattr; /* setxattr_flags 0 without FUSE_SETXATTR_EXT */
	struct fuse_getxattr_in getxattr; /* GETXATTR, LISTXATTR */
	struct fuse_lk_in lk;             /* GETLK, SETLK, SETLKW */
	struct fuse_poll_in poll;
	struct fuse_ioctl_in ioctl;
	struct fuse_copy_file_range_in copy_file_range; /* both forms */
	struct fuse_statx_in statx;
	struct fuse_syncfs_in syncfs;
	struct fuse_notify_retrieve_in notify_reply;
};

struct fu_msg {
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid, gid, pid;
	union fu_op_arg arg;
	/* Names, NUL-terminated inside the request (LOOKUP, MKDIR, LINK,
	 * xattr names, ...; two for RENAME, RENAME2 and SYMLINK); NULL when the
	 * opcode has none. */
	const char *name, *name2;
	/* Bytes after the header and names, pointing into the transport's
	 * buffer: WRITE data (arg.write.size bytes), BATCH_FORGET entries
	 * (arg.batch_forget.count of them), the SETXATTR value
	 * (arg.setxattr.size), IOCTL input (arg.ioctl.in_size) or NOTIFY_REPLY
	 * data (arg.notify_reply.size). NULL when there are none. */
	const void *data;
	uint32_t data_len;
};

enum fu_decode_result {
	FU_DECODE_OK = 0,
	FU_DECODE_REPLY_ERR, /* malformed or unknown: answer with msg->unique and *err */
	FU_DECODE_DROP,      /* malformed and no answer is allowed (FORGET...) or possible (no header) */
};

/* Limits the decoder enforces beyond the structures themselves. */
struct fu_decode_limits {
	uint32_t max_write; /* negotiated; a WRITE larger than this is malformed */
	bool setxattr_ext;  /* FUSE_SETXATTR_EXT agreed: SETXATTR has the 16-byte header */
};

/* Validates @w and fills @msg. On FU_DECODE_REPLY_ERR, *err is the positive
 * errno to answer with (EIO for malformed, ENOSYS for unknown opcodes) and
 * msg->unique/opcode are set. Never reads outside the given lengths. */
enum fu_decode_result fu_decode(const struct fu_wire *w, const struct fu_decode_limits *lim,
				struct fu_msg *msg, int *err);

/* True for opcodes the kernel never expects an answer to. */
bool fu_opcode_no_reply(uint32_t opcode);
/* "READ", "WRITE", ... ("UNKNOWN" for opcodes this header does not know). */
const char *fu_opcode_name(uint32_t opcode);

#endif
