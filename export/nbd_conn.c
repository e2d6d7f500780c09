/* See nbd_conn.h.
 *
 * THE RING PATH (nbd_ring.c). Once libnbd has made the connection, a plain
 * (not TLS) connection driven from io_uring hands its socket to nbd_ring:
 * commands go out and replies come in as io_uring operations, and libnbd
 * is not called for the data. libnbd's handle stays open (its socket is
 * ours meanwhile), in its READY state: at the close, when nothing is in
 * flight, the stream is between replies again and libnbd sends the final
 * flush and the disconnect. A TLS connection keeps libnbd's path below
 * (gnutls owns the records), and so does the blocking fallback.
 *
 * THE LIBNBD PATH. The socket: libnbd says which way it wants to move data next
 * (nbd_aio_get_direction); we keep at most one POLLIN and one POLLOUT poll
 * armed on the worker's ring for it, and on each tell libnbd
 * (nbd_aio_notify_read/write). libnbd reads one reply per notification, so
 * a readable socket is read on while it holds more (read_on), and the
 * requests those replies finish are answered together. Commands are sent
 * by libnbd at once when the socket takes them; when it does not, the
 * direction includes WRITE and the POLLOUT poll finishes the job. Many
 * commands are in flight at a time.
 *
 * The tick: a 1 s timeout on the ring. It notices a server that stopped
 * answering (no completion for timeout_s while commands are in flight: the
 * socket is shut, which makes libnbd fail them), and reconnects a
 * connection that died. */
#include "nbd_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "nbd_ring.h"
#include "nbd_wire.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define TICK_NS 1000000000ull
/* libnbd refuses larger requests than this when the server names no limit. */
#define LIBNBD_PAYLOAD_CAP (32u << 20)

enum conn_state {
	CONN_READY,      /* serving */
	CONN_DOWN,       /* dead: requests fail at once, a reconnect is due at the next tick */
	CONN_CONNECTING, /* a reconnect in progress */
	CONN_DRAINING,   /* dead, the ring still holds operations on its socket */
};

struct nbd_conn {
	struct nbd_disk *disk; /* the export's, shared with its other connections */
	char *uri;
	unsigned int index;
	enum nbd_slot slot;
	bool block_status; /* structured replies and base:allocation asked for */
	bool writable;
	unsigned int timeout_s;
	struct nbd_conn_caps caps;

	struct nbd_handle *h; /* NULL while down */
	int fd;               /* h's socket once ready */
	enum conn_state state;
	bool sync;         /* no io_uring: every set waits for its completion in nbd_conn_end */
	bool down;         /* counted in disk->conns_down */

	struct furing_worker *w;
	struct furing_event in_ev, out_ev, tick_ev;
	bool in_armed, out_armed, tick_armed;

	bool read_on;           /* readable() may read several replies (simple replies, no TLS) */
	uint64_t reply_bytes;   /* wire bytes of the replies completed, for read_on */
	unsigned int inflight;  /* commands sent, not yet completed */
	uint64_t completions;   /* progress, for the stall check */
	uint64_t completions_at_tick;
	unsigned int stalled_s; /* ticks in a row without progress while commands are in flight */
	unsigned int connecting_s;
	time_t last_attempt;    /* sync mode: when the last reconnect was tried */

	struct furing_req *done_head, *done_tail; /* finished sets, for drain() */

	struct nbd_ring ring; /* the data path, when on_ring */
	bool on_ring;
	nbd_conn_extent_fn extent_fn; /* the block status caller's */
};

/* Set while nbd_conn_close waits on this thread: completions of commands
 * whose requests are gone (a forced stop) must not touch them. */
static __thread struct nbd_conn *closing_conn;

static void ring_completed(struct nbd_ring *r, struct furing_req *req, int error);
static void ring_dead(struct nbd_ring *r, const char *why);
static void ring_closed(struct nbd_ring *r);
static void ring_settle(struct nbd_ring *r);
static void ring_extent(struct furing_req *req, uint64_t offset, uint32_t length, uint32_t flags);

static const char *const op_names[] = {"read", "write", "flush", "zero", "block status"};

/* While a worker drives the connection, its session's log; before and
 * after (nbd_conn_close runs after the session), the export's. */
#define conn_log(c, level, ...)                                                                                       \
	export_log(&(c)->disk->log, (c)->w ? furing_worker_session((c)->w) : NULL, level, __VA_ARGS__)

/* libnbd's last error on this thread, without its trailing newline. */
static const char *nbd_why(void)
{
	static __thread char buf[512];
	const char *e = nbd_get_error();

	snprintf(buf, sizeof(buf), "%s", e ? e : "the server closed the connection");
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- handles ---- */

static struct nbd_handle *new_handle(bool block_status, char *err, size_t errlen)
{
	struct nbd_handle *h = nbd_create();

	if (!h) {
		snprintf(err, errlen, "libnbd: %.200s", nbd_why()); /* bounded, so the prefix always fits */
		return NULL;
	}
	/* The URI comes from the command line of the user who runs us: its
	 * tls-psk-file= and tls-certificates= may name local files. */
	nbd_set_uri_allow_local_file(h, true);
		/* A READ's buffer is only answered on success: no need to zero it first. */
	nbd_set_pread_initialize(h, false);
	/* For SEEK_DATA / SEEK_HOLE; a server without it simply does not offer it. */
	if (block_status)
		nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION);
	else
		nbd_set_request_structured_replies(h, false);
	return h;
}

static void read_caps(struct nbd_handle *h, struct nbd_conn_caps *caps)
{
	int64_t max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);

	caps->size = (uint64_t)nbd_get_size(h);
	caps->read_only = nbd_is_read_only(h) == 1;
	caps->can_flush = nbd_can_flush(h) == 1;
	caps->can_fua = nbd_can_fua(h) == 1;
	caps->can_zero = nbd_can_zero(h) == 1;
	caps->can_multi_conn = nbd_can_multi_conn(h) == 1;
	caps->can_block_status = nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	caps->max_payload = max > 0 && max < LIBNBD_PAYLOAD_CAP ? (uint32_t)max : LIBNBD_PAYLOAD_CAP;
}

/* Replies whose size on the socket we know (read_on): simple replies, and
 * no TLS (whose records are neither the replies' size nor all on the
 * socket: gnutls may hold some). */
static bool simple_plain(struct nbd_handle *h)
{
	return nbd_get_structured_replies_negotiated(h) == 0 && nbd_get_tls_negotiated(h) == 0;
}

/* Runs @h until it is ready, dead, or @timeout_s passed (blocking). */
static int connect_blocking(struct nbd_handle *h, const char *uri, unsigned int timeout_s, char *err, size_t errlen)
{
	long long deadline = now_ms() + (long long)timeout_s * 1000;

	if (nbd_aio_connect_uri(h, uri) < 0) {
		snprintf(err, errlen, "%s", nbd_why());
		return -1;
	}
	while (!nbd_aio_is_ready(h)) {
		long long left = deadline - now_ms();
		if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h)) {
			snprintf(err, errlen, "%s", nbd_why());
			return -1;
		}
		if (left <= 0) {
			snprintf(err, errlen, "%s: no answer from the server within %u s", uri, timeout_s);
			return -1;
		}
		if (nbd_poll(h, (int)(left < 1000 ? left : 1000)) < 0) {
			snprintf(err, errlen, "%s", nbd_why());
			return -1;
		}
	}
	return 0;
}

static unsigned int connect_timeout(const struct nbd_conn *c)
{
	return c->timeout_s ? c->timeout_s : EXPORT_NBD_TIMEOUT_DEFAULT;
}

struct nbd_conn *nbd_conn_open(struct nbd_disk *disk, const char *uri, unsigned int index, enum nbd_slot slot,
			       bool block_status, bool writable, unsigned int timeout_s, char *err, size_t errlen)
{
	struct nbd_conn *c = calloc(1, sizeof(*c));

	if (!c || !(c->uri = strdup(uri))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->disk = disk;
	c->index = index;
	c->slot = slot;
	c->block_status = block_status;
	c->writable = writable;
	c->timeout_s = timeout_s;
	static const struct nbd_ring_ops ring_ops = {
		.completed = ring_completed, .dead = ring_dead, .closed = ring_closed, .settle = ring_settle,
		.extent = ring_extent,
	};
	if (nbd_ring_init(&c->ring, &ring_ops) < 0) {
		snprintf(err, errlen, "out of memory");
		nbd_ring_free(&c->ring);
		free(c->uri);
		free(c);
		return NULL;
	}
	c->h = new_handle(block_status, err, errlen);
	if (!c->h || connect_blocking(c->h, uri, connect_timeout(c), err, errlen) < 0) {
		nbd_ring_free(&c->ring);
		nbd_close(c->h);
		free(c->uri);
		free(c);
		return NULL;
	}
	read_caps(c->h, &c->caps);
	c->fd = nbd_aio_get_fd(c->h);
	c->read_on = simple_plain(c->h);
	c->state = CONN_READY;
	return c;
}

const struct nbd_conn_caps *nbd_conn_caps(const struct nbd_conn *c)
{
	return &c->caps;
}

/* ---- finished command sets ---- */

static void push_done(struct nbd_conn *c, struct furing_req *req)
{
	nbd_cmd_of(req)->next = NULL;
	if (c->done_tail)
		nbd_cmd_of(c->done_tail)->next = req;
	else
		c->done_head = req;
	c->done_tail = req;
}

static void issue_flush(struct nbd_conn *c, struct furing_req *req, int32_t res, furing_io_done done);

/* Answers finished sets, outside libnbd (their @done may issue more). */
static void drain(struct nbd_conn *c)
{
	struct furing_req *req;

	while ((req = c->done_head)) {
		struct nbd_cmd *cmd = nbd_cmd_of(req);
		c->done_head = cmd->next;
		if (!c->done_head)
			c->done_tail = NULL;
		if (cmd->err == 0 && cmd->flush_after) {
			issue_flush(c, req, cmd->res, cmd->done);
			continue;
		}
		/* The application learns that the disk failed it: ENOSPC means
		 * something to it, the server's other reasons do not. */
		int res = cmd->err == 0 ? cmd->res : cmd->err == ENOSPC ? -ENOSPC : -EIO;
		cmd->done(req, res);
	}
}

static void set_finished(struct nbd_conn *c, struct furing_req *req)
{
	struct nbd_cmd *cmd = nbd_cmd_of(req);

	if (--cmd->pending != 0)
		return;
	if (cmd->completed < cmd->issued && !cmd->err)
		cmd->err = EIO; /* retired without an answer (refused, or freed with a dead handle) */
	push_done(c, req);
}

/* The server failed a command: said for the export's first one only. */
static void note_refusal(struct nbd_conn *c, enum nbd_op op, int error)
{
	if (!atomic_exchange(&c->disk->refusal_logged, true))
		conn_log(c, FURING_LOG_WARNING,
			 "the NBD server failed a %s: %s (the application gets an I/O error; later failures are not "
			 "logged)",
			 op_names[op], strerror(error));
}

/* libnbd's completion, inside libnbd (no nbd_* calls on this handle here):
 * only the result. The command leaves the set in command_retired. */
static int command_completed(void *user_data, int *error)
{
	struct furing_req *req = user_data;

	if (closing_conn) /* the session is over: nobody to answer */
		return 1;
	struct nbd_cmd *cmd = nbd_cmd_of(req);
	struct nbd_worker_conns *wc = furing_worker_data(furing_req_worker(req));
	struct nbd_conn *c = wc->conn[cmd->slot];

	/* A simple reply: its header, and a successful read's data. */
	c->reply_bytes += 16 + (cmd->op == NBD_OP_READ && !*error ? (uint32_t)cmd->res : 0);
	cmd->completed++;
	if (*error && !cmd->err) {
		cmd->err = *error;
		/* ENOTCONN: the connection died, which conn_lost reports once. */
		if (*error != ENOTCONN)
			note_refusal(c, cmd->op, *error);
	}
	return 1;
}

/* libnbd's "free" of the completion: called exactly once per command,
 * whether it completed, was aborted with its connection, or was refused
 * by the nbd_aio_* call itself (possibly inside that call). */
static void command_retired(void *user_data)
{
	struct furing_req *req = user_data;

	if (closing_conn) {
		closing_conn->inflight--;
		return;
	}
	struct nbd_worker_conns *wc = furing_worker_data(furing_req_worker(req));
	struct nbd_conn *c = wc->conn[nbd_cmd_of(req)->slot];
	c->inflight--;
	c->completions++;
	set_finished(c, req);
}

/* ---- the connection's life ---- */

static void arm(struct nbd_conn *c);

static void drop_handle(struct nbd_conn *c)
{
	/* Polls still armed on its socket must end before a new socket can
	 * be polled (one of each at a time); their completions re-arm. */
	if (c->w && !c->sync) {
		if (c->in_armed)
			furing_worker_cancel(c->w, &c->in_ev);
		if (c->out_armed)
			furing_worker_cancel(c->w, &c->out_ev);
	}
	nbd_close(c->h);
	c->h = NULL;
	c->fd = -1;
	c->on_ring = false;
	c->read_on = false; /* until the next handle says what its replies are */
	c->state = CONN_DOWN;
}

static void conn_lost(struct nbd_conn *c, const char *why)
{
	if (!c->down) {
		c->down = true;
		if (atomic_fetch_add(&c->disk->conns_down, 1) == 0)
			conn_log(c, FURING_LOG_WARNING,
				 "NBD server lost (connection %u: %s): requests fail with EIO until it is back; "
				 "reconnecting every second",
				 c->index, why);
	}
	c->stalled_s = 0;
	if (c->on_ring && c->ring.running) {
		/* The socket closes once the ring let go of it (ring_closed,
		 * maybe at once): its receive may be writing into a request. */
		c->state = CONN_DRAINING;
		nbd_ring_kill(&c->ring);
		return;
	}
	drop_handle(c);
}

/* ---- the ring path's side ---- */

static struct nbd_conn *conn_of_ring(struct nbd_ring *r)
{
	return container_of(r, struct nbd_conn, ring);
}

/* A ring command finished: what command_completed and command_retired
 * together do for libnbd's. */
static void ring_completed(struct nbd_ring *r, struct furing_req *req, int error)
{
	struct nbd_conn *c = conn_of_ring(r);
	struct nbd_cmd *cmd = nbd_cmd_of(req);

	c->inflight--;
	if (closing_conn == c)
		return;
	c->completions++;
	cmd->completed++;
	if (error && !cmd->err) {
		cmd->err = error;
		if (error != ENOTCONN)
			note_refusal(c, cmd->op, error);
	}
	set_finished(c, req);
}

static void ring_dead(struct nbd_ring *r, const char *why)
{
	struct nbd_conn *c = conn_of_ring(r);

	if (c->state == CONN_READY)
		conn_lost(c, why);
	else
		nbd_ring_kill(r);
}

static void ring_closed(struct nbd_ring *r)
{
	drop_handle(conn_of_ring(r));
}

static void settle(struct nbd_conn *c);

static void ring_settle(struct nbd_ring *r)
{
	settle(conn_of_ring(r));
}

static void ring_extent(struct furing_req *req, uint64_t offset, uint32_t length, uint32_t flags)
{
	struct nbd_worker_conns *wc = furing_worker_data(furing_req_worker(req));
	struct nbd_conn *c = wc->conn[nbd_cmd_of(req)->slot];

	c->extent_fn(req, offset, length, (flags & NBD_WIRE_STATE_HOLE) != 0);
}

/* A ready, plain connection on a worker with io_uring: its data moves to
 * the ring. Otherwise (TLS, no ring) libnbd's path. */
static void take_socket(struct nbd_conn *c)
{
	if (c->sync || !c->w || c->on_ring || nbd_get_tls_negotiated(c->h) != 0)
		return;
	if (nbd_ring_start(&c->ring, c->w, c->fd, nbd_get_structured_replies_negotiated(c->h) == 1) == 0)
		c->on_ring = true;
}

/* A reconnect finished its handshake: the same disk, or none. */
static void conn_reconnected(struct nbd_conn *c)
{
	struct nbd_conn_caps caps;

	read_caps(c->h, &caps);
	if (caps.size != c->caps.size || (c->writable && caps.read_only)) {
		conn_log(c, FURING_LOG_WARNING,
			 "the NBD server is back but offers another disk (%llu bytes%s, was %llu): not using it",
			 (unsigned long long)caps.size, caps.read_only ? ", read-only" : "",
			 (unsigned long long)c->caps.size);
		drop_handle(c);
		return;
	}
	c->caps = caps;
	c->fd = nbd_aio_get_fd(c->h);
	c->read_on = simple_plain(c->h);
	c->state = CONN_READY;
	c->down = false;
	if (atomic_fetch_sub(&c->disk->conns_down, 1) == 1)
		conn_log(c, FURING_LOG_INFO, "NBD server back: reconnected to %s", c->uri);
	take_socket(c);
}

static void start_reconnect(struct nbd_conn *c)
{
	char err[256];

	c->h = new_handle(c->block_status, err, sizeof(err));
	if (!c->h)
		return;
	if (nbd_aio_connect_uri(c->h, c->uri) < 0) {
		nbd_close(c->h);
		c->h = NULL;
		return;
	}
	c->state = CONN_CONNECTING;
	c->connecting_s = 0;
}

/* After anything that may have moved libnbd's state: notice a death or a
 * finished reconnect, answer what finished, poll as libnbd wants. */
static void settle(struct nbd_conn *c)
{
	if (c->on_ring || c->state == CONN_DRAINING) {
		drain(c);
		return;
	}
	if (c->h && (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h))) {
		if (c->state == CONN_READY)
			conn_lost(c, nbd_why());
		else
			drop_handle(c); /* a failed reconnect: quiet, the next tick tries again */
	} else if (c->state == CONN_CONNECTING && nbd_aio_is_ready(c->h)) {
		conn_reconnected(c);
	}
	drain(c);
	arm(c);
}

/* The server left commands unanswered for the timeout: shutting the socket
 * makes libnbd see the end of the connection and fail them. */
static void reset_stalled(struct nbd_conn *c)
{
	char why[64];

	snprintf(why, sizeof(why), "no answer for %u s, connection reset", c->stalled_s);
	if (c->on_ring) {
		conn_lost(c, why);
		return;
	}
	shutdown(c->fd, SHUT_RDWR);
	if (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_READ)
		nbd_aio_notify_read(c->h);
	conn_lost(c, why);
}

/* ---- events on the worker's ring ---- */

static void arm(struct nbd_conn *c)
{
	if (c->sync || !c->w || !c->h || c->on_ring)
		return;
	unsigned int dir = nbd_aio_get_direction(c->h);
	int fd = c->state == CONN_READY ? c->fd : nbd_aio_get_fd(c->h);
	if (fd < 0)
		return;
	if ((dir & LIBNBD_AIO_DIRECTION_READ) && !c->in_armed && furing_worker_poll(c->w, &c->in_ev, fd, POLLIN) == 0)
		c->in_armed = true;
	if ((dir & LIBNBD_AIO_DIRECTION_WRITE) && !c->out_armed &&
	    furing_worker_poll(c->w, &c->out_ev, fd, POLLOUT) == 0)
		c->out_armed = true;
}

/* Bytes the socket holds for us to read. */
static uint64_t socket_bytes(int fd)
{
	int n = 0;
	return ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? (uint64_t)n : 0;
}

/* libnbd reads one reply per nbd_aio_notify_read and then returns to
 * READY; re-arming the poll to learn that the next one is there costs a
 * loop turn (an io_uring_enter) per reply, and answers leave one by one.
 * So after the first reply, read on while the socket holds more. Only when
 * it does: a notification on an empty socket leaves libnbd waiting in
 * REPLY.START, where a write whose payload is half sent stays half sent
 * (the server may be waiting for it: a deadlock) and new commands are not
 * sent. What the socket holds is counted down by the size of each reply
 * libnbd completed (a simple reply: 16 bytes, and a read's data); that is
 * at least what libnbd took from it (a reply begun earlier counts whole),
 * so the estimate never says "more" when there is none. */
static void read_on(struct nbd_conn *c)
{
	uint64_t left = 0;

	for (unsigned int n = c->inflight; n > 0 && c->h; n--) {
		if (left <= c->reply_bytes) {
			left = socket_bytes(c->fd); /* what is there now, after what we took */
			if (left == 0)
				return;
		} else {
			left -= c->reply_bytes;
		}
		uint64_t before = c->completions;
		c->reply_bytes = 0;
		if (!(nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_READ) || nbd_aio_notify_read(c->h) < 0 ||
		    c->completions == before)
			return;
	}
}

static void readable(struct furing_event *ev, int res)
{
	struct nbd_conn *c = container_of(ev, struct nbd_conn, in_ev);

	c->in_armed = false;
	/* libnbd's rule: check the direction again before notifying. Never
	 * once the ring has the socket (a poll left from the reconnect). */
	if (res > 0 && c->h && !c->on_ring && (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_READ)) {
		uint64_t before = c->completions;
		c->reply_bytes = 0;
		if (nbd_aio_notify_read(c->h) == 0 && c->read_on && c->completions != before)
			read_on(c);
	}
	settle(c);
}

static void writable(struct furing_event *ev, int res)
{
	struct nbd_conn *c = container_of(ev, struct nbd_conn, out_ev);

	c->out_armed = false;
	if (res > 0 && c->h && !c->on_ring && (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_WRITE))
		nbd_aio_notify_write(c->h);
	settle(c);
}

static void tick(struct furing_event *ev, int res)
{
	struct nbd_conn *c = container_of(ev, struct nbd_conn, tick_ev);

	c->tick_armed = false;
	if (!c->w)
		return;
	switch (c->state) {
	case CONN_READY:
		if (c->inflight == 0 || c->completions != c->completions_at_tick)
			c->stalled_s = 0;
		else if (++c->stalled_s >= c->timeout_s && c->timeout_s)
			reset_stalled(c);
		c->completions_at_tick = c->completions;
		break;
	case CONN_DOWN:
		start_reconnect(c);
		break;
	case CONN_CONNECTING:
		if (++c->connecting_s >= connect_timeout(c))
			drop_handle(c);
		break;
	case CONN_DRAINING:
		break;
	}
	settle(c);
	if (furing_worker_timeout(c->w, &c->tick_ev, TICK_NS) == 0)
		c->tick_armed = true;
}

int nbd_conn_start(struct nbd_conn *c, struct furing_worker *w)
{
	c->w = w;
	c->in_ev.fn = readable;
	c->out_ev.fn = writable;
	c->tick_ev.fn = tick;
	int ret = furing_worker_timeout(w, &c->tick_ev, TICK_NS);
	if (ret == -EOPNOTSUPP) {
		c->sync = true; /* the engine runs without io_uring */
		return 0;
	}
	if (ret < 0)
		return ret;
	c->tick_armed = true;
	if (c->state == CONN_READY)
		take_socket(c);
	arm(c);
	return 0;
}

void nbd_conn_stop(struct nbd_conn *c)
{
	c->w = NULL;
	c->in_armed = c->out_armed = c->tick_armed = false;
	nbd_ring_stop(&c->ring);
}

/* ---- without io_uring: wait in the request's call ---- */

static void sync_wait(struct nbd_conn *c, struct furing_req *req)
{
	struct nbd_cmd *cmd = nbd_cmd_of(req);
	long long last_progress = now_ms();
	uint64_t seen = c->completions;

	while (cmd->pending > 1 && c->state == CONN_READY) {
		if (nbd_poll(c->h, 1000) < 0 || nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h)) {
			conn_lost(c, nbd_why());
			break;
		}
		if (c->completions != seen) {
			seen = c->completions;
			last_progress = now_ms();
		} else if (c->timeout_s && now_ms() - last_progress >= (long long)c->timeout_s * 1000) {
			c->stalled_s = c->timeout_s;
			reset_stalled(c);
			break;
		}
	}
}

static void sync_reconnect(struct nbd_conn *c)
{
	char err[512];
	time_t now = time(NULL);

	if (now == c->last_attempt)
		return; /* at most once a second */
	c->last_attempt = now;
	c->h = new_handle(c->block_status, err, sizeof(err));
	if (c->h && connect_blocking(c->h, c->uri, connect_timeout(c), err, sizeof(err)) == 0) {
		c->state = CONN_CONNECTING;
		conn_reconnected(c);
		return;
	}
	nbd_close(c->h);
	c->h = NULL;
}

/* ---- command sets ---- */

bool nbd_conn_begin(struct nbd_conn *c, struct furing_req *req, enum nbd_op op, int32_t res, furing_io_done done)
{
	struct nbd_cmd *cmd = nbd_cmd_of(req);

	*cmd = (struct nbd_cmd){.done = done, .res = res, .pending = 1, .op = (uint8_t)op, .slot = (uint8_t)c->slot};
	if (c->sync && c->state == CONN_DOWN)
		sync_reconnect(c);
	if (c->state != CONN_READY) {
		cmd->err = EIO;
		return false;
	}
	return true;
}

/* libnbd's completion of a command for @req, counted (libnbd may retire it
 * inside the nbd_aio_* call). */
static nbd_completion_callback completion(struct nbd_conn *c, struct furing_req *req)
{
	struct nbd_cmd *cmd = nbd_cmd_of(req);

	cmd->pending++;
	cmd->issued++;
	c->inflight++;
	return (nbd_completion_callback){.callback = command_completed, .user_data = req, .free = command_retired};
}

static void issued(struct furing_req *req, int64_t cookie)
{
	struct nbd_cmd *cmd = nbd_cmd_of(req);

	/* Its retirement (command_retired) is libnbd's business either way. */
	if (cookie < 0 && !cmd->err)
		cmd->err = nbd_get_errno() > 0 ? nbd_get_errno() : EIO;
}

/* Inside libnbd: hands each extent to the caller's function. */
static int libnbd_extents(void *user_data, const char *metacontext, uint64_t offset, uint32_t *entries,
			  size_t nr_entries, int *error)
{
	struct furing_req *req = user_data;

	if (closing_conn || strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	struct nbd_worker_conns *wc = furing_worker_data(furing_req_worker(req));
	struct nbd_conn *c = wc->conn[nbd_cmd_of(req)->slot];
	for (size_t i = 0; i + 1 < nr_entries; i += 2) {
		c->extent_fn(req, offset, entries[i], (entries[i + 1] & LIBNBD_STATE_HOLE) != 0);
		offset += entries[i];
	}
	return 0;
}

/* One command of the set, on the ring or through libnbd. */
static void issue(struct nbd_conn *c, struct furing_req *req, uint16_t type, uint16_t flags, uint64_t off,
		  uint32_t len, void *buf)
{
	if (c->state != CONN_READY) { /* a command of the set before this one found the connection dead */
		if (!nbd_cmd_of(req)->err)
			nbd_cmd_of(req)->err = EIO;
		return;
	}
	if (c->on_ring) {
		struct nbd_cmd *cmd = nbd_cmd_of(req);
		cmd->pending++;
		cmd->issued++;
		c->inflight++;
		int ret = nbd_ring_cmd(&c->ring, req, type, flags, off, len, buf);
		if (ret < 0)
			ring_completed(&c->ring, req, ret == -ENOTCONN ? ENOTCONN : EIO);
		return;
	}
	uint32_t lf = (flags & NBD_WIRE_FLAG_FUA ? LIBNBD_CMD_FLAG_FUA : 0) |
		      (flags & NBD_WIRE_FLAG_NO_HOLE ? LIBNBD_CMD_FLAG_NO_HOLE : 0);
	int64_t cookie = -1;
	switch (type) {
	case NBD_WIRE_READ:
		cookie = nbd_aio_pread(c->h, buf, len, off, completion(c, req), 0);
		break;
	case NBD_WIRE_WRITE:
		cookie = nbd_aio_pwrite(c->h, buf, len, off, completion(c, req), lf);
		break;
	case NBD_WIRE_FLUSH:
		cookie = nbd_aio_flush(c->h, completion(c, req), 0);
		break;
	case NBD_WIRE_WRITE_ZEROES:
		cookie = nbd_aio_zero(c->h, len, off, completion(c, req), lf);
		break;
	case NBD_WIRE_BLOCK_STATUS: {
		nbd_extent_callback cb = {.callback = libnbd_extents, .user_data = req};
		cookie = nbd_aio_block_status(c->h, len, off, cb, completion(c, req), 0);
		break;
	}
	}
	issued(req, cookie);
}

void nbd_conn_read(struct nbd_conn *c, struct furing_req *req, void *buf, uint32_t len, uint64_t off)
{
	issue(c, req, NBD_WIRE_READ, 0, off, len, buf);
}

void nbd_conn_write(struct nbd_conn *c, struct furing_req *req, const void *buf, uint32_t len, uint64_t off,
		    bool fua)
{
	issue(c, req, NBD_WIRE_WRITE, fua ? NBD_WIRE_FLAG_FUA : 0, off, len, (void *)buf);
}

void nbd_conn_flush(struct nbd_conn *c, struct furing_req *req)
{
	issue(c, req, NBD_WIRE_FLUSH, 0, 0, 0, NULL);
}

void nbd_conn_zero(struct nbd_conn *c, struct furing_req *req, uint32_t len, uint64_t off, bool no_hole, bool fua)
{
	issue(c, req, NBD_WIRE_WRITE_ZEROES, (no_hole ? NBD_WIRE_FLAG_NO_HOLE : 0) | (fua ? NBD_WIRE_FLAG_FUA : 0), off,
	      len, NULL);
}

void nbd_conn_block_status(struct nbd_conn *c, struct furing_req *req, uint32_t len, uint64_t off,
			   nbd_conn_extent_fn fn)
{
	c->extent_fn = fn;
	issue(c, req, NBD_WIRE_BLOCK_STATUS, 0, off, len, NULL);
}

void nbd_conn_end(struct nbd_conn *c, struct furing_req *req)
{
	if (c->sync && c->h)
		sync_wait(c, req);
	set_finished(c, req);
	settle(c);
}

static void issue_flush(struct nbd_conn *c, struct furing_req *req, int32_t res, furing_io_done done)
{
	if (nbd_conn_begin(c, req, NBD_OP_FLUSH, res, done))
		nbd_conn_flush(c, req);
	nbd_conn_end(c, req);
}

/* ---- the end ---- */

/* Blocking, with a deadline: the session is over. */
static int wait_cookie(struct nbd_conn *c, int64_t cookie, unsigned int timeout_s)
{
	long long deadline = now_ms() + (long long)timeout_s * 1000;

	for (;;) {
		int r = nbd_aio_command_completed(c->h, (uint64_t)cookie);
		if (r != 0)
			return r == 1 ? 0 : -1;
		long long left = deadline - now_ms();
		if (left <= 0)
			return -2;
		if (nbd_poll(c->h, (int)(left < 1000 ? left : 1000)) < 0)
			return -1;
	}
}

int nbd_conn_close(struct nbd_conn *c)
{
	int ret = 0;

	if (!c)
		return 0;
	closing_conn = c;
	/* A server that went away while nobody used this connection (without
	 * io_uring nothing polls an idle one): its loss, not a failed flush. */
	if (c->h && c->state == CONN_READY && c->sync &&
	    (nbd_poll(c->h, 0) < 0 || nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h)))
		conn_lost(c, nbd_why());
	/* The ring had the socket: libnbd can have it back only between
	 * replies. A stop with commands in flight (the requests are gone)
	 * leaves the stream somewhere in a reply: no flush is possible. */
	if (c->h && c->state == CONN_READY && c->on_ring && !nbd_ring_idle(&c->ring)) {
		conn_log(c, FURING_LOG_ERROR,
			 "nbd connection %u: the final flush failed: stopped with %u commands in flight: writes "
			 "acknowledged since the last fsync may be lost",
			 c->index, c->ring.inflight);
		ret = -1;
	} else if (c->h && c->state == CONN_READY) {
		if (c->writable && c->caps.can_flush) {
			int64_t cookie = nbd_aio_flush(c->h, NBD_NULL_COMPLETION, 0);
			int r = cookie < 0 ? -1 : wait_cookie(c, cookie, connect_timeout(c));
			if (r < 0) {
				conn_log(c, FURING_LOG_ERROR,
					 "nbd connection %u: the final flush failed: %s: writes acknowledged since the last "
					 "fsync may be lost",
					 c->index, r == -2 ? "no answer from the server" : nbd_why());
				ret = -1;
			}
		}
		/* A polite goodbye; a server that does not take it is dropped. */
		if (nbd_aio_disconnect(c->h, 0) == 0) {
			long long deadline = now_ms() + 2000;
			while (!nbd_aio_is_closed(c->h) && !nbd_aio_is_dead(c->h) && now_ms() < deadline)
				if (nbd_poll(c->h, 100) < 0)
					break;
		}
	}
	nbd_close(c->h);
	closing_conn = NULL;
	nbd_ring_free(&c->ring);
	free(c->uri);
	free(c);
	return ret;
}
