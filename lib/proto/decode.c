/* Strict request decoding (see decode.h and doc/protocol.md 3.1).
 *
 * Order of the checks, the same for both layouts:
 *   1. in_len >= 40, else DROP (no unique to answer to);
 *   2. framing: in_header.len against the transport's lengths (EIO);
 *   3. opcode known and supported, else ENOSYS;
 *   4. extensions (total_extlen * 8 bytes at the end of the data region) fit
 *      and are cut off (EIO);
 *   5. the op header is complete (EIO) and is copied into msg->arg;
 *   6. what follows the header has exactly the shape the opcode allows: no
 *      bytes at all, one or two names, a name and an xattr value, exactly
 *      the data the header announces (WRITE, IOCTL, NOTIFY_REPLY) or forget
 *      entries (EIO).
 * Every failure of an opcode that must never be answered (FORGET,
 * BATCH_FORGET, INTERRUPT) is a DROP instead of an EIO.
 *
 * Nothing here reads outside [in, in+in_len), [arg, arg+arg_len) and
 * [data, data+data_len), and nothing dereferences a NULL pointer even for a
 * zero length. */
#include "decode.h"

#include <errno.h>
#include <string.h>

/* What follows an opcode's header. */
enum fu_tail {
	TAIL_NONE,    /* nothing: the data region must be empty */
	TAIL_INIT,    /* INIT: variable header (16..64 bytes), anything after it ignored */
	TAIL_NAME,    /* one non-empty NUL-terminated name filling the region */
	TAIL_NAME2,   /* two of them (RENAME, RENAME2, SYMLINK) */
	TAIL_WRITE,   /* exactly write_in.size bytes of data */
	TAIL_FORGETS, /* batch_forget_in.count fuse_forget_one entries */
	TAIL_XATTR,   /* a name, then exactly setxattr_in.size bytes of value */
	TAIL_IOCTL,   /* exactly ioctl_in.in_size bytes of input */
	TAIL_RETRIEVED, /* exactly notify_retrieve_in.size bytes of cached data */
};

struct fu_op_desc {
	uint8_t supported;
	uint8_t tail;
	uint8_t hdr; /* the op header's size; for INIT the minimum */
};

#define OP(code, size, t) [code] = { .supported = 1, .tail = (t), .hdr = (size) }

static const struct fu_op_desc op_table[FUSE_OPCODE_MAX] = {
	OP(FUSE_INIT, FUSE_INIT_IN_COMPAT_SIZE, TAIL_INIT),
	OP(FUSE_DESTROY, 0, TAIL_NONE),
	OP(FUSE_LOOKUP, 0, TAIL_NAME),
	OP(FUSE_FORGET, sizeof(struct fuse_forget_in), TAIL_NONE),
	OP(FUSE_BATCH_FORGET, sizeof(struct fuse_batch_forget_in), TAIL_FORGETS),
	OP(FUSE_INTERRUPT, sizeof(struct fuse_interrupt_in), TAIL_NONE),
	OP(FUSE_GETATTR, sizeof(struct fuse_getattr_in), TAIL_NONE),
	OP(FUSE_SETATTR, sizeof(struct fuse_setattr_in), TAIL_NONE),
	OP(FUSE_READLINK, 0, TAIL_NONE),
	OP(FUSE_SYMLINK, 0, TAIL_NAME2),
	OP(FUSE_MKNOD, sizeof(struct fuse_mknod_in), TAIL_NAME),
	OP(FUSE_MKDIR, sizeof(struct fuse_mkdir_in), TAIL_NAME),
	OP(FUSE_UNLINK, 0, TAIL_NAME),
	OP(FUSE_RMDIR, 0, TAIL_NAME),
	OP(FUSE_RENAME, sizeof(struct fuse_rename_in), TAIL_NAME2),
	OP(FUSE_RENAME2, sizeof(struct fuse_rename2_in), TAIL_NAME2),
	OP(FUSE_LINK, sizeof(struct fuse_link_in), TAIL_NAME),
	OP(FUSE_CREATE, sizeof(struct fuse_create_in), TAIL_NAME),
	OP(FUSE_ACCESS, sizeof(struct fuse_access_in), TAIL_NONE),
	OP(FUSE_OPEN, sizeof(struct fuse_open_in), TAIL_NONE),
	OP(FUSE_OPENDIR, sizeof(struct fuse_open_in), TAIL_NONE),
	OP(FUSE_RELEASE, sizeof(struct fuse_release_in), TAIL_NONE),
	OP(FUSE_RELEASEDIR, sizeof(struct fuse_release_in), TAIL_NONE),
	OP(FUSE_FLUSH, sizeof(struct fuse_flush_in), TAIL_NONE),
	OP(FUSE_READ, sizeof(struct fuse_read_in), TAIL_NONE),
	OP(FUSE_READDIR, sizeof(struct fuse_read_in), TAIL_NONE),
	OP(FUSE_READDIRPLUS, sizeof(struct fuse_read_in), TAIL_NONE),
	OP(FUSE_WRITE, sizeof(struct fuse_write_in), TAIL_WRITE),
	OP(FUSE_FSYNC, sizeof(struct fuse_fsync_in), TAIL_NONE),
	OP(FUSE_FSYNCDIR, sizeof(struct fuse_fsync_in), TAIL_NONE),
	OP(FUSE_FALLOCATE, sizeof(struct fuse_fallocate_in), TAIL_NONE),
	OP(FUSE_LSEEK, sizeof(struct fuse_lseek_in), TAIL_NONE),
	OP(FUSE_STATFS, 0, TAIL_NONE),
	/* SETXATTR's header is 16 bytes with FUSE_SETXATTR_EXT: see below. */
	OP(FUSE_SETXATTR, FUSE_COMPAT_SETXATTR_IN_SIZE, TAIL_XATTR),
	OP(FUSE_GETXATTR, sizeof(struct fuse_getxattr_in), TAIL_NAME),
	OP(FUSE_LISTXATTR, sizeof(struct fuse_getxattr_in), TAIL_NONE),
	OP(FUSE_REMOVEXATTR, 0, TAIL_NAME),
	OP(FUSE_GETLK, sizeof(struct fuse_lk_in), TAIL_NONE),
	OP(FUSE_SETLK, sizeof(struct fuse_lk_in), TAIL_NONE),
	OP(FUSE_SETLKW, sizeof(struct fuse_lk_in), TAIL_NONE),
	OP(FUSE_POLL, sizeof(struct fuse_poll_in), TAIL_NONE),
	OP(FUSE_IOCTL, sizeof(struct fuse_ioctl_in), TAIL_IOCTL),
	OP(FUSE_COPY_FILE_RANGE, sizeof(struct fuse_copy_file_range_in), TAIL_NONE),
	OP(FUSE_COPY_FILE_RANGE_64, sizeof(struct fuse_copy_file_range_in), TAIL_NONE),
	OP(FUSE_STATX, sizeof(struct fuse_statx_in), TAIL_NONE),
	OP(FUSE_SYNCFS, sizeof(struct fuse_syncfs_in), TAIL_NONE),
	/* O_TMPFILE: create_in and the placeholder name the VFS gives the dentry. */
	OP(FUSE_TMPFILE, sizeof(struct fuse_create_in), TAIL_NAME),
	OP(FUSE_NOTIFY_REPLY, sizeof(struct fuse_notify_retrieve_in), TAIL_RETRIEVED),
};

#undef OP

_Static_assert(sizeof(struct fuse_init_in) <= sizeof(union fu_op_arg), "INIT header fits the union");
_Static_assert(sizeof(struct fuse_setattr_in) <= 255, "header sizes fit the table");

#define IN_HDR ((size_t)sizeof(struct fuse_in_header))
#define INIT_IN_MAX ((size_t)sizeof(struct fuse_init_in))
#define FORGET_ONE ((uint64_t)sizeof(struct fuse_forget_one))

static enum fu_decode_result fail(bool no_reply, int e, int *err)
{
	if (no_reply) {
		*err = 0;
		return FU_DECODE_DROP;
	}
	*err = e;
	return FU_DECODE_REPLY_ERR;
}

/* Length of a NUL-terminated, non-empty string at the start of [p, p+len),
 * including its NUL; 0 if there is none. */
static size_t name_len(const char *p, size_t len)
{
	if (len == 0 || p == NULL)
		return 0;
	const char *nul = memchr(p, '\0', len);
	if (nul == NULL || nul == p)
		return 0;
	return (size_t)(nul - p) + 1;
}

enum fu_decode_result fu_decode(const struct fu_wire *w, const struct fu_decode_limits *lim,
				struct fu_msg *msg, int *err)
{
	struct fuse_in_header ih;
	int dummy_err;

	if (err == NULL)
		err = &dummy_err;
	*err = 0;
	if (msg == NULL)
		return FU_DECODE_DROP;
	memset(msg, 0, sizeof(*msg));
	if (w == NULL || w->in == NULL || w->in_len < IN_HDR)
		return FU_DECODE_DROP;

	memcpy(&ih, w->in, sizeof(ih));
	msg->opcode = ih.opcode;
	msg->unique = ih.unique;
	msg->nodeid = ih.nodeid;
	msg->uid = ih.uid;
	msg->gid = ih.gid;
	msg->pid = ih.pid;

	const bool no_reply = fu_opcode_no_reply(ih.opcode);
	const char *hdr;   /* the op header's bytes */
	size_t hdr_avail;  /* how many of them there are */
	const char *data;  /* the data region: names, WRITE data, forget entries */
	size_t data_len;
	const size_t ext_len = (size_t)ih.total_extlen * 8;

	/* 2. framing */
	if (ih.len < IN_HDR)
		return fail(no_reply, EIO, err);
	const size_t body_len = (size_t)ih.len - IN_HDR; /* op header + data + extensions */
	if (!w->split) {
		if (body_len != w->arg_len || (w->arg_len != 0 && w->arg == NULL))
			return fail(no_reply, EIO, err);
	} else {
		if (body_len < w->data_len || body_len - w->data_len > w->arg_len)
			return fail(no_reply, EIO, err);
		if ((w->data_len != 0 && w->data == NULL && !w->data_lent) ||
		    (body_len - w->data_len != 0 && w->arg == NULL))
			return fail(no_reply, EIO, err);
	}

	/* 3. opcode */
	if (ih.opcode >= FUSE_OPCODE_MAX || !op_table[ih.opcode].supported)
		return fail(no_reply, ENOSYS, err);
	if (w->data_lent && (ih.opcode != FUSE_WRITE || !w->split || ext_len != 0))
		return fail(no_reply, EIO, err);
	const struct fu_op_desc *op = &op_table[ih.opcode];
	size_t op_hdr = op->hdr;
	if (ih.opcode == FUSE_SETXATTR && lim != NULL && lim->setxattr_ext)
		op_hdr = sizeof(struct fuse_setxattr_in);

	/* 4 + 5. extensions off the end, then the header off the front */
	if (!w->split) {
		if (ext_len > w->arg_len)
			return fail(no_reply, EIO, err);
		size_t rest = w->arg_len - ext_len;
		size_t h = op_hdr;
		if (op->tail == TAIL_INIT)
			h = rest < INIT_IN_MAX ? rest : INIT_IN_MAX;
		if (rest < op_hdr)
			return fail(no_reply, EIO, err);
		hdr = w->arg;
		hdr_avail = h;
		data = h != 0 ? (const char *)w->arg + h : w->arg;
		data_len = rest - h;
	} else {
		if (ext_len > w->data_len)
			return fail(no_reply, EIO, err);
		hdr = w->arg;
		hdr_avail = body_len - w->data_len;
		data = w->data;
		data_len = w->data_len - ext_len;
		/* NOTIFY_REPLY is the exception (seen on 6.18): op_in stays
		 * empty and its header leads the payload, as on /dev/fuse. */
		if (ih.opcode == FUSE_NOTIFY_REPLY && hdr_avail == 0 && data_len >= op_hdr) {
			hdr = data;
			hdr_avail = op_hdr;
			data += op_hdr;
			data_len -= op_hdr;
		}
		if (hdr_avail < op_hdr)
			return fail(no_reply, EIO, err);
		/* The kernel puts exactly the opcode's header in op_in (INIT,
		 * which never comes over the ring, may carry up to 64 bytes). */
		if (op->tail == TAIL_INIT) {
			if (hdr_avail > INIT_IN_MAX)
				hdr_avail = INIT_IN_MAX;
		} else if (hdr_avail != op_hdr) {
			return fail(no_reply, EIO, err);
		}
	}
	if (hdr_avail != 0)
		memcpy(&msg->arg, hdr, hdr_avail);
	if (data_len == 0)
		data = NULL;

	/* 6. what follows the header */
	switch ((enum fu_tail)op->tail) {
	case TAIL_INIT:
		break; /* newer kernels may send more than we know: ignored */
	case TAIL_NONE:
		if (data_len != 0)
			return fail(no_reply, EIO, err);
		break;
	case TAIL_NAME: {
		size_t n = name_len(data, data_len);
		if (n == 0 || n != data_len)
			return fail(no_reply, EIO, err);
		msg->name = data;
		break;
	}
	case TAIL_NAME2: {
		size_t n1 = name_len(data, data_len);
		if (n1 == 0)
			return fail(no_reply, EIO, err);
		size_t n2 = name_len(data + n1, data_len - n1);
		if (n2 == 0 || n1 + n2 != data_len)
			return fail(no_reply, EIO, err);
		msg->name = data;
		msg->name2 = data + n1;
		break;
	}
	case TAIL_WRITE: {
		uint32_t size = msg->arg.write.size;
		uint32_t max = lim != NULL ? lim->max_write : 0;
		if (size > max || data_len != size)
			return fail(no_reply, EIO, err);
		msg->data = data;
		msg->data_len = size;
		break;
	}
	case TAIL_XATTR: {
		size_t n = name_len(data, data_len);
		if (n == 0 || data_len - n != msg->arg.setxattr.size)
			return fail(no_reply, EIO, err);
		msg->name = data;
		msg->data = msg->arg.setxattr.size != 0 ? data + n : NULL;
		msg->data_len = msg->arg.setxattr.size;
		break;
	}
	case TAIL_IOCTL:
		if (data_len != msg->arg.ioctl.in_size)
			return fail(no_reply, EIO, err);
		msg->data = data;
		msg->data_len = (uint32_t)data_len;
		break;
	case TAIL_RETRIEVED: {
		uint32_t size = msg->arg.notify_reply.size;
		uint32_t max = lim != NULL ? lim->max_write : 0;
		if (size > max || data_len != size)
			return fail(no_reply, EIO, err);
		msg->data = data;
		msg->data_len = size;
		break;
	}
	case TAIL_FORGETS: {
		uint64_t bytes = (uint64_t)msg->arg.batch_forget.count * FORGET_ONE; /* < 2^36 */
		if (bytes > data_len || bytes > UINT32_MAX)
			return fail(true, EIO, err);
		msg->data = bytes != 0 ? data : NULL;
		msg->data_len = (uint32_t)bytes;
		break;
	}
	default:
		return fail(no_reply, EIO, err);
	}
	return FU_DECODE_OK;
}

bool fu_opcode_no_reply(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
	       opcode == FUSE_NOTIFY_REPLY;
}

#define NAME(op) [FUSE_##op] = #op

static const char *const op_names[FUSE_OPCODE_MAX] = {
	NAME(LOOKUP),
	NAME(FORGET),
	NAME(GETATTR),
	NAME(SETATTR),
	NAME(READLINK),
	NAME(SYMLINK),
	NAME(MKNOD),
	NAME(MKDIR),
	NAME(UNLINK),
	NAME(RMDIR),
	NAME(RENAME),
	NAME(LINK),
	NAME(OPEN),
	NAME(READ),
	NAME(WRITE),
	NAME(STATFS),
	NAME(RELEASE),
	NAME(FSYNC),
	NAME(SETXATTR),
	NAME(GETXATTR),
	NAME(LISTXATTR),
	NAME(REMOVEXATTR),
	NAME(FLUSH),
	NAME(INIT),
	NAME(OPENDIR),
	NAME(READDIR),
	NAME(RELEASEDIR),
	NAME(FSYNCDIR),
	NAME(GETLK),
	NAME(SETLK),
	NAME(SETLKW),
	NAME(ACCESS),
	NAME(CREATE),
	NAME(INTERRUPT),
	NAME(BMAP),
	NAME(DESTROY),
	NAME(IOCTL),
	NAME(POLL),
	NAME(NOTIFY_REPLY),
	NAME(BATCH_FORGET),
	NAME(FALLOCATE),
	NAME(READDIRPLUS),
	NAME(RENAME2),
	NAME(LSEEK),
	NAME(COPY_FILE_RANGE),
	NAME(SETUPMAPPING),
	NAME(REMOVEMAPPING),
	NAME(SYNCFS),
	NAME(TMPFILE),
	NAME(STATX),
	NAME(COPY_FILE_RANGE_64),
};

#undef NAME

const char *fu_opcode_name(uint32_t opcode)
{
	if (opcode == CUSE_INIT)
		return "CUSE_INIT";
	if (opcode < FUSE_OPCODE_MAX && op_names[opcode] != NULL)
		return op_names[opcode];
	return "UNKNOWN";
}
