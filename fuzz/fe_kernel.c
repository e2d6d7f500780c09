/* The kernel's side of one worker for the engine fuzzer: the rings, the two
 * transports' buffers, the session fd, and the script's actions. See
 * fe_kernel.h; what is checked about requests and answers is fe_check.c. */
#include <errno.h>
#include <fcntl.h>
#include <sanitizer/asan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fe_fs.h"
#include "fe_input.h"
#include "fe_kernel.h"

#define MAX_READS 8
#define MAX_ENTS 16
#define MAX_IO 64
#define MAX_FIFO 256
#define MAX_RETRIEVES 16
#define SQE_BYTES 128 /* the worker's ring has IORING_SETUP_SQE128, as with a ring session */
#define HDR_BYTES sizeof(struct fuse_uring_req_header)
#define IN_HDR sizeof(struct fuse_in_header)

/* A legacy read the engine armed: the slot's buffer, while the kernel owns it. */
struct dev_read {
	uint64_t ud;
	uint8_t *buf;
	uint32_t len;
	bool parked;
	struct fe_rec *rec; /* the request last delivered through it */
};

enum ent_state {
	ENT_PARKED,  /* the kernel holds its SQE */
	ENT_SERVING, /* a request was delivered; the engine owes the commit */
	ENT_USER,    /* the kernel gave it back with an error; no SQE */
};

struct ring_ent {
	uint64_t ud;
	uint8_t *hdr, *payload;
	size_t payload_len;
	uint16_t qid;
	uint32_t cmd; /* the last command: what an error completes */
	enum ent_state st;
	uint64_t commit_id;
	struct fe_rec *rec;
};

/* Anything else on the ring: the filesystem's I/O and worker events. */
struct pending_io {
	uint64_t ud;
	uint8_t sqe[SQE_BYTES];
};

static struct fu_session *S;
static struct fu_worker *W;
static int ans_rd = -1, ans_wr = -1; /* the stand-in for /dev/fuse: answers arrive at ans_rd */
static int note_rd = -1;             /* notifications (to the session fd) arrive here */
static uint64_t last_retrieve;       /* notify_unique of the newest RETRIEVE seen */
static bool notes_due;               /* a notification was sent since the last look */
static int dev_fd = -1;             /* this input's channel fd (a dup of ans_wr) */
static uintptr_t page;
static struct fe_kernel_cfg cfg;

static struct dev_read reads[MAX_READS];
static unsigned int nreads;
static struct ring_ent ents[MAX_ENTS];
static unsigned int nents;
static struct pending_io ios[MAX_IO];
static unsigned int nios;
static uint8_t fifo[MAX_FIFO][SQE_BYTES]; /* SQEs taken off the SQ, not yet looked at */
static unsigned int fifo_head, fifo_tail;
static struct {
	uint64_t unique;
	void *cookie;
	bool aimed; /* a NOTIFY_REPLY carried its unique already: uniques stay unique */
} retrieves[MAX_RETRIEVES];
static unsigned int nretrieves;

static uint64_t next_unique = 2; /* the kernel's are even; never reused, so a stray answer is seen */
static bool gone;                /* the legacy channel was told the connection ended */
static bool stopped;             /* forced stop */
static bool fatal_injected;      /* something the engine must report as fatal happened */
static unsigned long dev_delivered, ring_delivered;

/* ---- ownership of buffers: what the kernel holds is poisoned ---- */

static void poison(const void *p, size_t n)
{
	ASAN_POISON_MEMORY_REGION(p, n);
}

static void unpoison(const void *p, size_t n)
{
	ASAN_UNPOISON_MEMORY_REGION(p, n);
}

/* Legacy answers: one message per writev on the SOCK_SEQPACKET stand-in. */
static void read_answers(void)
{
	static uint8_t msg[2 * FE_PAYLOAD_MAX + 4096];

	for (;;) {
		ssize_t n = recv(ans_rd, msg, sizeof(msg), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			FE_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
			return;
		}
		FE_CHECK((size_t)n <= sizeof(msg));
		struct fuse_out_header oh;
		FE_CHECK((size_t)n >= sizeof(oh));
		memcpy(&oh, msg, sizeof(oh));
		FE_CHECK(oh.len == (size_t)n);
		struct fe_rec *r = fe_rec_find(oh.unique, false);
		FE_CHECK(r != NULL);
		fe_answer_seen(r, oh.error, msg + sizeof(oh), (size_t)n - sizeof(oh));
	}
}

/* Notifications: unique 0, the code in error, one message per writev. */
static void check_named(const uint8_t *p, size_t body, size_t fixed, uint32_t namelen)
{
	FE_CHECK(namelen > 0 && namelen <= 1024 && body == fixed + namelen + 1);
	FE_CHECK(memchr(p + fixed, '\0', namelen) == NULL && p[fixed + namelen] == '\0');
}

static void read_notifications(void)
{
	static uint8_t msg[FE_PAYLOAD_MAX + 4096];

	for (;;) {
		ssize_t n = recv(note_rd, msg, sizeof(msg), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			FE_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
			return;
		}
		struct fuse_out_header oh;
		FE_CHECK((size_t)n <= sizeof(msg) && (size_t)n >= sizeof(oh));
		memcpy(&oh, msg, sizeof(oh));
		FE_CHECK(oh.len == (size_t)n && oh.unique == 0);
		const uint8_t *p = msg + sizeof(oh);
		const size_t body = (size_t)n - sizeof(oh);
		switch (oh.error) {
		case FUSE_NOTIFY_POLL:
			FE_CHECK(body == sizeof(struct fuse_notify_poll_wakeup_out));
			break;
		case FUSE_NOTIFY_INVAL_INODE:
			FE_CHECK(body == sizeof(struct fuse_notify_inval_inode_out));
			break;
		case FUSE_NOTIFY_INVAL_ENTRY: {
			struct fuse_notify_inval_entry_out o;
			FE_CHECK(body >= sizeof(o));
			memcpy(&o, p, sizeof(o));
			check_named(p, body, sizeof(o), o.namelen);
			break;
		}
		case FUSE_NOTIFY_DELETE: {
			struct fuse_notify_delete_out o;
			FE_CHECK(body >= sizeof(o));
			memcpy(&o, p, sizeof(o));
			check_named(p, body, sizeof(o), o.namelen);
			break;
		}
		case FUSE_NOTIFY_STORE: {
			struct fuse_notify_store_out o;
			FE_CHECK(body >= sizeof(o));
			memcpy(&o, p, sizeof(o));
			FE_CHECK(body == sizeof(o) + o.size);
			break;
		}
		case FUSE_NOTIFY_RETRIEVE: {
			struct fuse_notify_retrieve_out o;
			FE_CHECK(body == sizeof(o));
			memcpy(&o, p, sizeof(o));
			/* Never a unique the kernel could be using for a request. */
			FE_CHECK(o.notify_unique != 0 && o.notify_unique % 2 == 0 && o.notify_unique >= next_unique);
			last_retrieve = o.notify_unique;
			break;
		}
		default:
			fe_fail(__FILE__, __LINE__, "unknown notification code");
		}
	}
}

/* ---- the SQ and CQ rings ---- */

/* Takes what the engine queued off the SQ before anything would submit it. */
static void grab(void)
{
	struct io_uring_sq *sq = &W->loop.ring.sq;
	unsigned int n = sq->sqe_tail - sq->sqe_head;

	/* The engine sizes its SQ for every SQE it can have outstanding; a
	 * fuller SQ would mean it lost count. */
	FE_CHECK(n <= sq->ring_entries / 2);
	for (unsigned int i = 0; i < n; i++) {
		FE_CHECK(fifo_tail < MAX_FIFO);
		memcpy(fifo[fifo_tail++], &sq->sqes[((sq->sqe_head + i) & sq->ring_mask) << 1], SQE_BYTES);
	}
	sq->sqe_tail = sq->sqe_head;
}

/* One completion, dispatched by the engine's own loop. */
static void post(uint64_t ud, int res)
{
	struct io_uring_cq *cq = &W->loop.ring.cq;

	grab();
	unsigned int tail = *cq->ktail;
	FE_CHECK(tail - *cq->khead < cq->ring_entries);
	struct io_uring_cqe *c = &cq->cqes[tail & cq->ring_mask];
	c->user_data = ud;
	c->res = res;
	c->flags = 0;
	io_uring_smp_store_release(cq->ktail, tail + 1);
	FE_CHECK(fu_loop_turn(&W->loop, false) == 1);
	grab();
}

static struct dev_read *read_of(uint64_t ud)
{
	for (unsigned int i = 0; i < nreads; i++)
		if (reads[i].ud == ud)
			return &reads[i];
	return NULL;
}

static struct ring_ent *ent_of(uint64_t ud)
{
	for (unsigned int i = 0; i < nents; i++)
		if (ents[i].ud == ud)
			return &ents[i];
	return NULL;
}

static int io_of(uint64_t ud)
{
	for (unsigned int i = 0; i < nios; i++)
		if (ios[i].ud == ud)
			return (int)i;
	return -1;
}

static void io_remove(unsigned int i)
{
	memmove(&ios[i], &ios[i + 1], (nios - i - 1) * sizeof(ios[0]));
	nios--;
}

static void handle_dev_read(const struct io_uring_sqe *sqe)
{
	uint8_t *buf = (uint8_t *)(uintptr_t)sqe->addr;
	struct dev_read *d = read_of(sqe->user_data);

	/* No reads once the connection ended or the worker was forced out. */
	FE_CHECK(!gone && !stopped);
	FE_CHECK(sqe->flags == 0 && sqe->off == 0);
	/* What read(2) on /dev/fuse requires, or it fails EINVAL. */
	FE_CHECK(sqe->len >= 8192 && sqe->len >= IN_HDR + sizeof(struct fuse_write_in) + cfg.max_write);
	if (!d) {
		FE_CHECK(nreads < MAX_READS);
		d = &reads[nreads++];
		*d = (struct dev_read){.ud = sqe->user_data, .buf = buf, .len = sqe->len};
		/* The bytes in front of the buffer on its page are the slot's
		 * padding (so that WRITE data lands page-aligned): nobody's. */
		uint8_t *pg = (uint8_t *)((uintptr_t)buf & ~(page - 1));
		poison(pg, (size_t)(buf - pg));
	}
	FE_CHECK(d->buf == buf && d->len == sqe->len);
	FE_CHECK(!d->parked);
	if (d->rec) {
		if (d->rec->expect_answer && !d->rec->answered)
			read_answers(); /* written before the slot came back, if at all */
		fe_rec_retire(d->rec);
		d->rec = NULL;
	}
	d->parked = true;
	poison(d->buf, d->len);
}

static void handle_ring_cmd(const uint8_t *raw, const struct io_uring_sqe *sqe)
{
	struct fuse_uring_cmd_req cr;
	struct ring_ent *e = ent_of(sqe->user_data);

	memcpy(&cr, raw + offsetof(struct io_uring_sqe, cmd), sizeof(cr));
	FE_CHECK(!stopped);
	FE_CHECK(sqe->fd == dev_fd && sqe->flags == 0);
	FE_CHECK(cr.flags == 0); /* 7.3 gives it a meaning: send 0 (PROTOCOL.md pitfall 20) */
	FE_CHECK(cr.qid < W->nqueues);
	if (sqe->cmd_op == FUSE_IO_URING_CMD_REGISTER) {
		struct iovec iov[2];
		FE_CHECK(sqe->len == 2 && cr.commit_id == 0);
		memcpy(iov, (const void *)(uintptr_t)sqe->addr, sizeof(iov));
		FE_CHECK(iov[0].iov_len >= HDR_BYTES);
		FE_CHECK(iov[1].iov_len >= 8192 && iov[1].iov_len >= cfg.max_write);
		if (!e) {
			FE_CHECK(nents < MAX_ENTS);
			e = &ents[nents++];
			*e = (struct ring_ent){.ud = sqe->user_data, .hdr = iov[0].iov_base, .payload = iov[1].iov_base,
					       .payload_len = iov[1].iov_len, .qid = cr.qid};
		} else {
			/* Registered anew after the kernel gave it back. */
			FE_CHECK(e->st == ENT_USER);
			FE_CHECK(e->hdr == iov[0].iov_base && e->payload == iov[1].iov_base &&
				 e->payload_len == iov[1].iov_len && e->qid == cr.qid);
		}
	} else {
		FE_CHECK(sqe->cmd_op == FUSE_IO_URING_CMD_COMMIT_AND_FETCH);
		FE_CHECK(e && e->st == ENT_SERVING && e->rec);
		FE_CHECK(cr.qid == e->qid && cr.commit_id == e->commit_id);
		struct fuse_uring_req_header h;
		memcpy(&h, e->hdr, sizeof(h));
		struct fuse_out_header oh;
		memcpy(&oh, h.in_out, sizeof(oh));
		const uint32_t psz = h.ring_ent_in_out.payload_sz;
		FE_CHECK(oh.unique == e->commit_id);
		FE_CHECK(psz <= e->payload_len);
		FE_CHECK(oh.len == sizeof(oh) + psz);
		fe_answer_seen(e->rec, oh.error, e->payload, psz);
		fe_rec_retire(e->rec);
		e->rec = NULL;
	}
	e->cmd = sqe->cmd_op;
	e->st = ENT_PARKED;
	poison(e->hdr, HDR_BYTES);
	poison(e->payload, e->payload_len);
}

/* io_uring's cancel: the target completes -ECANCELED, the cancel 0; or the
 * cancel -ENOENT when the target is not pending. */
static void handle_cancel(const struct io_uring_sqe *sqe)
{
	int i = io_of(sqe->addr);
	if (i < 0) {
		post(sqe->user_data, -ENOENT);
		return;
	}
	io_remove((unsigned int)i);
	post(sqe->addr, -ECANCELED);
	post(sqe->user_data, 0);
}

static void handle(const uint8_t *raw)
{
	struct io_uring_sqe sqe;

	memcpy(&sqe, raw, sizeof(sqe));
	FE_CHECK(sqe.user_data != 0);
	if (sqe.opcode == IORING_OP_READ && sqe.fd == dev_fd) {
		handle_dev_read(&sqe);
	} else if (sqe.opcode == IORING_OP_URING_CMD) {
		handle_ring_cmd(raw, &sqe);
	} else if (sqe.opcode == IORING_OP_ASYNC_CANCEL) {
		handle_cancel(&sqe);
	} else {
		/* The filesystem's: completes when the script says. */
		FE_CHECK(sqe.fd != dev_fd);
		FE_CHECK(io_of(sqe.user_data) < 0 && !read_of(sqe.user_data) && !ent_of(sqe.user_data));
		FE_CHECK(nios < MAX_IO);
		ios[nios].ud = sqe.user_data;
		memcpy(ios[nios].sqe, raw, SQE_BYTES);
		nios++;
	}
}

static unsigned int parked_reads(void)
{
	unsigned int n = 0;
	for (unsigned int i = 0; i < nreads; i++)
		n += reads[i].parked;
	return n;
}

static unsigned int parked_ents(void)
{
	unsigned int n = 0;
	for (unsigned int i = 0; i < nents; i++)
		n += ents[i].st == ENT_PARKED;
	return n;
}

void fe_expect_notification(void)
{
	notes_due = true;
}

void fe_kernel_settle(void)
{
	for (unsigned int guard = 0;; guard++) {
		bool progress = false;
		uint64_t v;

		FE_CHECK(guard < 10000);
		/* Answers made on other threads wake the worker through its
		 * control eventfd; its completion (ctl_done) drains them. (Only
		 * looked at when there are some, to save system calls: a wake-up
		 * without a reason is caught at the end of the input.) */
		if (W->foreign) {
			FE_CHECK(read(W->ctl_fd, &v, sizeof(v)) == (ssize_t)sizeof(v));
			fu_worker_drain_foreign(W);
			progress = true;
		}
		grab();
		while (fifo_head < fifo_tail) {
			handle(fifo[fifo_head++]);
			progress = true;
		}
		fifo_head = fifo_tail = 0;
		if (fe_dev_answers_due())
			read_answers();
		if (notes_due) {
			notes_due = false;
			read_notifications();
		}
		if (!progress)
			break;
	}
	FE_CHECK(W->foreign == NULL);
	/* Every SQE the engine counts as outstanding is one the kernel holds. */
	FE_CHECK(W->loop.inflight == parked_reads() + parked_ents() + nios);
}

/* ---- the script's actions ---- */

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* The request's own facts, as the kernel knows them. */
/* A /dev/fuse COPY_FILE_RANGE the decoder accepts: exact length, no
 * extensions. */
static bool dev_plain_copy(const uint8_t *ih, size_t n)
{
	uint32_t op = get32(ih + offsetof(struct fuse_in_header, opcode));

	return (op == FUSE_COPY_FILE_RANGE || op == FUSE_COPY_FILE_RANGE_64) &&
	       n == IN_HDR + sizeof(struct fuse_copy_file_range_in) &&
	       get32(ih + offsetof(struct fuse_in_header, len)) == n &&
	       ih[offsetof(struct fuse_in_header, total_extlen)] == 0 &&
	       ih[offsetof(struct fuse_in_header, total_extlen) + 1] == 0;
}

static void rec_fill(struct fe_rec *r, const uint8_t *ih, const uint8_t *op, size_t op_len)
{
	r->opcode = get32(ih + offsetof(struct fuse_in_header, opcode));
	r->uid = get32(ih + offsetof(struct fuse_in_header, uid));
	r->gid = get32(ih + offsetof(struct fuse_in_header, gid));
	r->pid = get32(ih + offsetof(struct fuse_in_header, pid));
	size_t at;
	switch (r->opcode) {
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS:
		at = offsetof(struct fuse_read_in, size);
		break;
	case FUSE_GETXATTR: case FUSE_LISTXATTR:
		at = offsetof(struct fuse_getxattr_in, size);
		break;
	case FUSE_IOCTL:
		at = offsetof(struct fuse_ioctl_in, out_size);
		break;
	default:
		return;
	}
	r->have_hdr = op_len >= at + 4;
	if (r->have_hdr)
		r->size_arg = get32(op + at);
}

/* INTERRUPT aimed at a request in flight; NOTIFY_REPLY at a retrieve. */
static void aim(uint8_t *ih, uint8_t *op, size_t op_len, uint64_t *unique)
{
	uint32_t opcode = get32(ih + offsetof(struct fuse_in_header, opcode));

	if (opcode == FUSE_INTERRUPT && op_len >= 8) {
		uint64_t target = fe_unique_in_flight(fe_choice8());
		if (target)
			put64(op, target | (fe_choice8() & 1)); /* sometimes odd: naming no request */
	} else if (opcode == FUSE_NOTIFY_REPLY && nretrieves) {
		unsigned int k = fe_pick(nretrieves);
		if (!retrieves[k].aimed) {
			retrieves[k].aimed = true;
			*unique = retrieves[k].unique;
		}
	}
}

void fe_kernel_dev_request(const uint8_t *bytes, size_t n, unsigned int flags)
{
	struct dev_read *d = NULL;
	for (unsigned int i = 0; i < nreads && !d; i++)
		if (reads[i].parked)
			d = &reads[i];
	if (!d)
		return;
	if (n > d->len)
		n = d->len;
	unpoison(d->buf, d->len);
	memcpy(d->buf, bytes, n);
	d->parked = false;
	if (n >= IN_HDR) {
		uint8_t *ih = d->buf;
		uint64_t unique = next_unique;
		next_unique += 2;
		if (flags & FE_REQ_FIX_LEN)
			put32(ih + offsetof(struct fuse_in_header, len), (uint32_t)n);
		if (flags & FE_REQ_AIM)
			aim(ih, ih + IN_HDR, n - IN_HDR, &unique);
		put64(ih + offsetof(struct fuse_in_header, unique), unique);
		struct fe_rec *r = fe_rec_new();
		r->ring = false;
		r->unique = unique;
		r->slot_ud = d->ud;
		rec_fill(r, ih, ih + IN_HDR, n - IN_HDR);
		r->expect_answer = !fe_no_reply(r->opcode);
		r->region = d->buf;
		r->region_len = n;
		r->ans_lo = d->buf;
		r->ans_hi = d->buf + d->len;
		/* Nothing past where WRITE data would start, or a well-formed
		 * copy (its header reaches past that, but it has no names or
		 * data): the answer buffer is the page-aligned one data
		 * answers and O_DIRECT I/O want. */
		r->buf_no_tail = n <= IN_HDR + sizeof(struct fuse_write_in) || dev_plain_copy(ih, n);
		d->rec = r;
	}
	dev_delivered++;
	post(d->ud, (int)n);
	fe_kernel_settle();
}

void fe_kernel_ring_request(const uint8_t *bytes, size_t n, unsigned int flags, unsigned int which,
			    uint8_t raw_op_len, uint32_t raw_payload_sz)
{
	unsigned int parked = parked_ents();
	if (!parked)
		return;
	which %= parked;
	struct ring_ent *e = NULL;
	for (unsigned int i = 0; i < nents && !e; i++)
		if (ents[i].st == ENT_PARKED && which-- == 0)
			e = &ents[i];

	uint8_t ih[IN_HDR] = {0};
	uint8_t op[FUSE_URING_OP_IN_OUT_SZ];
	memcpy(ih, bytes, n < IN_HDR ? n : IN_HDR);
	size_t rest = n > IN_HDR ? n - IN_HDR : 0;
	uint32_t opcode = get32(ih + offsetof(struct fuse_in_header, opcode));
	size_t op_len = (flags & FE_REQ_RAW_OP_LEN) ? raw_op_len % (sizeof(op) + 1)
						     : fe_op_header_size(opcode, cfg.setxattr_ext);
	if (op_len > rest)
		op_len = rest;
	memset(op, 0xa5, sizeof(op)); /* what an earlier request left there */
	if (op_len)
		memcpy(op, bytes + IN_HDR, op_len);
	size_t pay = rest - op_len;
	if (pay > e->payload_len)
		pay = e->payload_len;
	uint64_t unique = next_unique;
	next_unique += 2;
	if (flags & FE_REQ_AIM)
		aim(ih, op, op_len, &unique);
	const uint64_t commit_id = (flags & FE_REQ_NO_COMMIT_ID) ? 0 : unique;
	if (flags & FE_REQ_FIX_LEN)
		put32(ih + offsetof(struct fuse_in_header, len), (uint32_t)(IN_HDR + op_len + pay));
	put64(ih + offsetof(struct fuse_in_header, unique), unique);
	const uint32_t psz = (flags & FE_REQ_RAW_PAYLOAD) ? raw_payload_sz : (uint32_t)pay;

	/* What fuse_uring_copy_to_ring writes; the rest of the header keeps
	 * the previous answer's bytes. */
	unpoison(e->hdr, HDR_BYTES);
	unpoison(e->payload, e->payload_len);
	struct fuse_uring_req_header *h = (struct fuse_uring_req_header *)(void *)e->hdr;
	memcpy(h->in_out, ih, IN_HDR);
	memcpy(h->op_in, op, sizeof(op));
	if (pay)
		memcpy(e->payload, bytes + IN_HDR + op_len, pay);
	struct fuse_uring_ent_in_out io = {.flags = 0, .commit_id = commit_id, .payload_sz = psz};
	memcpy(&h->ring_ent_in_out, &io, sizeof(io));

	struct fe_rec *r = fe_rec_new();
	r->ring = true;
	r->unique = commit_id;
	r->slot_ud = e->ud;
	/* The header is what in.len says op_in holds (whatever was written
	 * there), as the engine reads it. */
	const uint32_t in_len = get32(ih + offsetof(struct fuse_in_header, len));
	const uint64_t claimed = in_len >= IN_HDR + (uint64_t)psz ? in_len - IN_HDR - (uint64_t)psz : UINT64_MAX;
	rec_fill(r, ih, op, claimed <= sizeof(op) ? claimed : 0);
	/* Without a commit id the engine cannot answer: it drops the entry. */
	r->expect_answer = commit_id != 0;
	r->region = e->payload;
	r->region_len = psz <= e->payload_len ? psz : 0;
	r->ans_lo = e->payload;
	r->ans_hi = e->payload + e->payload_len;
	r->buf_no_tail = psz == 0;
	e->rec = r;
	e->commit_id = commit_id;
	e->st = ENT_SERVING;
	if (commit_id == 0)
		fatal_injected = true;
	else
		ring_delivered++;
	post(e->ud, 0);
	fe_kernel_settle();
	if (commit_id == 0) {
		/* The engine gave up on the entry: it will never commit. */
		FE_CHECK(e->st == ENT_SERVING);
		fe_rec_retire(r);
		e->rec = NULL;
		e->st = ENT_USER;
	}
}

unsigned int fe_kernel_pending_io(void)
{
	return nios;
}

/* A read or write's result: mostly all of it, sometimes short, an error. */
static int rw_result(uint32_t len)
{
	static const int errs[] = {EIO, ENOSPC, EINTR, EAGAIN, EFBIG, EBADF, ECANCELED, 600};
	switch (fe_choice8() % 8) {
	case 1:
		return (int)(fe_choice32() % ((uint64_t)len + 1));
	case 2:
	case 5:
		return -errs[fe_pick(8)];
	case 3:
		return 0;
	default:
		return len > INT32_MAX ? INT32_MAX : (int)len;
	}
}

void fe_kernel_complete_io(unsigned int which)
{
	if (!nios)
		return;
	which %= nios;
	struct pending_io io = ios[which];
	io_remove(which);
	const struct io_uring_sqe *sqe = (const struct io_uring_sqe *)(const void *)io.sqe;
	int res;

	switch (sqe->opcode) {
	case IORING_OP_READ:
		res = rw_result(sqe->len);
		/* The kernel writes what it read. */
		for (int i = 0; i < res; i++)
			((uint8_t *)(uintptr_t)sqe->addr)[i] = (uint8_t)(i * 13 + 7);
		break;
	case IORING_OP_WRITE: {
		/* ... and reads what is written. */
		const volatile uint8_t *p = (const uint8_t *)(uintptr_t)sqe->addr;
		for (uint32_t i = 0; i < sqe->len; i++)
			(void)p[i];
		res = rw_result(sqe->len);
		break;
	}
	case IORING_OP_FSYNC:
	case IORING_OP_FALLOCATE:
		res = fe_choice8() % 4 == 1 ? -EIO : 0;
		break;
	case IORING_OP_STATX:
		res = fe_choice8() % 4 == 1 ? -ENOENT : 0;
		if (res == 0) {
			uint8_t *stx = (uint8_t *)(uintptr_t)sqe->addr2;
			for (size_t i = 0; i < sizeof(struct statx); i++)
				stx[i] = fe_choice8();
		}
		break;
	case IORING_OP_TIMEOUT: {
		struct __kernel_timespec ts;
		memcpy(&ts, (const void *)(uintptr_t)sqe->addr, sizeof(ts));
		FE_CHECK(ts.tv_sec >= 0 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
		res = -ETIME;
		break;
	}
	case IORING_OP_POLL_ADD:
		res = fe_choice8() % 4 == 1 ? -EBADF : (int)(sqe->poll32_events & fe_choice32());
		break;
	default:
		/* furing_req_sqe / furing_worker_sqe: whatever the operation says. */
		res = (int)fe_choice32();
		break;
	}
	post(io.ud, res);
	fe_kernel_settle();
}

void fe_kernel_dev_error(unsigned int which)
{
	static const int errs[] = {EINTR, EAGAIN, ENOENT, ENODEV, ECONNABORTED, EIO};
	for (unsigned int i = 0; i < nreads; i++) {
		struct dev_read *d = &reads[i];
		if (!d->parked)
			continue;
		int err = errs[which % 6];
		/* The end of the connection, or a failure that ends the
		 * channel too: nothing may be read after either. */
		if (err == ENODEV || err == ECONNABORTED || err == EIO)
			gone = true;
		if (err == EIO)
			fatal_injected = true;
		d->parked = false;
		post(d->ud, -err);
		fe_kernel_settle();
		return;
	}
}

void fe_kernel_ring_error(unsigned int which)
{
	static const int reg_errs[] = {EAGAIN, EINTR, ENOTCONN, ECANCELED, EINVAL};
	static const int commit_errs[] = {ENOENT, ENOTCONN, ECANCELED, EIO};
	unsigned int parked = parked_ents();
	if (!parked)
		return;
	struct ring_ent *e = NULL;
	unsigned int k = (which >> 3) % parked;
	for (unsigned int i = 0; i < nents && !e; i++)
		if (ents[i].st == ENT_PARKED && k-- == 0)
			e = &ents[i];
	int err;
	if (e->cmd == FUSE_IO_URING_CMD_REGISTER) {
		err = reg_errs[(which & 7) % 5];
		fatal_injected |= err == EINVAL;
	} else {
		err = commit_errs[(which & 7) % 4];
		/* ENOENT: registered anew with a warning, or, during a forced
		 * stop, a failed commit. */
		fatal_injected |= err == EIO || (err == ENOENT && stopped);
		if (err == ENOENT && !stopped)
			fe_expect_warning();
	}
	e->st = ENT_USER;
	post(e->ud, -err);
	fe_kernel_settle();
}

void fe_kernel_stop_now(void)
{
	/* What ctl_done does when furing_session_wait forces the worker out. */
	W->stop_now = true;
	stopped = true;
	fe_kernel_settle();
}

void fe_kernel_retrieve(void)
{
	static uintptr_t cookie = 0x1000;

	if (nretrieves == MAX_RETRIEVES)
		return;
	cookie += 16;
	int ret = furing_notify_retrieve((struct furing_session *)S, fe_choice64(), fe_choice64(), fe_choice32(),
					 (void *)cookie);
	FE_CHECK(ret == 0);
	last_retrieve = 0;
	read_notifications();
	FE_CHECK(last_retrieve != 0);
	retrieves[nretrieves].unique = last_retrieve;
	retrieves[nretrieves].cookie = (void *)cookie;
	retrieves[nretrieves].aimed = false;
	nretrieves++;
}

bool fe_retrieve_cookie_ok(void *cookie)
{
	for (unsigned int i = 0; i < nretrieves; i++)
		if (retrieves[i].cookie == cookie && cookie) {
			retrieves[i].cookie = NULL; /* each comes back once */
			return true;
		}
	return false;
}

/* ---- set-up and the end of an input ---- */

void fe_kernel_init(struct fu_session *s, struct fu_worker *w)
{
	int sv[2];

	S = s;
	W = w;
	page = (uintptr_t)sysconf(_SC_PAGESIZE);
	fe_check_init(s, w);
	FE_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	ans_rd = sv[0];
	ans_wr = sv[1];
	int big = 1 << 20;
	setsockopt(ans_wr, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	/* The session fd, where notifications are written. */
	FE_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	note_rd = sv[0];
	s->fd = sv[1];
	setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	/* A real ring that refuses every submission: see fe_kernel.h. */
	int ret = fu_loop_init(&w->loop, 64, 128, IORING_SETUP_SQE128 | IORING_SETUP_R_DISABLED, false);
	if (ret < 0) {
		/* Not a finding: the machine (for now) allows no io_uring,
		 * as the integration suite's fallback test arranges briefly. */
		fprintf(stderr, "fuzz_engine: cannot create an io_uring: %s (needs kernel.io_uring_disabled=0)\n",
			strerror(-ret));
		exit(2);
	}
	w->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	FE_CHECK(w->ctl_fd >= 0);
	fu_current_worker = w;
}

int fe_kernel_dev_fd(void)
{
	int fd = fcntl(ans_wr, F_DUPFD_CLOEXEC, 0);
	FE_CHECK(fd >= 0);
	return fd;
}

void fe_kernel_begin(const struct fe_kernel_cfg *c)
{
	cfg = *c;
	dev_fd = W->dev_fd;
	gone = stopped = fatal_injected = false;
	dev_delivered = ring_delivered = 0;
	fe_check_begin(c);
	/* What the worker does once its ring exists. */
	dev_channel_arm(W->dev);
	for (unsigned int i = 0; i < W->nqueues; i++)
		ring_queue_register(W->queues[i]);
	fe_kernel_settle();
}

static uint64_t ops_counted(int kind)
{
	uint64_t n = 0;
	for (unsigned int op = 0; op <= FUSE_OPCODE_MAX; op++)
		n += W->stats.ops[kind][op];
	return n;
}

void fe_kernel_end(void)
{
	/* Whatever the filesystem still holds gets its answer. */
	for (unsigned int guard = 0;; guard++) {
		FE_CHECK(guard < 10000);
		fe_kernel_settle();
		if (fe_fs_deferred()) {
			fe_fs_answer_deferred(fe_choice8(), fe_choice8() & 1);
			continue;
		}
		if (nios) {
			fe_kernel_complete_io(0);
			continue;
		}
		break;
	}

	/* The connection ends: the armed read gets ENODEV, every parked
	 * entry -ENOTCONN (or -ECANCELED, when the ring goes first). */
	for (unsigned int i = 0; i < nreads; i++)
		if (reads[i].parked) {
			reads[i].parked = false;
			gone = true;
			post(reads[i].ud, -ENODEV);
		}
	for (unsigned int i = 0; i < nents; i++)
		if (ents[i].st == ENT_PARKED) {
			ents[i].st = ENT_USER;
			post(ents[i].ud, fe_choice8() & 1 ? -ECANCELED : -ENOTCONN);
		}
	fe_kernel_settle();
	FE_CHECK(nios == 0);
	FE_CHECK(W->loop.inflight == 0);
	/* Nothing more was written, and no wake-up is left without a reason. */
	uint64_t v;
	FE_CHECK(read(W->ctl_fd, &v, sizeof(v)) < 0 && errno == EAGAIN);
	FE_CHECK(recv(ans_rd, &v, sizeof(v), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	read_notifications();
	if (!stopped) {
		/* Every slot and entry came back and is now dead: the worker
		 * would leave its loop on its own. */
		FE_CHECK(dev_channel_live(W->dev) == 0);
		for (unsigned int i = 0; i < W->nqueues; i++)
			FE_CHECK(ring_queue_live(W->queues[i]) == 0);
	}
	FE_CHECK(ops_counted(FU_DEV) == dev_delivered);
	FE_CHECK(ops_counted(FU_RING) == ring_delivered);
	fe_check_end(stopped, fatal_injected);

	for (unsigned int i = 0; i < nreads; i++) {
		uint8_t *pg = (uint8_t *)((uintptr_t)reads[i].buf & ~(page - 1));
		unpoison(pg, (size_t)(reads[i].buf - pg) + reads[i].len);
	}
	for (unsigned int i = 0; i < nents; i++) {
		unpoison(ents[i].hdr, HDR_BYTES);
		unpoison(ents[i].payload, ents[i].payload_len);
	}
	nreads = nents = nios = 0;
	nretrieves = 0;
	fu_retrieve_free_all(S);
}
