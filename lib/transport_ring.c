/* The FUSE-over-io_uring transport (doc/protocol.md sections 1 and 2.3).
 *
 * A ring queue is the kernel's per-CPU queue `qid`; this worker serves it
 * with `depth` entries. An entry is a 288-byte header buffer and a payload
 * buffer that the kernel fills with a request and completes our URING_CMD
 * SQE. We answer in the same buffers and send COMMIT_AND_FETCH, which both
 * delivers the answer and parks the entry for the next request, so an entry
 * always has exactly one SQE with the kernel except while we serve it.
 *
 *   REGISTER ──CQE(res 0)──▶ serving ──answer──▶ COMMIT_AND_FETCH ──CQE──▶ serving ...
 *                                          -ENOTCONN at any point ──▶ dead
 *
 * The buffers belong to the queue; they are freed only after every entry
 * has had its last CQE (the queue is "dead"), never while the kernel may
 * still write into them.
 *
 * Linux 7.3 (ring_setup.c): a pooled queue is first created with ADD_QUEUE
 * and given its pool with ADD_BUFPOOL; its entries then REGISTER only their
 * headers, and each request says where in the pool its buffer is (none for
 * a request without data or answer, nor for a zero-copy READ, whose pages
 * the kernel lent to the entry's buffer-table slot instead). A refused
 * ADD_QUEUE or ADD_BUFPOOL falls back to per-entry buffers.
 *
 *   ADD_QUEUE ──0──▶ ADD_BUFPOOL ──0──▶ REGISTER (headers only) ...
 *       └────── refused: per-entry buffers ──▶ REGISTER (header + payload) ... */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

enum ent_state { ENT_IDLE, ENT_IN_KERNEL, ENT_SERVING, ENT_DEAD };

struct ring_ent {
	struct furing_req req;
	struct furing_event ev;
	struct ring_queue *q;
	struct fuse_uring_req_header *hdr;
	void *payload;
	struct iovec iov[2]; /* REGISTER reads these; they must outlive the SQE */
	uint64_t commit_id;
	uint32_t cmd; /* the command with the kernel, to resubmit on EAGAIN */
	enum ent_state state;
};

struct ring_queue {
	struct fu_worker *w;
	uint16_t qid;
	unsigned int slot; /* among the worker's queues: names its buffer-table slots */
	unsigned int depth;
	unsigned int live; /* entries not dead */
	uint64_t served;   /* requests received; read by the main thread */
	uint32_t payload_size;
	struct ring_ent *ents;
	void *hdr_mem, *payload_mem;
	size_t hdr_mem_size, payload_mem_size;
	/* Linux 7.3 */
	bool pooled;       /* ADD_BUFPOOL accepted: entries have no payload of their own */
	bool zero_copy;    /* ADD_QUEUE with FUSE_URING_ZERO_COPY (asked for, then accepted) */
	int pool_index;    /* the pool's buffer-table slot, -1: not registered */
	void *pool_mem;
	size_t pool_mem_size;
	uint32_t buf_size; /* the kernel's size of each pool buffer */
	struct furing_event setup_ev;
	uint32_t setup_cmd; /* ADD_QUEUE or ADD_BUFPOOL with the kernel; 0: none */
};

static void ring_deliver(struct furing_req *req, int error, const struct iovec *iov, int iovcnt);
static void ring_recycle(struct furing_req *req, bool answered);
static void ent_done(struct furing_event *ev, int res);

static const struct fu_transport_ops ring_ops = {
	.deliver = ring_deliver,
	.recycle = ring_recycle,
};

/* A command SQE for queue @q: the kernel wants the pool's registered
 * index on every command of a queue whose pool is registered. */
static struct fuse_uring_cmd_req *prep_cmd(struct ring_queue *q, struct io_uring_sqe *sqe, uint32_t cmd)
{
	sqe->opcode = IORING_OP_URING_CMD;
	fu_worker_dev_target(q->w, sqe);
	sqe->cmd_op = cmd;
	if (q->pool_index >= 0) {
		sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
		sqe->buf_index = (uint16_t)q->pool_index;
	}
	struct fuse_uring_cmd_req *cr = (struct fuse_uring_cmd_req *)sqe->cmd;
	cr->qid = q->qid;
	return cr;
}

static void submit_cmd(struct ring_ent *e, uint32_t cmd)
{
	struct ring_queue *q = e->q;
	struct fu_worker *w = q->w;
	struct io_uring_sqe *sqe = fu_loop_sqe(&w->loop, &e->ev);
	struct fuse_uring_cmd_req *cr = prep_cmd(q, sqe, cmd);

	if (cmd == FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)e->iov;
		sqe->len = 2;
		if (q->zero_copy)
			cr->ent_zero_copy_buf_index =
				(uint16_t)fu_ring_zc_slot(w->s, q->slot, (unsigned int)(e - q->ents), q->depth);
	} else {
		cr->commit_id = e->commit_id;
	}
	e->cmd = cmd;
	e->state = ENT_IN_KERNEL;
}

static void ent_kill(struct ring_ent *e)
{
	e->state = ENT_DEAD;
	e->q->live--;
}

/* Opcodes whose kernel request has out-arguments: on a pooled queue they
 * always get a buffer, even when nothing was copied in (so offset 0 may
 * name the first buffer); the others get one only for data they carry. */
static bool answers_with_data(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_LOOKUP: case FUSE_GETATTR: case FUSE_SETATTR: case FUSE_READLINK: case FUSE_SYMLINK:
	case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_LINK: case FUSE_OPEN: case FUSE_READ: case FUSE_WRITE:
	case FUSE_STATFS: case FUSE_GETXATTR: case FUSE_LISTXATTR: case FUSE_OPENDIR: case FUSE_READDIR:
	case FUSE_CREATE: case FUSE_GETLK: case FUSE_BMAP: case FUSE_IOCTL: case FUSE_POLL:
	case FUSE_READDIRPLUS: case FUSE_LSEEK: case FUSE_COPY_FILE_RANGE: case FUSE_COPY_FILE_RANGE_64:
	case FUSE_STATX: case FUSE_TMPFILE: case FUSE_INIT:
		return true;
	default:
		return false;
	}
}

/* Points the request at this request's pool buffer (or none). False when
 * the kernel named a buffer outside the pool. */
static bool take_pool_buffer(struct ring_ent *e, bool zc)
{
	struct ring_queue *q = e->q;
	struct furing_req *r = &e->req;
	const struct fuse_uring_ent_in_out *io = &e->hdr->ring_ent_in_out;
	uint32_t opcode = ((const struct fuse_in_header *)e->hdr->in_out)->opcode;
	bool has_buf = zc ? opcode != FUSE_READ : io->payload_sz || io->offset || answers_with_data(opcode);

	r->base = NULL;
	r->base_size = 0;
	r->buf_index = -1;
	if (!has_buf)
		return true;
	if (io->offset % q->buf_size || (uint64_t)io->offset + q->buf_size > q->pool_mem_size)
		return false;
	r->base = (unsigned char *)q->pool_mem + io->offset;
	r->base_size = q->buf_size;
	r->buf_index = q->pool_index;
	return true;
}

static void ent_serve(struct ring_ent *e)
{
	struct ring_queue *q = e->q;
	struct fu_session *s = q->w->s;
	struct furing_req *r = &e->req;
	const struct fuse_uring_ent_in_out *io = &e->hdr->ring_ent_in_out;
	int err = 0;

	e->state = ENT_SERVING;
	e->commit_id = io->commit_id;
	FU_STAT_ADD(q->served, 1);
	if (e->commit_id == 0) {
		/* Nothing we answer could ever be matched: the entry is lost. */
		fu_session_fail(s, "ring queue %u delivered a request without commit id", q->qid);
		ent_kill(e);
		return;
	}
	/* Zero-copy: the caller's pages are in the entry's slot; a WRITE's
	 * payload_sz counts them although none sits in the buffer. */
	const bool zc = q->zero_copy && (io->flags & FUSE_URING_ENT_ZERO_COPY);
	bool bad = q->pooled && !take_pool_buffer(e, zc);
	r->zc = zc;
	if (zc)
		r->zc_index = (uint16_t)fu_ring_zc_slot(s, q->slot, (unsigned int)(e - q->ents), q->depth);
	const uint32_t in_buf = zc ? 0 : io->payload_sz; /* bytes that sit in the buffer */

	struct fu_wire wire = {
		.in = e->hdr->in_out,
		.in_len = sizeof(e->hdr->in_out),
		.arg = e->hdr->op_in,
		.arg_len = sizeof(e->hdr->op_in),
		.data = zc ? NULL : r->base,
		.data_len = io->payload_sz,
		.split = true,
		.data_lent = zc && io->payload_sz != 0,
	};
	enum fu_decode_result d;
	if (bad || in_buf > r->base_size) {
		memset(&r->msg, 0, sizeof(r->msg)); /* the kernel broke its own limit */
		d = FU_DECODE_REPLY_ERR;
		bad = true;
	} else {
		d = fu_decode(&wire, &s->limits, &r->msg, &err);
	}
	r->msg.unique = e->commit_id;
	if (zc)
		r->zc_len = r->msg.opcode == FUSE_READ ? r->msg.arg.read.size : r->msg.data_len;
	/* Names and WRITE data sit at the start of the payload, which is also
	 * where the answer goes: the answer buffer starts after them. */
	fu_request_arrived(r, d, err ? err : EIO, bad ? 0 : in_buf);
}

static void ent_done(struct furing_event *ev, int res)
{
	struct ring_ent *e = container_of(ev, struct ring_ent, ev);
	struct fu_worker *w = e->q->w;

	if (res == 0) {
		ent_serve(e);
		return;
	}
	switch (-res) {
	case ENOTCONN: /* unmount, abort or our ring closing: the normal end */
	case ECANCELED:
		ent_kill(e);
		return;
	case EAGAIN: /* the connection was not initialised yet */
	case EINTR:
		if (w->stop_now)
			ent_kill(e);
		else
			submit_cmd(e, e->cmd);
		return;
	case ENOENT:
		/* The kernel no longer knew the request we answered (one that
		 * expects no answer, or one that ended while we served it), so
		 * it did not take the entry back: register it anew. */
		if (e->cmd == FUSE_IO_URING_CMD_COMMIT_AND_FETCH && !w->stop_now) {
			fu_log(w->s, FURING_LOG_WARNING, "ring queue %u: the kernel did not know request %llu any more",
			       e->q->qid, (unsigned long long)e->commit_id);
			submit_cmd(e, FUSE_IO_URING_CMD_REGISTER);
			return;
		}
		break;
	default:
		break;
	}
	if (e->cmd == FUSE_IO_URING_CMD_REGISTER) {
		w->ring_failed = true;
		fu_session_fail(w->s, "io_uring queue %u registration failed: %s", e->q->qid, strerror(-res));
	} else {
		fu_session_fail(w->s, "io_uring commit on queue %u failed: %s", e->q->qid, strerror(-res));
	}
	ent_kill(e);
}

/* Copies the out-args to the payload in order. A piece that already sits
 * where it belongs (READ data in the request's buffer) stays put. */
static void gather(unsigned char *dst, const struct iovec *iov, int iovcnt)
{
	size_t at = 0;

	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && iov[i].iov_base != dst + at)
			memmove(dst + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
}

/* True when copying in order could overwrite a piece before it is copied:
 * one that comes from the payload itself (the request's buffer) but not
 * from where it belongs, behind other pieces (an ioctl's data built in
 * furing_req_buf after its header, pieces in another order). */
static bool pieces_overlap(const unsigned char *dst, size_t size, const struct iovec *iov, int iovcnt)
{
	const uintptr_t lo = (uintptr_t)dst, hi = lo + size;
	size_t at = 0;

	if (iovcnt < 2)
		return false; /* one memmove copies any overlap right */
	for (int i = 0; i < iovcnt; i++) {
		const uintptr_t p = (uintptr_t)iov[i].iov_base;
		if (iov[i].iov_len && p != lo + at && p < hi && p + iov[i].iov_len > lo)
			return true;
		at += iov[i].iov_len;
	}
	return false;
}

/* Any thread: the entry's buffers are ours until the commit. */
static void ring_deliver(struct furing_req *req, int error, const struct iovec *iov, int iovcnt)
{
	struct ring_ent *e = container_of(req, struct ring_ent, req);
	struct fuse_out_header oh = {.len = sizeof(oh), .error = error, .unique = e->commit_id};
	unsigned char *dst = req->base;
	/* A zero-copy READ's data is already in the caller's pages. */
	const bool lent = req->zc && req->msg.opcode == FUSE_READ;
	const size_t size = lent ? req->zc_len : req->base_size;
	size_t total = 0;

	for (int i = 0; !error && i < iovcnt; i++) {
		if (iov[i].iov_len > size - total) { /* (written so that it cannot wrap) */
			oh.error = -EIO;
			break;
		}
		total += iov[i].iov_len;
	}
	if (oh.error) {
		total = 0;
	} else if (lent || total == 0) {
		/* nothing to copy */
	} else if (!dst) {
		oh.error = -EIO; /* an answer with data to a request the kernel gave no buffer */
		total = 0;
	} else if (!pieces_overlap(dst, size, iov, iovcnt)) {
		gather(dst, iov, iovcnt);
	} else {
		/* Rare (not READ's or WRITE's answers): gather elsewhere first. */
		unsigned char *tmp = malloc(total);
		if (tmp) {
			size_t at = 0;
			for (int i = 0; i < iovcnt; i++) {
				if (iov[i].iov_len)
					memcpy(tmp + at, iov[i].iov_base, iov[i].iov_len);
				at += iov[i].iov_len;
			}
			memcpy(dst, tmp, total);
			free(tmp);
		} else {
			oh.error = -EIO;
			total = 0;
		}
	}
	oh.len += (uint32_t)total;
	memcpy(e->hdr->in_out, &oh, sizeof(oh));
	e->hdr->ring_ent_in_out.payload_sz = (uint32_t)total;
}

/* The worker: the answer goes out with the fetch of the next request. */
static void ring_recycle(struct furing_req *req, bool answered)
{
	struct ring_ent *e = container_of(req, struct ring_ent, req);

	/* The kernel waits for a commit on every ring request: one that gets
	 * no answer still needs one, or the entry would be lost. */
	if (!answered)
		ring_deliver(req, -EIO, NULL, 0);
	if (e->q->w->stop_now) {
		ent_kill(e);
		return;
	}
	submit_cmd(e, FUSE_IO_URING_CMD_COMMIT_AND_FETCH);
}

/* Per-entry payloads: each starts on a page, whatever payload_size is:
 * that is where READ data lands, and furing_req_buf promises page
 * alignment (O_DIRECT reads into it need it). MAP_NORESERVE: only the pages
 * requests actually touch become memory. */
static int alloc_entry_payloads(struct ring_queue *q)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t stride = ((size_t)q->payload_size + page - 1) & ~(page - 1);

	q->payload_mem_size = stride * q->depth;
	q->payload_mem = mmap(NULL, q->payload_mem_size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (q->payload_mem == MAP_FAILED) {
		q->payload_mem = NULL;
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < q->depth; i++) {
		struct ring_ent *e = &q->ents[i];

		e->payload = (char *)q->payload_mem + stride * i;
		e->iov[1] = (struct iovec){e->payload, q->payload_size};
		e->req.base = e->payload;
		e->req.base_size = q->payload_size;
	}
	return 0;
}

/* The pool is touched by the kernel only, and pinned once if registered:
 * MAP_POPULATE would only make start-up slower. */
static int alloc_pool(struct ring_queue *q, uint64_t bytes, uint32_t buf_size)
{
	q->pool_mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->pool_mem == MAP_FAILED) {
		q->pool_mem = NULL;
		return -ENOMEM;
	}
	q->pool_mem_size = bytes;
	q->buf_size = buf_size;
	return 0;
}

int ring_queue_create(struct fu_worker *w, uint16_t qid, unsigned int slot, unsigned int depth,
		      uint32_t payload_size, struct ring_queue **out, char *err, size_t errlen)
{
	const struct fu_ring_plan *plan = &w->s->plan;
	struct ring_queue *q = calloc(1, sizeof(*q));
	size_t hdr_stride = RING_HDR_STRIDE;

	if (!q)
		goto nomem;
	q->w = w;
	q->qid = qid;
	q->slot = slot;
	q->depth = depth;
	q->payload_size = payload_size;
	q->pool_index = -1;
	q->ents = calloc(depth, sizeof(*q->ents));
	q->hdr_mem_size = hdr_stride * depth;
	q->hdr_mem = mmap(NULL, q->hdr_mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->hdr_mem == MAP_FAILED)
		q->hdr_mem = NULL;
	if (!q->ents || !q->hdr_mem)
		goto nomem_free;
	for (unsigned int i = 0; i < depth; i++) {
		struct ring_ent *e = &q->ents[i];

		e->q = q;
		e->hdr = (struct fuse_uring_req_header *)((char *)q->hdr_mem + hdr_stride * i);
		e->iov[0] = (struct iovec){e->hdr, sizeof(*e->hdr)};
		e->iov[1] = (struct iovec){NULL, 0}; /* a pooled entry registers no payload */
		e->ev.fn = ent_done;
		e->state = ENT_IDLE;
		fu_request_init(&e->req, w, &ring_ops, FU_RING, NULL, 0);
		e->req.qid = qid;
	}
	if (plan->pool ? alloc_pool(q, plan->pool_bytes, plan->buf_size) < 0 : alloc_entry_payloads(q) < 0)
		goto nomem_free;
	q->live = depth;
	*out = q;
	return 0;
nomem_free:
	if (q->hdr_mem)
		munmap(q->hdr_mem, q->hdr_mem_size);
	free(q->ents);
	free(q);
nomem:
	snprintf(err, errlen, "out of memory for io_uring queue %u (%u x %u bytes)", qid, depth, payload_size);
	return -1;
}

static void register_entries(struct ring_queue *q)
{
	for (unsigned int i = 0; i < q->depth; i++)
		submit_cmd(&q->ents[i], FUSE_IO_URING_CMD_REGISTER);
}

static void setup_done(struct furing_event *ev, int res);

static void submit_setup(struct ring_queue *q, uint32_t cmd)
{
	struct io_uring_sqe *sqe = fu_loop_sqe(&q->w->loop, &q->setup_ev);
	struct fuse_uring_cmd_req *cr;

	if (cmd == FUSE_IO_URING_CMD_ADD_QUEUE) {
		/* No pool yet: ADD_QUEUE carries no buffer index. */
		int idx = q->pool_index;
		q->pool_index = -1;
		cr = prep_cmd(q, sqe, cmd);
		q->pool_index = idx;
		cr->flags = q->zero_copy ? FUSE_URING_ZERO_COPY : 0;
	} else {
		cr = prep_cmd(q, sqe, cmd);
		cr->bufpool.uaddr = (uint64_t)(uintptr_t)q->pool_mem;
		cr->bufpool.len = (uint32_t)(q->pool_mem_size > UINT32_MAX ? UINT32_MAX : q->pool_mem_size);
	}
	q->setup_ev.fn = setup_done;
	q->setup_cmd = cmd;
}

/* Set-up of queue @q cannot go on: the session ends with the reason, and
 * none of its entries will ever be with the kernel. */
static void queue_fail(struct ring_queue *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void queue_fail(struct ring_queue *q, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->setup_cmd = 0;
	q->w->ring_failed = true;
	fu_session_fail(q->w->s, "%s", msg);
	for (unsigned int i = 0; i < q->depth; i++)
		ent_kill(&q->ents[i]);
}

/* A pool the kernel would not take: per-entry buffers, as on 6.18. */
static void fall_back(struct ring_queue *q, const char *what, int res)
{
	struct fu_session *s = q->w->s;

	q->setup_cmd = 0;
	if (s->cfg.buffer_pool == FURING_FEATURE_ON) {
		queue_fail(q, "buffer_pool = on: the kernel refused %s on queue %u: %s", what, q->qid, strerror(-res));
		return;
	}
	fu_log(s, FURING_LOG_WARNING, "io_uring queue %u: the kernel refused %s (%s): per-entry buffers", q->qid, what,
	       strerror(-res));
	q->pool_index = -1;
	if (alloc_entry_payloads(q) < 0) {
		queue_fail(q, "out of memory for the per-entry buffers of io_uring queue %u", q->qid);
		return;
	}
	atomic_fetch_add(&s->queues_fell_back, 1);
	register_entries(q);
}

static void setup_done(struct furing_event *ev, int res)
{
	struct ring_queue *q = container_of(ev, struct ring_queue, setup_ev);
	struct fu_session *s = q->w->s;
	const uint32_t cmd = q->setup_cmd;

	if ((res == -EAGAIN || res == -EINTR) && !q->w->stop_now) {
		submit_setup(q, cmd);
		return;
	}
	if (cmd == FUSE_IO_URING_CMD_ADD_QUEUE) {
		if (res == -EPERM && q->zero_copy && s->cfg.zero_copy != FURING_FEATURE_ON) {
			fu_log(s, FURING_LOG_WARNING, "io_uring queue %u: zero-copy refused (EPERM); pooled without it",
			       q->qid);
			q->zero_copy = false;
			submit_setup(q, cmd);
		} else if (res < 0) {
			fall_back(q, "ADD_QUEUE", res);
		} else {
			submit_setup(q, FUSE_IO_URING_CMD_ADD_BUFPOOL);
		}
		return;
	}
	if (res < 0 && q->pool_index >= 0) {
		/* Maybe only the registration: try the pool as plain memory. */
		fu_log(s, FURING_LOG_WARNING, "io_uring queue %u: registered pool refused (%s); trying it unregistered",
		       q->qid, strerror(-res));
		q->pool_index = -1;
		submit_setup(q, cmd);
		return;
	}
	if (res < 0 && q->zero_copy) {
		/* The queue exists with zero-copy, which takes pool entries only. */
		queue_fail(q, "io_uring queue %u: the kernel refused ADD_BUFPOOL on a zero-copy queue: %s", q->qid,
			   strerror(-res));
		return;
	}
	if (res < 0) {
		fall_back(q, "ADD_BUFPOOL", res);
		return;
	}
	q->setup_cmd = 0;
	q->pooled = true;
	atomic_fetch_add(&s->queues_pooled, 1);
	if (q->zero_copy)
		atomic_fetch_add(&s->queues_zc, 1);
	if (q->pool_index >= 0)
		atomic_fetch_add(&s->pools_fixed, 1);
	register_entries(q);
}

void ring_queue_register(struct ring_queue *q)
{
	struct fu_worker *w = q->w;
	struct fu_session *s = w->s;

	if (!q->pool_mem) {
		register_entries(q);
		return;
	}
	q->zero_copy = s->plan.zero_copy && w->table_registered;
	if (s->plan.zero_copy && !w->table_registered && s->cfg.zero_copy == FURING_FEATURE_ON) {
		queue_fail(q, "zero_copy = on: worker %u has no io_uring buffer table", w->idx);
		return;
	}
	if (w->table_registered && s->plan.pool_fixed) {
		struct iovec iov = {q->pool_mem, q->pool_mem_size};
		int ret = io_uring_register_buffers_update_tag(&w->loop.ring, q->slot, &iov, NULL, 1);
		if (ret == 1)
			q->pool_index = (int)q->slot;
		else
			fu_log(s, FURING_LOG_WARNING, "io_uring queue %u: cannot register its pool (%s); kept unregistered",
			       q->qid, strerror(ret < 0 ? -ret : EIO));
	}
	submit_setup(q, FUSE_IO_URING_CMD_ADD_QUEUE);
}

bool ring_queue_setting_up(const struct ring_queue *q)
{
	return q->setup_cmd != 0;
}

unsigned int ring_queue_live(const struct ring_queue *q)
{
	return q->live;
}

uint16_t ring_queue_qid(const struct ring_queue *q)
{
	return q->qid;
}

uint64_t ring_queue_served(const struct ring_queue *q)
{
	return FU_STAT_GET(q->served);
}

void ring_queue_free(struct ring_queue *q, bool buffers_may_be_in_use)
{
	if (!q)
		return;
	/* After a forced stop the kernel may still hold entries; leaking their
	 * buffers until exit beats letting it write into freed memory. */
	if (!buffers_may_be_in_use) {
		munmap(q->hdr_mem, q->hdr_mem_size);
		if (q->payload_mem)
			munmap(q->payload_mem, q->payload_mem_size);
		if (q->pool_mem)
			munmap(q->pool_mem, q->pool_mem_size);
		free(q->ents);
	}
	free(q);
}
