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
 * still write into them. */
#include <errno.h>
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
	unsigned int depth;
	unsigned int live; /* entries not dead */
	uint64_t served;   /* requests received; read by the main thread */
	uint32_t payload_size;
	struct ring_ent *ents;
	void *hdr_mem, *payload_mem;
	size_t hdr_mem_size, payload_mem_size;
};

static void ring_deliver(struct furing_req *req, int error, const struct iovec *iov, int iovcnt);
static void ring_recycle(struct furing_req *req, bool answered);
static void ent_done(struct furing_event *ev, int res);

static const struct fu_transport_ops ring_ops = {
	.deliver = ring_deliver,
	.recycle = ring_recycle,
};

static void submit_cmd(struct ring_ent *e, uint32_t cmd)
{
	struct fu_worker *w = e->q->w;
	struct io_uring_sqe *sqe = fu_loop_sqe(&w->loop, &e->ev);
	struct fuse_uring_cmd_req *cr = (struct fuse_uring_cmd_req *)sqe->cmd;

	sqe->opcode = IORING_OP_URING_CMD;
	fu_worker_dev_target(w, sqe);
	sqe->cmd_op = cmd;
	cr->qid = e->q->qid;
	if (cmd == FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)e->iov;
		sqe->len = 2;
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

	struct fu_wire wire = {
		.in = e->hdr->in_out,
		.in_len = sizeof(e->hdr->in_out),
		.arg = e->hdr->op_in,
		.arg_len = sizeof(e->hdr->op_in),
		.data = e->payload,
		.data_len = io->payload_sz,
		.split = true,
	};
	enum fu_decode_result d;
	if (io->payload_sz > q->payload_size) {
		memset(&r->msg, 0, sizeof(r->msg)); /* the kernel broke its own limit */
		d = FU_DECODE_REPLY_ERR;
	} else {
		d = fu_decode(&wire, &s->limits, &r->msg, &err);
	}
	r->msg.unique = e->commit_id;
	/* Names and WRITE data sit at the start of the payload, which is also
	 * where the answer goes: the answer buffer starts after them. */
	fu_request_arrived(r, d, err ? err : EIO, io->payload_sz <= q->payload_size ? io->payload_sz : 0);
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
	unsigned char *dst = e->payload;
	const size_t size = e->q->payload_size;
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

int ring_queue_create(struct fu_worker *w, uint16_t qid, unsigned int depth, uint32_t payload_size,
		      struct ring_queue **out, char *err, size_t errlen)
{
	struct ring_queue *q = calloc(1, sizeof(*q));
	size_t hdr_stride = 512; /* 288 rounded up: keeps entries on separate cache lines */
	/* Each payload starts on a page, whatever payload_size is: that is
	 * where READ data lands, and furing_req_buf promises page alignment
	 * (O_DIRECT reads into it need it). */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t stride = ((size_t)payload_size + page - 1) & ~(page - 1);

	if (!q)
		goto nomem;
	q->w = w;
	q->qid = qid;
	q->depth = depth;
	q->payload_size = payload_size;
	q->ents = calloc(depth, sizeof(*q->ents));
	q->hdr_mem_size = hdr_stride * depth;
	q->payload_mem_size = stride * depth;
	/* MAP_NORESERVE: only the pages requests actually touch become memory. */
	q->hdr_mem = mmap(NULL, q->hdr_mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	q->payload_mem = mmap(NULL, q->payload_mem_size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!q->ents || q->hdr_mem == MAP_FAILED || q->payload_mem == MAP_FAILED) {
		if (q->hdr_mem != MAP_FAILED && q->hdr_mem)
			munmap(q->hdr_mem, q->hdr_mem_size);
		if (q->payload_mem != MAP_FAILED && q->payload_mem)
			munmap(q->payload_mem, q->payload_mem_size);
		free(q->ents);
		free(q);
		goto nomem;
	}
	for (unsigned int i = 0; i < depth; i++) {
		struct ring_ent *e = &q->ents[i];

		e->q = q;
		e->hdr = (struct fuse_uring_req_header *)((char *)q->hdr_mem + hdr_stride * i);
		e->payload = (char *)q->payload_mem + stride * i;
		e->iov[0] = (struct iovec){e->hdr, sizeof(*e->hdr)};
		e->iov[1] = (struct iovec){e->payload, payload_size};
		e->ev.fn = ent_done;
		e->state = ENT_IDLE;
		fu_request_init(&e->req, w, &ring_ops, FU_RING, e->payload, payload_size);
		e->req.qid = qid;
	}
	q->live = depth;
	*out = q;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory for io_uring queue %u (%u x %u bytes)", qid, depth, payload_size);
	return -1;
}

void ring_queue_register(struct ring_queue *q)
{
	for (unsigned int i = 0; i < q->depth; i++)
		submit_cmd(&q->ents[i], FUSE_IO_URING_CMD_REGISTER);
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
		munmap(q->payload_mem, q->payload_mem_size);
		free(q->ents);
	}
	free(q);
}
