/* A request's life on its worker, between the transport that received it and
 * the transport that answers it: arrival, the one way out (fu_answer), the
 * handover of answers made on other threads, what a filesystem may ask of a
 * request, and the I/O it submits on the request's behalf. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define ANSWER_BUF_ALIGN 64

__thread struct fu_worker *fu_current_worker;

static void io_complete(struct furing_event *ev, int res);

void fu_request_init(struct furing_req *r, struct fu_worker *w, const struct fu_transport_ops *tp,
		     enum fu_transport_kind kind, void *base, uint32_t base_size)
{
	memset(r, 0, sizeof(*r));
	r->w = w;
	r->tp = tp;
	r->kind = (uint8_t)kind;
	r->base = base;
	r->base_size = base_size;
	r->buf_index = -1;
	r->io_ev.fn = io_complete;
	atomic_init(&r->answered, true);
}

/* ---- the --debug line ---- */

static void log_answer(const struct furing_req *r, bool answered)
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
		if (m->name)
			snprintf(range, sizeof(range), " name=%.40s", m->name);
		break;
	}
	if (!answered)
		snprintf(result, sizeof(result), "no reply");
	else if (r->ans_err)
		snprintf(result, sizeof(result), "-%s",
			 strerrorname_np(r->ans_err) ? strerrorname_np(r->ans_err) : "E?");
	else
		snprintf(result, sizeof(result), "%llu", (unsigned long long)r->ans_bytes);
	fu_log(r->w->s, FURING_LOG_DEBUG, "[%s] %s unique=%llu nodeid=%llu%s -> %s", where, fu_opcode_name(m->opcode),
	       (unsigned long long)m->unique, (unsigned long long)m->nodeid, range, result);
}

/* ---- interrupts ---- */

static void forget_interrupt(struct fu_session *s, uint64_t unique)
{
	pthread_mutex_lock(&s->intr_lock);
	for (unsigned int i = 0; i < FU_INTERRUPTS_REMEMBERED; i++) {
		if (s->intr_unique[i] == unique) {
			s->intr_unique[i] = 0;
			atomic_fetch_sub(&s->intr_count, 1);
		}
	}
	pthread_mutex_unlock(&s->intr_lock);
}

/* Called for FUSE_INTERRUPT (dispatch.c). The oldest entry makes room: an
 * interrupt that arrives after its request was answered is never removed
 * by that answer. */
void fu_note_interrupt(struct fu_session *s, uint64_t unique);
void fu_note_interrupt(struct fu_session *s, uint64_t unique)
{
	pthread_mutex_lock(&s->intr_lock);
	uint64_t *slot = &s->intr_unique[s->intr_next];
	if (*slot == 0)
		atomic_fetch_add(&s->intr_count, 1);
	*slot = unique;
	s->intr_next = (s->intr_next + 1) % FU_INTERRUPTS_REMEMBERED;
	pthread_mutex_unlock(&s->intr_lock);
}

bool furing_req_interrupted(const struct furing_req *r)
{
	struct fu_session *s = r->w->s;
	bool found = false;

	if (atomic_load_explicit(&s->intr_count, memory_order_relaxed) == 0)
		return false;
	pthread_mutex_lock(&s->intr_lock);
	for (unsigned int i = 0; i < FU_INTERRUPTS_REMEMBERED && !found; i++)
		found = s->intr_unique[i] == r->msg.unique;
	pthread_mutex_unlock(&s->intr_lock);
	return found;
}

/* ---- the way out ---- */

/* On the worker (the counters have one writer each). Done before the
 * answer goes out where possible, so that whoever sees the answer also sees
 * it counted. */
static void count(struct furing_req *r)
{
	struct fu_worker *w = r->w;

	if (r->ans_err)
		FU_STAT_ADD(w->stats.errors, 1);
	else if (r->msg.opcode == FUSE_READ)
		FU_STAT_ADD(w->stats.bytes_read, r->ans_bytes);
	else if (r->msg.opcode == FUSE_WRITE)
		FU_STAT_ADD(w->stats.bytes_written, r->ans_bytes);
}

/* On the worker: the slot back to the transport. */
static void finish(struct furing_req *r, bool answered)
{
	r->tp->recycle(r, answered);
}

/* Answers made on other threads: counted here, after they went out (the
 * counters have the worker as their only writer). */
void fu_worker_drain_foreign(struct fu_worker *w)
{
	pthread_mutex_lock(&w->foreign_lock);
	struct furing_req *r = w->foreign;
	w->foreign = NULL;
	pthread_mutex_unlock(&w->foreign_lock);
	while (r) {
		struct furing_req *next = r->next_foreign;
		count(r);
		finish(r, true);
		r = next;
	}
}

void fu_answer(struct furing_req *r, int err, const struct iovec *iov, int iovcnt)
{
	if (atomic_exchange(&r->answered, true)) {
		/* A filesystem bug; a second answer would corrupt the slot. */
		fu_log(r->w->s, FURING_LOG_WARNING, "%s unique=%llu answered twice; second answer ignored",
		       fu_opcode_name(r->msg.opcode), (unsigned long long)r->msg.unique);
		return;
	}
	if (err < 0 || err >= 512)
		err = EIO; /* the kernel only takes errors in (-512, 0) */
	r->ans_err = err;
	if (r->msg.opcode != FUSE_WRITE) { /* WRITE's count comes from furing_reply_write */
		r->ans_bytes = 0;
		for (int i = 0; !err && i < iovcnt; i++)
			r->ans_bytes += iov[i].iov_len;
	}
	if (atomic_load_explicit(&r->w->s->intr_count, memory_order_relaxed) != 0)
		forget_interrupt(r->w->s, r->msg.unique);
	/* The debug line names the request's arguments, so it goes first: on
	 * the ring the answer is written over the payload that holds them. */
	if (r->w->s->cfg.debug)
		log_answer(r, true);

	if (fu_current_worker == r->w) {
		count(r);
		r->tp->deliver(r, -err, err ? NULL : iov, err ? 0 : iovcnt);
		finish(r, true);
		return;
	}
	r->tp->deliver(r, -err, err ? NULL : iov, err ? 0 : iovcnt);
	/* Answered on another thread: the answer is out; the slot goes back
	 * to the kernel from the worker, which owns the ring. */
	struct fu_worker *w = r->w;
	pthread_mutex_lock(&w->foreign_lock);
	r->next_foreign = w->foreign;
	w->foreign = r;
	pthread_mutex_unlock(&w->foreign_lock);
	fu_worker_wake(w);
}

void fu_no_answer(struct furing_req *r)
{
	atomic_store(&r->answered, true);
	if (r->w->s->cfg.debug)
		log_answer(r, false);
	finish(r, false);
}

/* The decoder refused the request: answer or drop it as the decoder said. */
static void reject(struct furing_req *r, enum fu_decode_result res, int err)
{
	if (r->w->s->cfg.debug)
		fu_log(r->w->s, FURING_LOG_DEBUG, "%s unique=%llu refused by the decoder (%s)", fu_opcode_name(r->msg.opcode),
		       (unsigned long long)r->msg.unique, res == FU_DECODE_DROP ? "dropped" : strerror(err ? err : EIO));
	if (res == FU_DECODE_DROP || fu_opcode_no_reply(r->msg.opcode))
		fu_no_answer(r);
	else
		fu_answer(r, err ? err : EIO, NULL, 0);
}

/* Where furing_req_buf starts. A request whose names or data the
 * filesystem still reads (msg.name, name2, data point into the transport's
 * buffer) gets its answer buffer past them, so filling it cannot overwrite
 * them. Any other request's arguments were all copied into msg, so its
 * buffer starts at the base, page-aligned: O_DIRECT I/O through it needs
 * that. On /dev/fuse @tail_end also counts op header bytes past the 80 in
 * front of the base (COPY_FILE_RANGE's header is 56 bytes, WRITE's 40), and
 * skipping those left a copy's buffer 64 bytes past a page: EINVAL from a
 * backing file opened O_DIRECT. */
static uint32_t answer_offset(const struct furing_req *r, enum fu_decode_result res, size_t tail_end)
{
	const struct fu_msg *m = &r->msg;

	if (res == FU_DECODE_OK && !m->name && !m->name2 && !m->data)
		return 0;
	size_t off = (tail_end + ANSWER_BUF_ALIGN - 1) & ~(size_t)(ANSWER_BUF_ALIGN - 1);
	return off < r->base_size ? (uint32_t)off : r->base_size;
}

void fu_request_arrived(struct furing_req *r, enum fu_decode_result res, int err, size_t tail_end)
{
	uint32_t op = r->msg.opcode < FUSE_OPCODE_MAX ? r->msg.opcode : FUSE_OPCODE_MAX;

	FU_STAT_ADD(r->w->stats.ops[r->kind][op], 1);
	r->w->served = true;
	r->w->served_pid = r->msg.pid;
	atomic_store_explicit(&r->answered, false, memory_order_relaxed);
	r->ans_err = 0;
	r->ans_bytes = 0;
	r->user_data = NULL; /* nothing of the slot's previous request */
	r->buf_off = answer_offset(r, res, tail_end);
	if (res == FU_DECODE_OK)
		fu_dispatch(r);
	else
		reject(r, res, err);
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

struct furing_session *furing_req_session(const struct furing_req *r)
{
	return (struct furing_session *)r->w->s;
}

struct furing_worker *furing_req_worker(const struct furing_req *r)
{
	return (struct furing_worker *)r->w;
}

uint64_t furing_req_unique(const struct furing_req *r)
{
	return r->msg.unique;
}

void *furing_req_buf(struct furing_req *r)
{
	return r->base + r->buf_off;
}

size_t furing_req_buf_size(const struct furing_req *r)
{
	return r->base_size - r->buf_off;
}

void *furing_req_scratch(struct furing_req *r)
{
	return r->scratch;
}

/* The library only keeps the pointer: it never reads, frees or copies what
 * it points at. */
void furing_req_set_data(struct furing_req *r, void *data)
{
	r->user_data = data;
}

void *furing_req_data(const struct furing_req *r)
{
	return r->user_data;
}

/* ---- asynchronous I/O on the worker's ring ---- */

static void io_complete(struct furing_event *ev, int res)
{
	struct furing_req *r = container_of(ev, struct furing_req, io_ev);
	furing_io_done done = r->io_done;

	r->io_done = NULL;
	r->w->loop.io_pending--;
	done(r, res);
}

struct io_uring_sqe *furing_req_sqe(struct furing_req *r, furing_io_done done)
{
	if (r->w->s->blocking)
		return NULL;
	r->io_done = done;
	r->w->loop.io_pending++;
	return fu_loop_sqe(&r->w->loop, &r->io_ev);
}

/* Without io_uring (session->blocking) the same calls run inline: the
 * syscall's result goes straight to @done. */
static void done_inline(struct furing_req *r, furing_io_done done, long res)
{
	done(r, res < 0 ? -errno : (int)res);
}

/* The registered pool buffer that [buf, buf+len) lies in, or -1: I/O on
 * it then skips pinning the pages (READ_FIXED / WRITE_FIXED). */
static int fixed_index(const struct furing_req *r, const void *buf, uint32_t len)
{
	uintptr_t p = (uintptr_t)buf, lo = (uintptr_t)r->base;

	if (r->buf_index < 0 || p < lo || p - lo > r->base_size || len > r->base_size - (p - lo))
		return -1;
	return r->buf_index;
}

void furing_req_pread(struct furing_req *r, int fd, void *buf, uint32_t len, uint64_t off, furing_io_done done)
{
	int idx;

	if (r->w->s->blocking)
		done_inline(r, done, pread(fd, buf, len, (off_t)off));
	else if ((idx = fixed_index(r, buf, len)) >= 0)
		io_uring_prep_read_fixed(furing_req_sqe(r, done), fd, buf, len, off, idx);
	else
		io_uring_prep_read(furing_req_sqe(r, done), fd, buf, len, off);
}

void furing_req_pwrite(struct furing_req *r, int fd, const void *buf, uint32_t len, uint64_t off,
		       furing_io_done done)
{
	int idx;

	if (r->w->s->blocking)
		done_inline(r, done, pwrite(fd, buf, len, (off_t)off));
	else if ((idx = fixed_index(r, buf, len)) >= 0)
		io_uring_prep_write_fixed(furing_req_sqe(r, done), fd, buf, len, off, idx);
	else
		io_uring_prep_write(furing_req_sqe(r, done), fd, buf, len, off);
}

bool furing_req_zero_copy(const struct furing_req *r)
{
	return r->zc;
}

/* For a kernel-lent buffer the address is an offset into it. */
static void zc_io(struct furing_req *r, bool write, int fd, uint32_t at, uint32_t len, uint64_t off,
		  furing_io_done done)
{
	const uint32_t want = write ? FUSE_WRITE : FUSE_READ;

	if (!r->zc || r->msg.opcode != want || at > r->zc_len || len > r->zc_len - at) {
		done(r, -EINVAL);
		return;
	}
	struct io_uring_sqe *sqe = furing_req_sqe(r, done);
	if (write)
		io_uring_prep_write_fixed(sqe, fd, (const void *)(uintptr_t)at, len, off, r->zc_index);
	else
		io_uring_prep_read_fixed(sqe, fd, (void *)(uintptr_t)at, len, off, r->zc_index);
}

void furing_req_zc_pread(struct furing_req *r, int fd, uint32_t at, uint32_t len, uint64_t off, furing_io_done done)
{
	zc_io(r, false, fd, at, len, off, done);
}

void furing_req_zc_pwrite(struct furing_req *r, int fd, uint32_t at, uint32_t len, uint64_t off,
			  furing_io_done done)
{
	zc_io(r, true, fd, at, len, off, done);
}

void furing_req_fsync(struct furing_req *r, int fd, bool datasync, furing_io_done done)
{
	if (r->w->s->blocking)
		done_inline(r, done, datasync ? fdatasync(fd) : fsync(fd));
	else
		io_uring_prep_fsync(furing_req_sqe(r, done), fd, datasync ? IORING_FSYNC_DATASYNC : 0);
}

void furing_req_fallocate(struct furing_req *r, int fd, int mode, uint64_t off, uint64_t len, furing_io_done done)
{
	if (r->w->s->blocking)
		done_inline(r, done, fallocate(fd, mode, (off_t)off, (off_t)len));
	else
		io_uring_prep_fallocate(furing_req_sqe(r, done), fd, mode, (off_t)off, (off_t)len);
}
