/* See nbd_ring.h. */
#include "nbd_ring.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbd_wire.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
/* Replies of 32 4 KiB reads at once, with room; block status chunks of up
 * to 8k extents. */
#define RX_CAP (256u << 10)
/* Data at least this long is received in place instead of copied. */
#define RX_DIRECT (64u << 10)
#define BLOCK_CMDS 64u
#define MAX_BLOCKS (1u << 16) /* 4M commands in flight: more is a bug, not load */

struct nbd_ring_cmd {
	struct furing_req *req; /* NULL while free */
	void *buf;
	uint64_t offset;
	uint32_t length;
	uint32_t gen;  /* in the cookie's high half: a stale cookie is unknown */
	uint32_t next; /* free list or send queue, index + 1 */
	uint16_t type;
	uint8_t sent : 1, replied : 1;
	int error;     /* the first error a reply carried */
	uint64_t covered; /* READ: bytes its data and hole chunks gave (no two may overlap) */
	uint64_t ext_pos; /* BLOCK_STATUS: where the next extent starts */
	uint8_t hdr[NBD_WIRE_REQUEST_SIZE];
};

static struct nbd_ring_cmd *cmd_at(const struct nbd_ring *r, uint32_t idx1)
{
	uint32_t i = idx1 - 1;
	return &r->blocks[i / BLOCK_CMDS][i % BLOCK_CMDS];
}

int nbd_ring_init(struct nbd_ring *r, const struct nbd_ring_ops *ops)
{
	memset(r, 0, sizeof(*r));
	r->ops = ops;
	r->fd = -1;
	r->rx_cap = RX_CAP;
	r->rx = malloc(RX_CAP);
	return r->rx ? 0 : -ENOMEM;
}

void nbd_ring_free(struct nbd_ring *r)
{
	for (uint32_t b = 0; b < r->nblocks; b++)
		free(r->blocks[b]);
	free(r->blocks);
	free(r->rx);
	r->blocks = NULL;
	r->rx = NULL;
	r->nblocks = 0;
}

/* ---- the command table ---- */

static uint32_t cmd_alloc(struct nbd_ring *r)
{
	if (!r->free_head) {
		if (r->nblocks == MAX_BLOCKS)
			return 0;
		struct nbd_ring_cmd **nb = realloc(r->blocks, (r->nblocks + 1) * sizeof(*nb));
		if (!nb)
			return 0;
		r->blocks = nb;
		struct nbd_ring_cmd *blk = calloc(BLOCK_CMDS, sizeof(*blk));
		if (!blk)
			return 0;
		r->blocks[r->nblocks++] = blk;
		for (uint32_t i = BLOCK_CMDS; i > 0; i--) {
			blk[i - 1].next = r->free_head;
			r->free_head = (r->nblocks - 1) * BLOCK_CMDS + i;
		}
	}
	uint32_t idx1 = r->free_head;
	r->free_head = cmd_at(r, idx1)->next;
	return idx1;
}

static uint64_t cookie_of(const struct nbd_ring *r, uint32_t idx1)
{
	return (uint64_t)cmd_at(r, idx1)->gen << 32 | idx1;
}

/* The command a cookie from the wire names, or 0. */
static uint32_t cmd_of_cookie(const struct nbd_ring *r, uint64_t cookie)
{
	uint32_t idx1 = (uint32_t)cookie;

	if (idx1 == 0 || idx1 > r->nblocks * BLOCK_CMDS)
		return 0;
	const struct nbd_ring_cmd *c = cmd_at(r, idx1);
	return c->req && c->gen == (uint32_t)(cookie >> 32) ? idx1 : 0;
}

static bool lookup(void *ctx, uint64_t cookie, struct nbd_wire_cmd *out)
{
	const struct nbd_ring *r = ctx;
	uint32_t idx1 = cmd_of_cookie(r, cookie);

	if (!idx1 || cmd_at(r, idx1)->replied)
		return false;
	const struct nbd_ring_cmd *c = cmd_at(r, idx1);
	*out = (struct nbd_wire_cmd){.type = c->type, .offset = c->offset, .length = c->length};
	return true;
}

/* Both sent and answered (a reply can only follow the whole request, but
 * its completion may be handled first): the request may have its buffer back. */
static void maybe_complete(struct nbd_ring *r, uint32_t idx1)
{
	struct nbd_ring_cmd *c = cmd_at(r, idx1);

	if (!c->sent || !c->replied)
		return;
	struct furing_req *req = c->req;
	int error = c->error;
	c->req = NULL;
	c->gen++;
	c->next = r->free_head;
	r->free_head = idx1;
	r->inflight--;
	r->ops->completed(r, req, error);
}

/* ---- the end ---- */

static void maybe_closed(struct nbd_ring *r)
{
	if (r->running || r->rx_armed || r->tx_armed || r->fd < 0)
		return;
	/* Every command still held fails: the connection is gone. */
	for (uint32_t i = 1; i <= r->nblocks * BLOCK_CMDS; i++) {
		struct nbd_ring_cmd *c = cmd_at(r, i);
		if (c->req) {
			c->sent = c->replied = 1;
			c->error = ENOTCONN;
			maybe_complete(r, i);
		}
	}
	r->txq_head = r->txq_tail = 0;
	r->tx_off = 0;
	r->rx_len = 0;
	r->data_cmd = 0;
	r->data_left = 0;
	r->fd = -1;
	r->ops->closed(r);
}

static void fail(struct nbd_ring *r, const char *why)
{
	if (r->running)
		r->ops->dead(r, why); /* which calls nbd_ring_kill */
}

void nbd_ring_kill(struct nbd_ring *r)
{
	if (!r->running)
		return;
	r->running = false;
	/* Wakes our recv and send with an end or an error; the cancels make
	 * sure of it. */
	shutdown(r->fd, SHUT_RDWR);
	if (r->w && r->rx_armed)
		furing_worker_cancel(r->w, &r->rx_ev);
	if (r->w && r->tx_armed)
		furing_worker_cancel(r->w, &r->tx_ev);
	maybe_closed(r);
}

void nbd_ring_stop(struct nbd_ring *r)
{
	r->w = NULL;
	r->rx_armed = r->tx_armed = false;
}

bool nbd_ring_idle(const struct nbd_ring *r)
{
	return r->inflight == 0 && !r->tx_armed && r->txq_head == 0 && r->rx_len == 0 && r->data_left == 0;
}

/* ---- sending ---- */

static uint32_t wire_len(const struct nbd_ring_cmd *c)
{
	return NBD_WIRE_REQUEST_SIZE + (c->type == NBD_WIRE_WRITE ? c->length : 0);
}

static void tx_done(struct furing_event *ev, int res);

/* The queue's head commands in one sendmsg, if none is in flight. */
static void tx_kick(struct nbd_ring *r)
{
	if (r->tx_armed || !r->running || !r->txq_head || !r->w)
		return;
	unsigned int n = 0;
	uint32_t skip = r->tx_off;
	for (uint32_t i = r->txq_head; i && n + 2 <= NBD_RING_TX_IOV; i = cmd_at(r, i)->next) {
		struct nbd_ring_cmd *c = cmd_at(r, i);
		if (skip < NBD_WIRE_REQUEST_SIZE)
			r->iov[n++] = (struct iovec){c->hdr + skip, NBD_WIRE_REQUEST_SIZE - skip};
		if (c->type == NBD_WIRE_WRITE) {
			uint32_t at = skip > NBD_WIRE_REQUEST_SIZE ? skip - NBD_WIRE_REQUEST_SIZE : 0;
			r->iov[n++] = (struct iovec){(char *)c->buf + at, c->length - at};
		}
		skip = 0;
	}
	struct io_uring_sqe *sqe = furing_worker_sqe(r->w, &r->tx_ev);
	if (!sqe) {
		fail(r, "no room on the ring to send");
		return;
	}
	r->msg = (struct msghdr){.msg_iov = r->iov, .msg_iovlen = n};
	io_uring_prep_sendmsg(sqe, r->fd, &r->msg, MSG_NOSIGNAL | MSG_WAITALL);
	r->tx_armed = true;
}

static void tx_advance(struct nbd_ring *r, uint64_t sent)
{
	while (r->txq_head && sent > 0) {
		uint32_t idx1 = r->txq_head;
		struct nbd_ring_cmd *c = cmd_at(r, idx1);
		uint32_t left = wire_len(c) - r->tx_off;
		if (sent < left) {
			r->tx_off += (uint32_t)sent;
			return;
		}
		sent -= left;
		r->tx_off = 0;
		r->txq_head = c->next;
		if (!r->txq_head)
			r->txq_tail = 0;
		c->next = 0;
		c->sent = 1;
		maybe_complete(r, idx1);
	}
}

static void tx_done(struct furing_event *ev, int res)
{
	struct nbd_ring *r = container_of(ev, struct nbd_ring, tx_ev);

	r->tx_armed = false;
	if (!r->running) {
		maybe_closed(r);
	} else if (res < 0) {
		char why[128];
		snprintf(why, sizeof(why), "send: %s", strerror(-res));
		fail(r, why);
	} else {
		tx_advance(r, (uint64_t)res);
		tx_kick(r);
	}
	r->ops->settle(r);
}

int nbd_ring_cmd(struct nbd_ring *r, struct furing_req *req, uint16_t type, uint16_t flags, uint64_t offset,
		 uint32_t length, void *buf)
{
	if (!r->running)
		return -ENOTCONN;
	uint32_t idx1 = cmd_alloc(r);
	if (!idx1)
		return -ENOMEM;
	struct nbd_ring_cmd *c = cmd_at(r, idx1);
	c->req = req;
	c->buf = buf;
	c->offset = offset;
	c->length = length;
	c->type = type;
	c->sent = c->replied = 0;
	c->error = 0;
	c->covered = 0;
	c->ext_pos = offset;
	c->next = 0;
	nbd_wire_request(c->hdr, flags, type, cookie_of(r, idx1), offset, length);
	if (r->txq_tail)
		cmd_at(r, r->txq_tail)->next = idx1;
	else
		r->txq_head = idx1;
	r->txq_tail = idx1;
	r->inflight++;
	tx_kick(r);
	return 0;
}

/* ---- receiving ---- */

static void rx_done(struct furing_event *ev, int res);

static void rx_arm(struct nbd_ring *r)
{
	if (r->rx_armed || !r->running || !r->w)
		return;
	struct io_uring_sqe *sqe = furing_worker_sqe(r->w, &r->rx_ev);
	if (!sqe) {
		fail(r, "no room on the ring to receive");
		return;
	}
	r->rx_direct = r->data_left >= RX_DIRECT;
	if (r->rx_direct) /* the rest of a large read, in place */
		io_uring_prep_recv(sqe, r->fd, (char *)cmd_at(r, r->data_cmd)->buf + r->data_at, r->data_left,
				   MSG_WAITALL);
	else
		io_uring_prep_recv(sqe, r->fd, r->rx + r->rx_len, r->rx_cap - r->rx_len, 0);
	/* The last recv emptied the socket: the next waits for data rather
	 * than trying first (an attempt that would only say EAGAIN). */
	if (!r->rx_more)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	r->rx_armed = true;
}

static void chunk_end(struct nbd_ring *r, uint32_t idx1, bool done)
{
	struct nbd_ring_cmd *c = cmd_at(r, idx1);

	if (!done)
		return;
	/* A successful READ must have had every byte: chunks that leave a gap
	 * (or, adding up past the length, overlap) would answer the caller
	 * with whatever the buffer held. The server is broken: EIO for this
	 * read, and the connection goes (one line, reconnect). */
	bool short_read = c->type == NBD_WIRE_READ && !c->error && c->covered != c->length;
	char why[128];
	if (short_read) {
		snprintf(why, sizeof(why), "malformed reply: chunks of %llu bytes for a read of %u",
			 (unsigned long long)c->covered, c->length);
		c->error = EIO;
	}
	c->replied = 1;
	maybe_complete(r, idx1);
	if (short_read)
		fail(r, why);
}

/* One decoded reply or chunk; its data, if any, is next on the wire. */
static void handle(struct nbd_ring *r, const struct nbd_wire_msg *m)
{
	uint32_t idx1 = cmd_of_cookie(r, m->cookie); /* the decoder found it */
	struct nbd_ring_cmd *c = cmd_at(r, idx1);

	if (m->error && !c->error)
		c->error = (int)m->error;
	switch (m->type) {
	case NBD_WIRE_CHUNK_OFFSET_HOLE:
		memset((char *)c->buf + m->at, 0, m->data);
		c->covered += m->data;
		break;
	case NBD_WIRE_CHUNK_BLOCK_STATUS:
		for (uint32_t i = 0; i < m->extents; i++) {
			uint32_t len, flags;
			nbd_wire_extent(m, i, &len, &flags);
			r->ops->extent(c->req, c->ext_pos, len, flags);
			c->ext_pos += len;
		}
		break;
	case NBD_WIRE_CHUNK_OFFSET_DATA:
	case NBD_WIRE_CHUNK_SIMPLE:
		c->covered += m->data;
		if (m->data) {
			r->data_cmd = idx1;
			r->data_at = m->at;
			r->data_left = m->data;
			r->data_done = m->done;
			return;
		}
		break;
	}
	chunk_end(r, idx1, m->done);
}

/* Decodes everything received; returns false when the connection died. */
static bool rx_parse(struct nbd_ring *r)
{
	size_t pos = 0;

	while (r->running) {
		if (r->data_left) {
			size_t n = r->rx_len - pos < r->data_left ? r->rx_len - pos : r->data_left;
			memcpy((char *)cmd_at(r, r->data_cmd)->buf + r->data_at, r->rx + pos, n);
			pos += n;
			r->data_at += (uint32_t)n;
			r->data_left -= (uint32_t)n;
			if (r->data_left)
				break;
			uint32_t idx1 = r->data_cmd;
			r->data_cmd = 0;
			chunk_end(r, idx1, r->data_done);
			if (!r->running)
				return false; /* a short read killed it: the buffer is the close's now */
			continue;
		}
		struct nbd_wire_msg m;
		enum nbd_wire_status st;
		char why[200];
		size_t used = nbd_wire_decode(r->rx + pos, r->rx_len - pos, r->structured, r->rx_cap - NBD_WIRE_STRUCTURED_SIZE,
					      lookup, r, &m, &st, why, sizeof(why));
		if (st == NBD_WIRE_MORE)
			break;
		if (st == NBD_WIRE_BAD) {
			char line[256];
			snprintf(line, sizeof(line), "malformed reply: %s", why);
			fail(r, line);
			return false;
		}
		pos += used;
		handle(r, &m);
		if (!r->running)
			return false;
	}
	memmove(r->rx, r->rx + pos, r->rx_len - pos);
	r->rx_len -= pos;
	return r->running;
}

static void rx_done(struct furing_event *ev, int res)
{
	struct nbd_ring *r = container_of(ev, struct nbd_ring, rx_ev);

	r->rx_armed = false;
	if (!r->running) {
		maybe_closed(r);
	} else if (res <= 0) {
		char why[128];
		snprintf(why, sizeof(why), "%s", res == 0 ? "the server closed the connection" : strerror(-res));
		fail(r, why);
	} else if (r->rx_direct) {
		r->rx_more = true; /* replies may have followed the data */
		r->data_at += (uint32_t)res;
		r->data_left -= (uint32_t)res;
		if (r->data_left == 0) {
			uint32_t idx1 = r->data_cmd;
			r->data_cmd = 0;
			chunk_end(r, idx1, r->data_done);
			rx_parse(r); /* what the buffer still holds */
		}
		rx_arm(r);
	} else {
		r->rx_more = (size_t)res == r->rx_cap - r->rx_len; /* it filled the buffer: maybe more is there */
		r->rx_len += (size_t)res;
		if (rx_parse(r))
			rx_arm(r);
	}
	r->ops->settle(r);
}

int nbd_ring_start(struct nbd_ring *r, struct furing_worker *w, int fd, bool structured)
{
	r->w = w;
	r->fd = fd;
	r->structured = structured;
	r->running = true;
	r->rx_len = 0;
	r->data_cmd = 0;
	r->data_left = 0;
	r->tx_off = 0;
	r->rx_ev.fn = rx_done;
	r->tx_ev.fn = tx_done;
	struct io_uring_sqe *sqe = furing_worker_sqe(w, &r->rx_ev);
	if (!sqe) {
		r->running = false;
		r->fd = -1;
		return -EOPNOTSUPP;
	}
	io_uring_prep_recv(sqe, r->fd, r->rx, r->rx_cap, 0);
	r->rx_direct = false;
	r->rx_armed = true;
	return 0;
}
