/* The handlers of the operations on open files and directories: open and
 * create, I/O, flush, sync, release, locks, poll, ioctl. Each builds the
 * request's furing_file from the handle and flags on the wire; where a
 * missing operation has a meaning of its own (open, release, the lock
 * kinds) the handler says so, the rest the dispatch table (dispatch.c) has
 * already answered ENOSYS. */
#include <errno.h>
#include <sys/file.h>

#include "dispatch.h"
#include "proto/encode.h"

/* open, opendir, release and releasedir. */
typedef void file_op(struct furing_req *r, uint64_t ino, const struct furing_file *fi);

/* ---- open, create ---- */

/* OPEN and OPENDIR. Without the operation: with NO_OPEN(DIR)_SUPPORT
 * granted, ENOSYS makes the kernel stop asking; without it, success with
 * handle 0. */
static void open_node(struct furing_req *r, file_op *op, uint64_t no_support_cap)
{
	const struct fuse_open_in *in = &r->msg.arg.open;
	struct furing_file *fi = fu_file_of(r, 0, in->flags);

	if (in->open_flags & FUSE_OPEN_KILL_SUIDGID)
		fi->req_flags |= FURING_FILE_KILL_SUIDGID;
	if (op) {
		op(r, r->msg.nodeid, fi);
	} else if (r->w->s->conn.granted & no_support_cap) {
		fu_answer_err(r, ENOSYS);
	} else {
		struct furing_open o = {0};
		furing_reply_open(r, &o);
	}
}

void fu_serve_open(struct furing_req *r)
{
	open_node(r, r->w->s->ops.open, FURING_CAP_NO_OPEN_SUPPORT);
}

void fu_serve_opendir(struct furing_req *r)
{
	open_node(r, r->w->s->ops.opendir, FURING_CAP_NO_OPENDIR_SUPPORT);
}

/* CREATE and TMPFILE share create_in. */
static struct furing_file *create_file(struct furing_req *r)
{
	const struct fuse_create_in *in = &r->msg.arg.create;
	struct furing_file *fi = fu_file_of(r, 0, in->flags);

	if (in->open_flags & FUSE_OPEN_KILL_SUIDGID)
		fi->req_flags |= FURING_FILE_KILL_SUIDGID;
	r->ctx.umask = in->umask;
	return fi;
}

void fu_serve_create(struct furing_req *r)
{
	struct furing_file *fi = create_file(r);

	r->w->s->ops.create(r, r->msg.nodeid, r->msg.name, r->msg.arg.create.mode, fi);
}

void fu_serve_tmpfile(struct furing_req *r)
{
	struct furing_file *fi = create_file(r);

	r->w->s->ops.tmpfile(r, r->msg.nodeid, r->msg.arg.create.mode, fi);
}

/* ---- I/O ---- */

/* READ, READDIR and READDIRPLUS share read_in. */
static struct furing_file *read_file(struct furing_req *r)
{
	const struct fuse_read_in *in = &r->msg.arg.read;
	struct furing_file *fi = fu_file_of(r, in->fh, in->flags);

	if (in->read_flags & FUSE_READ_LOCKOWNER)
		fu_with_lock_owner(fi, in->lock_owner);
	return fi;
}

void fu_serve_read(struct furing_req *r)
{
	const struct fuse_read_in *in = &r->msg.arg.read;
	struct furing_file *fi = read_file(r);
	/* A zero-copy READ lands in the caller's pages, which hold all of it. */
	const size_t room = r->zc ? r->zc_len : furing_req_buf_size(r);

	if (in->size > room) { /* the kernel never asks for more than max_read */
		fu_answer_err(r, EINVAL);
		return;
	}
	r->w->s->ops.read(r, r->msg.nodeid, in->offset, in->size, fi);
}

/* A listing larger than the buffer is cut to it (a listing may always
 * come back shorter than asked). */
static uint32_t listing_size(struct furing_req *r)
{
	const size_t room = furing_req_buf_size(r);

	return r->msg.arg.read.size > room ? (uint32_t)room : r->msg.arg.read.size;
}

void fu_serve_readdir(struct furing_req *r)
{
	struct furing_file *fi = read_file(r);

	r->w->s->ops.readdir(r, r->msg.nodeid, r->msg.arg.read.offset, listing_size(r), fi);
}

void fu_serve_readdirplus(struct furing_req *r)
{
	struct furing_file *fi = read_file(r);

	r->w->s->ops.readdirplus(r, r->msg.nodeid, r->msg.arg.read.offset, listing_size(r), fi);
}

void fu_serve_write(struct furing_req *r)
{
	const struct fuse_write_in *in = &r->msg.arg.write;
	struct furing_file *fi = fu_file_of(r, in->fh, in->flags);

	if (in->write_flags & FUSE_WRITE_LOCKOWNER)
		fu_with_lock_owner(fi, in->lock_owner);
	if (in->write_flags & FUSE_WRITE_CACHE)
		fi->req_flags |= FURING_FILE_WRITE_CACHE;
	if (in->write_flags & FUSE_WRITE_KILL_SUIDGID)
		fi->req_flags |= FURING_FILE_KILL_SUIDGID;
	r->w->s->ops.write(r, r->msg.nodeid, in->offset, r->msg.data, r->msg.data_len, fi);
}

void fu_serve_fallocate(struct furing_req *r)
{
	const struct fuse_fallocate_in *in = &r->msg.arg.fallocate;

	r->w->s->ops.fallocate(r, r->msg.nodeid, (int)in->mode, in->offset, in->length, fu_file_of(r, in->fh, 0));
}

void fu_serve_lseek(struct furing_req *r)
{
	const struct fuse_lseek_in *in = &r->msg.arg.lseek;

	r->w->s->ops.lseek(r, r->msg.nodeid, in->offset, (int)in->whence, fu_file_of(r, in->fh, 0));
}

/* COPY_FILE_RANGE and COPY_FILE_RANGE_64 (which only widens the answer). */
void fu_serve_copy_file_range(struct furing_req *r)
{
	const struct fuse_copy_file_range_in *in = &r->msg.arg.copy_file_range;
	struct furing_file *fi_in = fu_file_of(r, in->fh_in, 0);
	struct furing_file *fi_out = &r->fi[1];

	memset(fi_out, 0, sizeof(*fi_out));
	fi_out->fh = in->fh_out;
	r->w->s->ops.copy_file_range(r, r->msg.nodeid, in->off_in, fi_in, in->nodeid_out, in->off_out, fi_out, in->len,
				     in->flags);
}

/* ---- flush, sync, release ---- */

void fu_serve_flush(struct furing_req *r)
{
	const struct fuse_flush_in *in = &r->msg.arg.flush;
	struct furing_file *fi = fu_file_of(r, in->fh, 0);

	fu_with_lock_owner(fi, in->lock_owner);
	r->w->s->ops.flush(r, r->msg.nodeid, fi);
}

void fu_serve_fsync(struct furing_req *r)
{
	const struct fuse_fsync_in *in = &r->msg.arg.fsync;

	r->w->s->ops.fsync(r, r->msg.nodeid, in->fsync_flags & FUSE_FSYNC_FDATASYNC, fu_file_of(r, in->fh, 0));
}

void fu_serve_fsyncdir(struct furing_req *r)
{
	const struct fuse_fsync_in *in = &r->msg.arg.fsync;

	r->w->s->ops.fsyncdir(r, r->msg.nodeid, in->fsync_flags & FUSE_FSYNC_FDATASYNC, fu_file_of(r, in->fh, 0));
}

/* RELEASE and RELEASEDIR: without the operation there is nothing to free,
 * and the answer is success. */
static void release(struct furing_req *r, file_op *op)
{
	const struct fuse_release_in *in = &r->msg.arg.release;
	struct furing_file *fi = fu_file_of(r, in->fh, in->flags);

	if (in->release_flags & FUSE_RELEASE_FLUSH)
		fi->req_flags |= FURING_FILE_FLUSH;
	if (in->release_flags & FUSE_RELEASE_FLOCK_UNLOCK)
		fi->req_flags |= FURING_FILE_FLOCK_UNLOCK;
	if (in->release_flags & (FUSE_RELEASE_FLUSH | FUSE_RELEASE_FLOCK_UNLOCK) || in->lock_owner)
		fu_with_lock_owner(fi, in->lock_owner);
	if (!op) {
		fu_answer_err(r, 0);
		return;
	}
	op(r, r->msg.nodeid, fi);
}

void fu_serve_release(struct furing_req *r)
{
	release(r, r->w->s->ops.release);
}

void fu_serve_releasedir(struct furing_req *r)
{
	release(r, r->w->s->ops.releasedir);
}

/* ---- locks ---- */

/* flock(2) travels as SETLK(W) with a whole-file lock type. */
static void flock_lock(struct furing_req *r, const struct fuse_lk_in *in, struct furing_file *fi)
{
	const struct furing_ops *o = &r->w->s->ops;
	const uint32_t op = r->msg.opcode;

	if (op == FUSE_GETLK || !o->flock) {
		fu_answer_err(r, ENOSYS);
		return;
	}
	int how = in->lk.type == F_RDLCK ? LOCK_SH : in->lk.type == F_WRLCK ? LOCK_EX : LOCK_UN;
	if (op == FUSE_SETLK)
		how |= LOCK_NB;
	o->flock(r, r->msg.nodeid, fi, how);
}

/* GETLK, SETLK, SETLKW: POSIX locks go to getlk or setlk, flock(2) locks
 * to flock; each is ENOSYS on its own when missing. */
void fu_serve_lock(struct furing_req *r)
{
	const struct fuse_lk_in *in = &r->msg.arg.lk;
	const struct furing_ops *o = &r->w->s->ops;
	struct furing_file *fi = fu_file_of(r, in->fh, 0);
	const uint32_t op = r->msg.opcode;

	fu_with_lock_owner(fi, in->owner);
	if (in->lk_flags & FUSE_LK_FLOCK) {
		flock_lock(r, in, fi);
		return;
	}
	if (op == FUSE_GETLK ? !o->getlk : !o->setlk) {
		fu_answer_err(r, ENOSYS);
		return;
	}
	fu_lock_to_flock(&in->lk, &r->argv.lock);
	if (op == FUSE_GETLK)
		o->getlk(r, r->msg.nodeid, fi, &r->argv.lock);
	else
		o->setlk(r, r->msg.nodeid, fi, &r->argv.lock, op == FUSE_SETLKW);
}

/* ---- poll, ioctl ---- */

void fu_serve_poll(struct furing_req *r)
{
	const struct fuse_poll_in *in = &r->msg.arg.poll;

	r->w->s->ops.poll(r, r->msg.nodeid, fu_file_of(r, in->fh, 0), in->kh, in->flags & FUSE_POLL_SCHEDULE_NOTIFY,
			  in->events);
}

void fu_serve_ioctl(struct furing_req *r)
{
	const struct fuse_ioctl_in *in = &r->msg.arg.ioctl;

	/* Unrestricted ioctls (their buffers described by the server) are
	 * CUSE's; a filesystem gets the restricted kind. */
	if (in->flags & FUSE_IOCTL_UNRESTRICTED) {
		fu_answer_err(r, ENOSYS);
		return;
	}
	const unsigned int flags = in->flags & (FUSE_IOCTL_COMPAT | FUSE_IOCTL_DIR);
	r->w->s->ops.ioctl(r, r->msg.nodeid, in->cmd, in->arg, fu_file_of(r, in->fh, 0), flags, r->msg.data,
			   r->msg.data_len, in->out_size);
}
