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
#include "opcodes.h"

#include <errno.h>
#include <string.h>

/* What follows an opcode's header. */
enum fu_tail {
	TAIL_UNSERVED, /* not an opcode furing serves: ENOSYS (0, so that gaps in the table are) */
	TAIL_NONE,     /* nothing: the data region must be empty */
	TAIL_INIT,     /* INIT: variable header (16..64 bytes), anything after it ignored */
	TAIL_NAME,     /* one non-empty NUL-terminated name filling the region */
	TAIL_NAME2,    /* two of them (RENAME, RENAME2, SYMLINK) */
	TAIL_WRITE,    /* exactly write_in.size bytes of data */
	TAIL_FORGETS,  /* batch_forget_in.count fuse_forget_one entries */
	TAIL_XATTR,    /* a name, then exactly setxattr_in.size bytes of value */
	TAIL_IOCTL,    /* exactly ioctl_in.in_size bytes of input */
	TAIL_RETRIEVED, /* exactly notify_retrieve_in.size bytes of cached data */
};

/* The protocol's columns of opcodes.h. */
struct fu_op_desc {
	const char *name;
	uint8_t tail;
	uint8_t hdr; /* the op header's size; for INIT the minimum */
	bool silent; /* never answered */
};

#define ROW(op, header, t, answered, serve, needs) \
	[FUSE_##op] = {.name = #op, .tail = TAIL_##t, .hdr = (header), .silent = !(answered)},

static const struct fu_op_desc op_table[FUSE_OPCODE_MAX] = {FU_OPCODES(ROW)};

#undef ROW

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
	if (ih.opcode >= FUSE_OPCODE_MAX || op_table[ih.opcode].tail == TAIL_UNSERVED)
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
	return opcode < FUSE_OPCODE_MAX && op_table[opcode].silent;
}

const char *fu_opcode_name(uint32_t opcode)
{
	if (opcode == CUSE_INIT)
		return "CUSE_INIT";
	if (opcode < FUSE_OPCODE_MAX && op_table[opcode].name != NULL)
		return op_table[opcode].name;
	return "UNKNOWN";
}
