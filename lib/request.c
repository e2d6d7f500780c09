/* A request's life on its worker, between the transport that received it and
 * the transport that answers it: dispatch to the filesystem's operation, the
 * answer calls, and the asynchronous I/O the filesystem submits meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void io_complete(struct fu_event *ev, int res);

void fu_request_init(struct furing_req *r, struct fu_worker *w, const struct fu_transport_ops *tp,
		     enum fu_transport_kind kind, void *buf, uint32_t buf_size)
{
	memset(r, 0, sizeof(*r));
	r->w = w;
	r->tp = tp;
	r->kind = (uint8_t)kind;
	r->buf = buf;
	r->buf_size = buf_size;
	r->io_ev.fn = io_complete;
}

/* ---- logging (--debug) ---- */

static void log_answer(const struct furing_req *r, int err, size_t bytes)
{
	const struct fu_msg *m = &r->msg;
	char where[32], range[64] = "", result[48];

	if (r->kind == FU_RING)
		snprintf(where, sizeof(where), "ring q%u", r->qid);
	else
		snprintf(where, sizeof(where), "dev");
	switch (m->opcode) {
	case FUSE_READ:
		snprintf(range, sizeof(range), " off=%llu size=%u", (unsigned long long)m->arg.read.offset,
			 m->arg.read.size);
		break;
	case FUSE_WRITE:
		snprintf(range, sizeof(range), " off=%llu size=%u", (unsigned long long)m->arg.write.offset,
			 m->arg.write.size);
		break;
	case FUSE_FALLOCATE:
		snprintf(range, sizeof(range), " off=%llu size=%llu mode=%#x",
			 (unsigned long long)m->arg.fallocate.offset, (unsigned long long)m->arg.fallocate.length,
			 m->arg.fallocate.mode);
		break;
	case FUSE_LSEEK:
		snprintf(range, sizeof(range), " off=%llu whence=%u", (unsigned long long)m->arg.lseek.offset,
			 m->arg.lseek.whence);
		break;
	default:
		break;
	}
	if (err < 0)
		snprintf(result, sizeof(result), "no reply");
	else if (err)
		snprintf(result, sizeof(result), "-%s", strerrorname_np(err) ? strerrorname_np(err) : "E?");
	else
		snprintf(result, sizeof(result), "%zu", bytes);
	fprintf(stderr, "furing: [%s] %s unique=%llu nodeid=%llu%s -> %s\n", where, fu_opcode_name(m->opcode),
		(unsigned long long)m->unique, (unsigned long long)m->nodeid, range, result);
}

/* ---- answers ---- */

static void answer(struct furing_req *r, int err, const struct iovec *iov, int iovcnt)
{
	struct fu_worker *w = r->w;
	size_t bytes = 0;

	if (r->answered) {
		/* A filesystem bug; a second answer would corrupt the slot. */
		fprintf(stderr, "furing: %s unique=%llu answered twice; second answer ignored\n",
			fu_opcode_name(r->msg.opcode), (unsigned long long)r->msg.unique);
		return;
	}
	r->answered = true;
	if (err < 0 || err >= 512)
		err = EIO; /* the kernel only takes errors in (-512, 0) */
	for (int i = 0; !err && i < iovcnt; i++)
		bytes += iov[i].iov_len;
	if (err)
		FU_STAT_ADD(w->stats.errors, 1);
	else if (r->msg.opcode == FUSE_READ)
		FU_STAT_ADD(w->stats.bytes_read, bytes);
	if (w->s->cfg.debug)
		log_answer(r, err, r->msg.opcode == FUSE_WRITE && !err ? r->msg.data_len : bytes);
	r->tp->send(r, -err, err ? NULL : iov, err ? 0 : iovcnt);
}

static void no_answer(struct furing_req *r)
{
	r->answered = true;
	if (r->w->s->cfg.debug)
		log_answer(r, -1, 0);
	r->tp->finish_no_reply(r);
}

void furing_reply_err(struct furing_req *r, int err)
{
	answer(r, err, NULL, 0);
}

void furing_reply_ok(struct furing_req *r)
{
	answer(r, 0, NULL, 0);
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = (uint32_t)st->st_rdev;
	a->blksize = (uint32_t)st->st_blksize;
}

static void split_timeout(double t, uint64_t *sec, uint32_t *nsec)
{
	if (t <= 0) {
		*sec = 0;
		*nsec = 0;
		return;
	}
	*sec = (uint64_t)t;
	*nsec = (uint32_t)((t - (double)*sec) * 1e9);
}

void furing_reply_attr(struct furing_req *r, const struct stat *st, double timeout_s)
{
	struct fuse_attr_out out;

	memset(&out, 0, sizeof(out));
	split_timeout(timeout_s, &out.attr_valid, &out.attr_valid_nsec);
	fill_attr(&out.attr, st);
	struct iovec iov = {&out, sizeof(out)};
	answer(r, 0, &iov, 1);
}

void furing_reply_entry(struct furing_req *r, uint64_t ino, const struct stat *st, double timeout_s)
{
	struct fuse_entry_out out;

	memset(&out, 0, sizeof(out));
	out.nodeid = ino;
	split_timeout(timeout_s, &out.entry_valid, &out.entry_valid_nsec);
	split_timeout(timeout_s, &out.attr_valid, &out.attr_valid_nsec);
	fill_attr(&out.attr, st);
	out.attr.ino = ino;
	struct iovec iov = {&out, sizeof(out)};
	answer(r, 0, &iov, 1);
}

void furing_reply_open(struct furing_req *r, uint64_t fh, uint32_t open_flags)
{
	struct fuse_open_out out = {.fh = fh, .open_flags = 0, .backing_id = 0};

	if (open_flags & FURING_OPEN_DIRECT_IO)
		out.open_flags |= FOPEN_DIRECT_IO;
	if (open_flags & FURING_OPEN_KEEP_CACHE)
		out.open_flags |= FOPEN_KEEP_CACHE;
	if (open_flags & FURING_OPEN_PARALLEL_WRITES)
		out.open_flags |= FOPEN_PARALLEL_DIRECT_WRITES;
	struct iovec iov = {&out, sizeof(out)};
	answer(r, 0, &iov, 1);
}

void furing_reply_write(struct furing_req *r, uint32_t count)
{
	struct fuse_write_out out = {.size = count, .padding = 0};

	if (r->msg.opcode == FUSE_WRITE)
		FU_STAT_ADD(r->w->stats.bytes_written, count);
	r->msg.data_len = count; /* for the log line */
	struct iovec iov = {&out, sizeof(out)};
	answer(r, 0, &iov, 1);
}

void furing_reply_lseek(struct furing_req *r, uint64_t off)
{
	struct fuse_lseek_out out = {.offset = off};
	struct iovec iov = {&out, sizeof(out)};
	answer(r, 0, &iov, 1);
}

void furing_reply_statfs(struct furing_req *r, const struct statvfs *st)
{
	struct fuse_statfs_out out;

	memset(&out, 0, sizeof(out));
	out.st.blocks = st->f_blocks;
	out.st.bfree = st->f_bfree;
	out.st.bavail = st->f_bavail;
	out.st.files = st->f_files;
	out.st.ffree = st->f_ffree;
	out.st.bsize = (uint32_t)st->f_bsize;
	out.st.namelen = (uint32_t)st->f_namemax;
	out.st.frsize = (uint32_t)st->f_frsize;
	struct iovec iov = {&out, sizeof(out)};
	answer(r, 0, &iov, 1);
}

void furing_reply_buf(struct furing_req *r, size_t len)
{
	if (len > r->buf_size) {
		answer(r, EIO, NULL, 0);
		return;
	}
	struct iovec iov = {r->buf, len};
	answer(r, 0, &iov, 1);
}

void furing_reply_data(struct furing_req *r, const void *data, size_t len)
{
	if (len > r->buf_size) {
		answer(r, EIO, NULL, 0);
		return;
	}
	struct iovec iov = {(void *)data, len};
	answer(r, 0, &iov, 1);
}

/* ---- what a handler may ask ---- */

void *furing_req_fs(const struct furing_req *r)
{
	return r->w->s->fs;
}

const struct furing_ctx *furing_req_ctx(const struct furing_req *r)
{
	return &r->ctx;
}

void *furing_req_buf(struct furing_req *r)
{
	return r->buf;
}

size_t furing_req_buf_size(const struct furing_req *r)
{
	return r->buf_size;
}

void *furing_req_scratch(struct furing_req *r)
{
	return r->scratch;
}

/* ---- asynchronous I/O on the worker's ring ---- */

static void io_complete(struct fu_event *ev, int res)
{
	struct furing_req *r = container_of(ev, struct furing_req, io_ev);
	furing_io_done done = r->io_done;

	r->io_done = NULL;
	done(r, res);
}

static struct io_uring_sqe *io_sqe(struct furing_req *r, furing_io_done done)
{
	r->io_done = done;
	return fu_loop_sqe(&r->w->loop, &r->io_ev);
}

/* Without io_uring (session->blocking) the same calls run inline: the
 * syscall's result goes straight to @done. */
static void done_inline(struct furing_req *r, furing_io_done done, long res)
{
	done(r, res < 0 ? -errno : (int)res);
}

void furing_req_pread(struct furing_req *r, int fd, void *buf, uint32_t len, uint64_t off, furing_io_done done)
{
	if (r->w->s->blocking)
		done_inline(r, done, pread(fd, buf, len, (off_t)off));
	else
		io_uring_prep_read(io_sqe(r, done), fd, buf, len, off);
}

void furing_req_pwrite(struct furing_req *r, int fd, const void *buf, uint32_t len, uint64_t off,
		       furing_io_done done)
{
	if (r->w->s->blocking)
		done_inline(r, done, pwrite(fd, buf, len, (off_t)off));
	else
		io_uring_prep_write(io_sqe(r, done), fd, buf, len, off);
}

void furing_req_fsync(struct furing_req *r, int fd, bool datasync, furing_io_done done)
{
	if (r->w->s->blocking)
		done_inline(r, done, datasync ? fdatasync(fd) : fsync(fd));
	else
		io_uring_prep_fsync(io_sqe(r, done), fd, datasync ? IORING_FSYNC_DATASYNC : 0);
}

void furing_req_fallocate(struct furing_req *r, int fd, int mode, uint64_t off, uint64_t len, furing_io_done done)
{
	if (r->w->s->blocking)
		done_inline(r, done, fallocate(fd, mode, (off_t)off, (off_t)len));
	else
		io_uring_prep_fallocate(io_sqe(r, done), fd, mode, (off_t)off, (off_t)len);
}

/* ---- dispatch ---- */

/* The decoder refused the request: answer or drop it as the decoder said. */
static void reject(struct furing_req *r, enum fu_decode_result res, int err)
{
	if (res == FU_DECODE_DROP || fu_opcode_no_reply(r->msg.opcode))
		no_answer(r);
	else
		answer(r, err ? err : EIO, NULL, 0);
}

static void batch_forget(struct furing_req *r)
{
	const struct furing_ops *o = r->w->s->ops;
	const unsigned char *p = r->msg.data;

	for (uint32_t i = 0; o->forget && i < r->msg.arg.batch_forget.count; i++) {
		struct fuse_forget_one one;

		memcpy(&one, p + (size_t)i * sizeof(one), sizeof(one));
		o->forget(r->w->s->fs, one.nodeid, one.nlookup);
	}
	no_answer(r);
}

static void setattr(struct furing_req *r)
{
	const struct fuse_setattr_in *in = &r->msg.arg.setattr;
	struct furing_setattr a;

	memset(&a, 0, sizeof(a));
	a.valid = in->valid & (FURING_SET_MODE | FURING_SET_UID | FURING_SET_GID | FURING_SET_SIZE |
			       FURING_SET_ATIME | FURING_SET_MTIME | FURING_SET_ATIME_NOW | FURING_SET_MTIME_NOW |
			       FURING_SET_CTIME);
	a.mode = in->mode;
	a.uid = in->uid;
	a.gid = in->gid;
	a.size = in->size;
	a.atime = (struct timespec){(time_t)in->atime, in->atimensec};
	a.mtime = (struct timespec){(time_t)in->mtime, in->mtimensec};
	a.ctime = (struct timespec){(time_t)in->ctime, in->ctimensec};
	a.has_fh = in->valid & FATTR_FH;
	a.fh = in->fh;
	r->w->s->ops->setattr(r, r->msg.nodeid, &a);
}

static void dispatch(struct furing_req *r)
{
	struct fu_session *s = r->w->s;
	const struct furing_ops *o = s->ops;
	const struct fu_msg *m = &r->msg;

	r->ctx = (struct furing_ctx){m->uid, m->gid, m->pid};

	switch (m->opcode) {
	case FUSE_FORGET:
		if (o->forget)
			o->forget(s->fs, m->nodeid, m->arg.forget.nlookup);
		no_answer(r);
		return;
	case FUSE_BATCH_FORGET:
		batch_forget(r);
		return;
	case FUSE_INTERRUPT:
		/* Our policy (PROTOCOL.md 3.3): every request is answered anyway,
		 * so an interrupt needs nothing; on the ring it could not be
		 * answered at all. */
		no_answer(r);
		return;
	case FUSE_INIT:
		/* Negotiated once by the session before the workers start. */
		answer(r, EPROTO, NULL, 0);
		return;
	case FUSE_DESTROY:
		answer(r, 0, NULL, 0);
		return;
	case FUSE_LOOKUP:
		if (o->lookup) {
			o->lookup(r, m->nodeid, m->name);
			return;
		}
		break;
	case FUSE_GETATTR:
		if (o->getattr) {
			o->getattr(r, m->nodeid, (m->arg.getattr.getattr_flags & FUSE_GETATTR_FH) ? &m->arg.getattr.fh : NULL);
			return;
		}
		break;
	case FUSE_SETATTR:
		if (o->setattr) {
			setattr(r);
			return;
		}
		break;
	case FUSE_OPEN:
		if (o->open) {
			o->open(r, m->nodeid, (int)m->arg.open.flags);
			return;
		}
		break;
	case FUSE_RELEASE:
		if (o->release) {
			o->release(r, m->nodeid, m->arg.release.fh, (int)m->arg.release.flags);
			return;
		}
		answer(r, 0, NULL, 0);
		return;
	case FUSE_FLUSH:
		if (o->flush) {
			o->flush(r, m->nodeid, m->arg.flush.fh);
			return;
		}
		break;
	case FUSE_FSYNC:
		if (o->fsync) {
			o->fsync(r, m->nodeid, m->arg.fsync.fh, m->arg.fsync.fsync_flags & FUSE_FSYNC_FDATASYNC);
			return;
		}
		break;
	case FUSE_READ:
		if (o->read) {
			if (m->arg.read.size > r->buf_size) {
				answer(r, EINVAL, NULL, 0);
				return;
			}
			o->read(r, m->nodeid, m->arg.read.fh, m->arg.read.offset, m->arg.read.size);
			return;
		}
		break;
	case FUSE_WRITE:
		if (o->write) {
			o->write(r, m->nodeid, m->arg.write.fh, m->arg.write.offset, m->data, m->data_len);
			return;
		}
		break;
	case FUSE_FALLOCATE:
		if (o->fallocate) {
			o->fallocate(r, m->nodeid, m->arg.fallocate.fh, (int)m->arg.fallocate.mode,
				     m->arg.fallocate.offset, m->arg.fallocate.length);
			return;
		}
		break;
	case FUSE_LSEEK:
		if (o->lseek) {
			o->lseek(r, m->nodeid, m->arg.lseek.fh, m->arg.lseek.offset, (int)m->arg.lseek.whence);
			return;
		}
		break;
	case FUSE_STATFS:
		if (o->statfs) {
			o->statfs(r, m->nodeid);
			return;
		}
		break;
	default:
		break;
	}
	answer(r, ENOSYS, NULL, 0);
}

void fu_request_arrived(struct furing_req *r, enum fu_decode_result res, int err)
{
	uint32_t op = r->msg.opcode < FUSE_OPCODE_MAX ? r->msg.opcode : FUSE_OPCODE_MAX;

	FU_STAT_ADD(r->w->stats.ops[r->kind][op], 1);
	r->answered = false; /* the slot's previous request was answered */
	if (res == FU_DECODE_OK)
		dispatch(r);
	else
		reject(r, res, err);
}
