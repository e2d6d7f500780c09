/* From a decoded request to the filesystem's operation: the dispatch
 * table, one row per opcode made from proto/opcodes.h, and the opcodes the
 * engine serves itself (forgets, interrupts, notify replies, INIT,
 * DESTROY). The handlers that build an operation's typed arguments are in
 * dispatch_nodes.c (names, attributes, the filesystem) and
 * dispatch_files.c (open files). */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "dispatch.h"

/* Public constants that must equal the kernel's: they are handed through
 * as they come off the wire (FURING_CAP_* are checked in session_init.c). */
_Static_assert(FURING_SET_MODE == FATTR_MODE && FURING_SET_UID == FATTR_UID && FURING_SET_GID == FATTR_GID &&
		       FURING_SET_SIZE == FATTR_SIZE && FURING_SET_ATIME == FATTR_ATIME &&
		       FURING_SET_MTIME == FATTR_MTIME && FURING_SET_ATIME_NOW == FATTR_ATIME_NOW &&
		       FURING_SET_MTIME_NOW == FATTR_MTIME_NOW && FURING_SET_CTIME == FATTR_CTIME &&
		       FURING_SET_KILL_SUIDGID == FATTR_KILL_SUIDGID,
	       "FURING_SET_* are the kernel's FATTR_* bits");
_Static_assert(FURING_OPEN_DIRECT_IO == FOPEN_DIRECT_IO && FURING_OPEN_KEEP_CACHE == FOPEN_KEEP_CACHE &&
		       FURING_OPEN_NONSEEKABLE == FOPEN_NONSEEKABLE && FURING_OPEN_CACHE_DIR == FOPEN_CACHE_DIR &&
		       FURING_OPEN_STREAM == FOPEN_STREAM && FURING_OPEN_NOFLUSH == FOPEN_NOFLUSH &&
		       FURING_OPEN_PARALLEL_WRITES == FOPEN_PARALLEL_DIRECT_WRITES &&
		       FURING_OPEN_PASSTHROUGH == FOPEN_PASSTHROUGH,
	       "FURING_OPEN_* are the kernel's FOPEN_* bits");
_Static_assert(FURING_SETXATTR_ACL_KILL_SGID == FUSE_SETXATTR_ACL_KILL_SGID, "setxattr flags");
_Static_assert(FURING_IOCTL_COMPAT == FUSE_IOCTL_COMPAT && FURING_IOCTL_DIR == FUSE_IOCTL_DIR, "ioctl flags");
_Static_assert(FURING_NOTIFY_EXPIRE_ONLY == FUSE_EXPIRE_ONLY, "inval_entry flags");
_Static_assert(FURING_ROOT_ID == FUSE_ROOT_ID, "the root's node id");

void fu_note_interrupt(struct fu_session *s, uint64_t unique); /* request.c */

/* ---- the table ---- */

struct fu_serve_row {
	void (*serve)(struct furing_req *r);
	/* 1 + the offset in struct furing_ops of the operation the handler
	 * calls, which must be set; 0: the handler runs in any case. An offset
	 * rather than a predicate: one load and a compare, no call, and the
	 * table stays const (the fuzzer changes a session's ops between
	 * inputs, so nothing may be derived from them once). */
	uint16_t needs;
};

#define OPS(member) (offsetof(struct furing_ops, member) + 1)
#define ANY 0
#define ROW(op, header, tail, answered, serve, needs) [FUSE_##op] = {fu_serve_##serve, (needs)},

/* Opcodes with no row (numbers the protocol skips) are refused by the
 * decoder before they get here; their NULL handler is ENOSYS all the same. */
static const struct fu_serve_row serve_table[FUSE_OPCODE_MAX] = {FU_OPCODES(ROW)};

#undef ROW
#undef ANY
#undef OPS

_Static_assert(sizeof(struct furing_ops) < UINT16_MAX, "operation offsets fit the table");

/* What implemented() reads is, in every row, a member the size of a
 * function pointer (in struct furing_ops those are the operations). */
#define OPS(member) sizeof(((struct furing_ops *)0)->member) == sizeof(void (*)(void)) &&
#define ANY
#define ROW(op, header, tail, answered, serve, needs) needs
_Static_assert(FU_OPCODES(ROW) true, "every operation a row needs has a function pointer's size");
#undef ROW
#undef ANY
#undef OPS

/* Whether the operation at @needs - 1 is set. The operations are function
 * pointers of different types, all with one representation on the
 * platforms furing runs on, so the bytes are read as any function pointer
 * type (memcpy: no aliasing of one type by another). */
static bool implemented(const struct furing_ops *o, uint16_t needs)
{
	void (*fn)(void);

	if (!needs)
		return true;
	memcpy(&fn, (const char *)o + needs - 1, sizeof(fn));
	return fn != NULL;
}

void fu_dispatch(struct furing_req *r)
{
	const struct fu_msg *m = &r->msg;
	const struct fu_serve_row *row = m->opcode < FUSE_OPCODE_MAX ? &serve_table[m->opcode] : NULL;

	r->ctx = (struct furing_ctx){.uid = m->uid, .gid = m->gid, .pid = (pid_t)m->pid, .umask = 0};
	if (!row || !row->serve || !implemented(&r->w->s->ops, row->needs)) {
		fu_answer_err(r, ENOSYS);
		return;
	}
	row->serve(r);
}

/* BMAP, SETUPMAPPING, REMOVEMAPPING: the decoder already answers them. */
void fu_serve_enosys(struct furing_req *r)
{
	fu_answer_err(r, ENOSYS);
}

/* ---- the engine's own ---- */

void fu_serve_forget(struct furing_req *r)
{
	const struct furing_ops *o = &r->w->s->ops;
	void *fs = r->w->s->fs;
	const uint64_t nlookup = r->msg.arg.forget.nlookup;

	if (o->forget) {
		o->forget(fs, r->msg.nodeid, nlookup);
	} else if (o->forget_multi) {
		struct furing_forget one = {r->msg.nodeid, nlookup};
		o->forget_multi(fs, 1, &one);
	}
	fu_no_answer(r);
}

void fu_serve_batch_forget(struct furing_req *r)
{
	const struct furing_ops *o = &r->w->s->ops;
	void *fs = r->w->s->fs;
	uint32_t n = r->msg.arg.batch_forget.count;
	const unsigned char *p = r->msg.data;

	/* The entries are handed over in place when they are aligned for
	 * struct furing_forget; otherwise they are copied one at a time. */
	_Static_assert(sizeof(struct furing_forget) == sizeof(struct fuse_forget_one), "forget layouts agree");
	if (o->forget_multi && n && ((uintptr_t)p % _Alignof(struct furing_forget)) == 0) {
		o->forget_multi(fs, n, (const struct furing_forget *)(const void *)p);
	} else if (o->forget || o->forget_multi) {
		for (uint32_t i = 0; i < n; i++) {
			struct furing_forget one;
			memcpy(&one, p + (size_t)i * sizeof(one), sizeof(one));
			if (o->forget)
				o->forget(fs, one.ino, one.nlookup);
			else
				o->forget_multi(fs, 1, &one);
		}
	}
	fu_no_answer(r);
}

void fu_serve_interrupt(struct furing_req *r)
{
	struct fu_session *s = r->w->s;
	const uint64_t unique = r->msg.arg.interrupt.unique;

	/* Recorded for furing_req_interrupted; the request itself is always
	 * answered (doc/protocol.md 3.3): on the ring an INTERRUPT cannot be
	 * answered at all. */
	fu_note_interrupt(s, unique);
	if (s->ops.interrupt)
		s->ops.interrupt(s->fs, unique);
	fu_no_answer(r);
}

void fu_serve_notify_reply(struct furing_req *r)
{
	struct fu_session *s = r->w->s;
	const struct fuse_notify_retrieve_in *in = &r->msg.arg.notify_reply;
	void *cookie = NULL;

	/* Not ours (a stale or forged unique): nothing to call. */
	if (fu_retrieve_take(s, r->msg.unique, &cookie) && s->ops.retrieve_reply)
		s->ops.retrieve_reply(r, cookie, r->msg.nodeid, in->offset, r->msg.data, r->msg.data_len);
	fu_no_answer(r);
}

/* Negotiated once, before the workers started. */
void fu_serve_init(struct furing_req *r)
{
	fu_answer_err(r, EPROTO);
}

void fu_serve_destroy(struct furing_req *r)
{
	fu_answer_err(r, 0);
}
