/* From a decoded request to the filesystem's operation: the typed arguments
 * each operation takes, built from the wire structs, and what happens when
 * the filesystem left an operation out. */
#include <errno.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>

#include "engine.h"
#include "proto/encode.h"

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

static void answer_err(struct furing_req *r, int err)
{
	fu_answer(r, err, NULL, 0);
}

/* The kernel's 32-bit device numbers (new_encode_dev) -> dev_t. */
static dev_t decode_dev(uint32_t d)
{
	return makedev((d & 0xfff00u) >> 8, (d & 0xffu) | ((d >> 12) & 0xfff00u));
}

static struct furing_file *file_of(struct furing_req *r, uint64_t fh, uint32_t flags)
{
	struct furing_file *fi = &r->fi[0];

	memset(fi, 0, sizeof(*fi));
	fi->fh = fh;
	fi->flags = (int)flags;
	return fi;
}

static void with_lock_owner(struct furing_file *fi, uint64_t owner)
{
	fi->lock_owner = owner;
	fi->req_flags |= FURING_FILE_LOCK_OWNER;
}

/* ---- per opcode, where the arguments need building ---- */

static void do_forget_batch(struct furing_req *r)
{
	const struct furing_ops *o = &r->w->s->ops;
	void *fs = r->w->s->fs;
	uint32_t n = r->msg.arg.batch_forget.count;
	const unsigned char *p = r->msg.data;

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

static void do_setattr(struct furing_req *r)
{
	const struct fuse_setattr_in *in = &r->msg.arg.setattr;
	struct furing_setattr *a = &r->argv.setattr;
	struct furing_file *fi = NULL;

	memset(a, 0, sizeof(*a));
	a->valid = in->valid & (FURING_SET_MODE | FURING_SET_UID | FURING_SET_GID | FURING_SET_SIZE |
				FURING_SET_ATIME | FURING_SET_MTIME | FURING_SET_ATIME_NOW | FURING_SET_MTIME_NOW |
				FURING_SET_CTIME | FURING_SET_KILL_SUIDGID);
	a->mode = in->mode;
	a->uid = in->uid;
	a->gid = in->gid;
	a->size = in->size;
	a->atime = (struct timespec){(time_t)in->atime, in->atimensec};
	a->mtime = (struct timespec){(time_t)in->mtime, in->mtimensec};
	a->ctime = (struct timespec){(time_t)in->ctime, in->ctimensec};
	if (in->valid & FATTR_FH) {
		fi = file_of(r, in->fh, 0);
		if (in->valid & FATTR_LOCKOWNER)
			with_lock_owner(fi, in->lock_owner);
	}
	r->w->s->ops.setattr(r, r->msg.nodeid, a, fi);
}

static void do_read(struct furing_req *r, bool dir, bool plus)
{
	const struct fuse_read_in *in = &r->msg.arg.read;
	const struct furing_ops *o = &r->w->s->ops;
	struct furing_file *fi = file_of(r, in->fh, in->flags);
	uint32_t size = in->size;

	if (in->read_flags & FUSE_READ_LOCKOWNER)
		with_lock_owner(fi, in->lock_owner);
	/* A zero-copy READ lands in the caller's pages, which hold all of it. */
	const size_t room = r->zc && !dir ? r->zc_len : furing_req_buf_size(r);
	if (size > room) {
		if (!dir) { /* the kernel never asks for more than max_read */
			answer_err(r, EINVAL);
			return;
		}
		size = (uint32_t)furing_req_buf_size(r);
	}
	if (!dir)
		o->read(r, r->msg.nodeid, in->offset, size, fi);
	else if (plus)
		o->readdirplus(r, r->msg.nodeid, in->offset, size, fi);
	else
		o->readdir(r, r->msg.nodeid, in->offset, size, fi);
}

static void do_write(struct furing_req *r)
{
	const struct fuse_write_in *in = &r->msg.arg.write;
	struct furing_file *fi = file_of(r, in->fh, in->flags);

	if (in->write_flags & FUSE_WRITE_LOCKOWNER)
		with_lock_owner(fi, in->lock_owner);
	if (in->write_flags & FUSE_WRITE_CACHE)
		fi->req_flags |= FURING_FILE_WRITE_CACHE;
	if (in->write_flags & FUSE_WRITE_KILL_SUIDGID)
		fi->req_flags |= FURING_FILE_KILL_SUIDGID;
	r->w->s->ops.write(r, r->msg.nodeid, in->offset, r->msg.data, r->msg.data_len, fi);
}

static void do_release(struct furing_req *r, bool dir)
{
	const struct fuse_release_in *in = &r->msg.arg.release;
	const struct furing_ops *o = &r->w->s->ops;
	struct furing_file *fi = file_of(r, in->fh, in->flags);

	if (in->release_flags & FUSE_RELEASE_FLUSH)
		fi->req_flags |= FURING_FILE_FLUSH;
	if (in->release_flags & FUSE_RELEASE_FLOCK_UNLOCK)
		fi->req_flags |= FURING_FILE_FLOCK_UNLOCK;
	if (in->release_flags & (FUSE_RELEASE_FLUSH | FUSE_RELEASE_FLOCK_UNLOCK) || in->lock_owner)
		with_lock_owner(fi, in->lock_owner);
	if (dir ? !o->releasedir : !o->release) {
		answer_err(r, 0); /* nothing to free */
		return;
	}
	(dir ? o->releasedir : o->release)(r, r->msg.nodeid, fi);
}

/* OPEN/OPENDIR without an operation: with NO_OPEN(DIR)_SUPPORT granted,
 * ENOSYS makes the kernel stop asking; without it, success with handle 0. */
static void open_default(struct furing_req *r, uint64_t cap)
{
	if (r->w->s->conn.granted & cap) {
		answer_err(r, ENOSYS);
		return;
	}
	struct furing_open o = {0};
	furing_reply_open(r, &o);
}

static void do_open(struct furing_req *r, bool dir)
{
	const struct fuse_open_in *in = &r->msg.arg.open;
	const struct furing_ops *o = &r->w->s->ops;
	struct furing_file *fi = file_of(r, 0, in->flags);

	if (in->open_flags & FUSE_OPEN_KILL_SUIDGID)
		fi->req_flags |= FURING_FILE_KILL_SUIDGID;
	if (!dir && o->open)
		o->open(r, r->msg.nodeid, fi);
	else if (dir && o->opendir)
		o->opendir(r, r->msg.nodeid, fi);
	else
		open_default(r, dir ? FURING_CAP_NO_OPENDIR_SUPPORT : FURING_CAP_NO_OPEN_SUPPORT);
}

static void do_create(struct furing_req *r, bool tmpfile)
{
	const struct fuse_create_in *in = &r->msg.arg.create;
	const struct furing_ops *o = &r->w->s->ops;
	struct furing_file *fi = file_of(r, 0, in->flags);

	if (in->open_flags & FUSE_OPEN_KILL_SUIDGID)
		fi->req_flags |= FURING_FILE_KILL_SUIDGID;
	r->ctx.umask = in->umask;
	if (tmpfile)
		o->tmpfile(r, r->msg.nodeid, in->mode, fi);
	else
		o->create(r, r->msg.nodeid, r->msg.name, in->mode, fi);
}

static void do_lock(struct furing_req *r)
{
	const struct fuse_lk_in *in = &r->msg.arg.lk;
	const struct furing_ops *o = &r->w->s->ops;
	struct furing_file *fi = file_of(r, in->fh, 0);
	uint32_t op = r->msg.opcode;

	with_lock_owner(fi, in->owner);
	if (in->lk_flags & FUSE_LK_FLOCK) {
		/* flock(2) travels as SETLK(W) with a whole-file lock type. */
		if (op == FUSE_GETLK || !o->flock) {
			answer_err(r, ENOSYS);
			return;
		}
		int how = in->lk.type == F_RDLCK ? LOCK_SH : in->lk.type == F_WRLCK ? LOCK_EX : LOCK_UN;
		if (op == FUSE_SETLK)
			how |= LOCK_NB;
		o->flock(r, r->msg.nodeid, fi, how);
		return;
	}
	fu_lock_to_flock(&in->lk, &r->argv.lock);
	if (op == FUSE_GETLK) {
		if (!o->getlk) {
			answer_err(r, ENOSYS);
			return;
		}
		o->getlk(r, r->msg.nodeid, fi, &r->argv.lock);
		return;
	}
	if (!o->setlk) {
		answer_err(r, ENOSYS);
		return;
	}
	o->setlk(r, r->msg.nodeid, fi, &r->argv.lock, op == FUSE_SETLKW);
}

static void do_copy_file_range(struct furing_req *r)
{
	const struct fuse_copy_file_range_in *in = &r->msg.arg.copy_file_range;
	struct furing_file *fi_in = file_of(r, in->fh_in, 0);
	struct furing_file *fi_out = &r->fi[1];

	memset(fi_out, 0, sizeof(*fi_out));
	fi_out->fh = in->fh_out;
	r->w->s->ops.copy_file_range(r, r->msg.nodeid, in->off_in, fi_in, in->nodeid_out, in->off_out, fi_out, in->len,
				     in->flags);
}

static void do_notify_reply(struct furing_req *r)
{
	struct fu_session *s = r->w->s;
	const struct fuse_notify_retrieve_in *in = &r->msg.arg.notify_reply;
	void *cookie = NULL;

	/* Not ours (a stale or forged unique): nothing to call. */
	if (fu_retrieve_take(s, r->msg.unique, &cookie) && s->ops.retrieve_reply)
		s->ops.retrieve_reply(r, cookie, r->msg.nodeid, in->offset, r->msg.data, r->msg.data_len);
	fu_no_answer(r);
}

/* ---- the table ---- */

/* True when the filesystem implements the opcode. */
static bool implemented(const struct furing_ops *o, uint32_t op)
{
	switch (op) {
	case FUSE_LOOKUP: return o->lookup;
	case FUSE_GETATTR: return o->getattr;
	case FUSE_SETATTR: return o->setattr;
	case FUSE_READLINK: return o->readlink;
	case FUSE_SYMLINK: return o->symlink;
	case FUSE_MKNOD: return o->mknod;
	case FUSE_MKDIR: return o->mkdir;
	case FUSE_UNLINK: return o->unlink;
	case FUSE_RMDIR: return o->rmdir;
	case FUSE_RENAME: case FUSE_RENAME2: return o->rename;
	case FUSE_LINK: return o->link;
	case FUSE_READ: return o->read;
	case FUSE_WRITE: return o->write;
	case FUSE_STATFS: return o->statfs;
	case FUSE_FSYNC: return o->fsync;
	case FUSE_SETXATTR: return o->setxattr;
	case FUSE_GETXATTR: return o->getxattr;
	case FUSE_LISTXATTR: return o->listxattr;
	case FUSE_REMOVEXATTR: return o->removexattr;
	case FUSE_FLUSH: return o->flush;
	case FUSE_READDIR: return o->readdir;
	case FUSE_READDIRPLUS: return o->readdirplus;
	case FUSE_FSYNCDIR: return o->fsyncdir;
	case FUSE_ACCESS: return o->access;
	case FUSE_CREATE: return o->create;
	case FUSE_TMPFILE: return o->tmpfile;
	case FUSE_POLL: return o->poll;
	case FUSE_IOCTL: return o->ioctl;
	case FUSE_FALLOCATE: return o->fallocate;
	case FUSE_LSEEK: return o->lseek;
	case FUSE_COPY_FILE_RANGE: case FUSE_COPY_FILE_RANGE_64: return o->copy_file_range;
	case FUSE_STATX: return o->statx;
	case FUSE_SYNCFS: return o->syncfs;
	default: return true; /* the engine's own, or checked where they are served */
	}
}

/* The opcodes are served in four groups, each a switch that returns false
 * for an opcode that is not its own (or that it leaves to ENOSYS). */

/* The engine's own: forgets, interrupts, notify replies, INIT, DESTROY. */
static bool dispatch_engine(struct furing_req *r)
{
	struct fu_session *s = r->w->s;
	const struct furing_ops *o = &s->ops;
	const union fu_op_arg *a = &r->msg.arg;
	const uint64_t ino = r->msg.nodeid;

	switch (r->msg.opcode) {
	case FUSE_FORGET:
		if (o->forget) {
			o->forget(s->fs, ino, a->forget.nlookup);
		} else if (o->forget_multi) {
			struct furing_forget one = {ino, a->forget.nlookup};
			o->forget_multi(s->fs, 1, &one);
		}
		fu_no_answer(r);
		return true;
	case FUSE_BATCH_FORGET:
		do_forget_batch(r);
		return true;
	case FUSE_INTERRUPT:
		/* Recorded for furing_req_interrupted; the request itself is
		 * always answered (doc/protocol.md 3.3): on the ring an INTERRUPT
		 * cannot be answered at all. */
		fu_note_interrupt(s, a->interrupt.unique);
		if (o->interrupt)
			o->interrupt(s->fs, a->interrupt.unique);
		fu_no_answer(r);
		return true;
	case FUSE_NOTIFY_REPLY:
		do_notify_reply(r);
		return true;
	case FUSE_INIT:
		answer_err(r, EPROTO); /* negotiated once, before the workers started */
		return true;
	case FUSE_DESTROY:
		answer_err(r, 0);
		return true;
	default:
		return false;
	}
}

/* The namespace: lookups, links, directories, renames. */
static bool dispatch_names(struct furing_req *r)
{
	const struct furing_ops *o = &r->w->s->ops;
	const struct fu_msg *m = &r->msg;
	const union fu_op_arg *a = &m->arg;
	const uint64_t ino = m->nodeid;

	switch (m->opcode) {
	case FUSE_LOOKUP:
		o->lookup(r, ino, m->name);
		return true;
	case FUSE_READLINK:
		o->readlink(r, ino);
		return true;
	case FUSE_SYMLINK:
		/* The link's name first, then its target. */
		o->symlink(r, m->name2, ino, m->name);
		return true;
	case FUSE_MKNOD:
		r->ctx.umask = a->mknod.umask;
		o->mknod(r, ino, m->name, a->mknod.mode, decode_dev(a->mknod.rdev));
		return true;
	case FUSE_MKDIR:
		r->ctx.umask = a->mkdir.umask;
		o->mkdir(r, ino, m->name, (a->mkdir.mode & ~S_IFMT) | S_IFDIR);
		return true;
	case FUSE_UNLINK:
		o->unlink(r, ino, m->name);
		return true;
	case FUSE_RMDIR:
		o->rmdir(r, ino, m->name);
		return true;
	case FUSE_RENAME:
		o->rename(r, ino, m->name, a->rename.newdir, m->name2, 0);
		return true;
	case FUSE_RENAME2:
		o->rename(r, ino, m->name, a->rename2.newdir, m->name2, a->rename2.flags);
		return true;
	case FUSE_LINK:
		o->link(r, a->link.oldnodeid, ino, m->name);
		return true;
	default:
		return false;
	}
}

/* Open files and directories: open, I/O, flush, sync, release. */
static bool dispatch_files(struct furing_req *r)
{
	const struct furing_ops *o = &r->w->s->ops;
	const union fu_op_arg *a = &r->msg.arg;
	const uint64_t ino = r->msg.nodeid;

	switch (r->msg.opcode) {
	case FUSE_OPEN:
		do_open(r, false);
		return true;
	case FUSE_OPENDIR:
		do_open(r, true);
		return true;
	case FUSE_CREATE:
		do_create(r, false);
		return true;
	case FUSE_TMPFILE:
		do_create(r, true);
		return true;
	case FUSE_READ:
		do_read(r, false, false);
		return true;
	case FUSE_READDIR:
		do_read(r, true, false);
		return true;
	case FUSE_READDIRPLUS:
		do_read(r, true, true);
		return true;
	case FUSE_WRITE:
		do_write(r);
		return true;
	case FUSE_FLUSH: {
		struct furing_file *fi = file_of(r, a->flush.fh, 0);
		with_lock_owner(fi, a->flush.lock_owner);
		o->flush(r, ino, fi);
		return true;
	}
	case FUSE_RELEASE:
		do_release(r, false);
		return true;
	case FUSE_RELEASEDIR:
		do_release(r, true);
		return true;
	case FUSE_FSYNC:
		o->fsync(r, ino, a->fsync.fsync_flags & FUSE_FSYNC_FDATASYNC, file_of(r, a->fsync.fh, 0));
		return true;
	case FUSE_FSYNCDIR:
		if (!o->fsyncdir)
			return false;
		o->fsyncdir(r, ino, a->fsync.fsync_flags & FUSE_FSYNC_FDATASYNC, file_of(r, a->fsync.fh, 0));
		return true;
	case FUSE_FALLOCATE:
		o->fallocate(r, ino, (int)a->fallocate.mode, a->fallocate.offset, a->fallocate.length,
			     file_of(r, a->fallocate.fh, 0));
		return true;
	case FUSE_LSEEK:
		o->lseek(r, ino, a->lseek.offset, (int)a->lseek.whence, file_of(r, a->lseek.fh, 0));
		return true;
	case FUSE_COPY_FILE_RANGE:
	case FUSE_COPY_FILE_RANGE_64:
		do_copy_file_range(r);
		return true;
	default:
		return false;
	}
}

/* Attributes, extended attributes, locks, poll, ioctl, the filesystem. */
static bool dispatch_attrs(struct furing_req *r)
{
	const struct furing_ops *o = &r->w->s->ops;
	const struct fu_msg *m = &r->msg;
	const union fu_op_arg *a = &m->arg;
	const uint64_t ino = m->nodeid;

	switch (m->opcode) {
	case FUSE_GETATTR:
		o->getattr(r, ino, (a->getattr.getattr_flags & FUSE_GETATTR_FH) ? file_of(r, a->getattr.fh, 0) : NULL);
		return true;
	case FUSE_SETATTR:
		do_setattr(r);
		return true;
	case FUSE_STATFS:
		o->statfs(r, ino);
		return true;
	case FUSE_STATX:
		o->statx(r, ino, (int)a->statx.sx_flags, a->statx.sx_mask,
			 (a->statx.getattr_flags & FUSE_GETATTR_FH) ? file_of(r, a->statx.fh, 0) : NULL);
		return true;
	case FUSE_ACCESS:
		o->access(r, ino, (int)a->access.mask);
		return true;
	case FUSE_SETXATTR:
		o->setxattr(r, ino, m->name, m->data, m->data_len, (int)a->setxattr.flags, a->setxattr.setxattr_flags);
		return true;
	case FUSE_GETXATTR:
		o->getxattr(r, ino, m->name, a->getxattr.size);
		return true;
	case FUSE_LISTXATTR:
		o->listxattr(r, ino, a->getxattr.size);
		return true;
	case FUSE_REMOVEXATTR:
		o->removexattr(r, ino, m->name);
		return true;
	case FUSE_GETLK:
	case FUSE_SETLK:
	case FUSE_SETLKW:
		do_lock(r);
		return true;
	case FUSE_POLL:
		o->poll(r, ino, file_of(r, a->poll.fh, 0), a->poll.kh, a->poll.flags & FUSE_POLL_SCHEDULE_NOTIFY,
			a->poll.events);
		return true;
	case FUSE_IOCTL: {
		const struct fuse_ioctl_in *in = &a->ioctl;
		/* Unrestricted ioctls (their buffers described by the server)
		 * are CUSE's; a filesystem gets the restricted kind. */
		if (in->flags & FUSE_IOCTL_UNRESTRICTED) {
			answer_err(r, ENOSYS);
			return true;
		}
		o->ioctl(r, ino, in->cmd, in->arg, file_of(r, in->fh, 0), in->flags & (FUSE_IOCTL_COMPAT | FUSE_IOCTL_DIR),
			 m->data, m->data_len, in->out_size);
		return true;
	}
	case FUSE_SYNCFS:
		o->syncfs(r, ino);
		return true;
	default:
		return false;
	}
}

void fu_dispatch(struct furing_req *r)
{
	const struct fu_msg *m = &r->msg;

	r->ctx = (struct furing_ctx){.uid = m->uid, .gid = m->gid, .pid = (pid_t)m->pid, .umask = 0};
	if (!implemented(&r->w->s->ops, m->opcode)) {
		answer_err(r, ENOSYS);
		return;
	}
	if (dispatch_files(r) || dispatch_names(r) || dispatch_attrs(r) || dispatch_engine(r))
		return;
	answer_err(r, ENOSYS);
}
