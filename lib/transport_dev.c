/* The legacy transport: requests read from a cloned /dev/fuse fd, answers
 * written back on the same fd (doc/protocol.md 3.1).
 *
 * Each worker clones the session fd and owns a set of slots, each with a
 * buffer laid out so that WRITE data (at byte 80 of a request) starts on a
 * page boundary; READ data lands on that same boundary and is sent with
 * writev(out_header, data) without a copy. Reads go through the worker's
 * io_uring on an O_NONBLOCK fd: io_uring polls it and retries, so the loop
 * never blocks in read(). Only a few reads are armed at a time, because
 * every armed read is woken by every new request; served requests hold their
 * slot until answered, so depth comes from the number of slots. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Reads armed at once per worker (see above). */
#define DEV_READS_ARMED 1
/* in_header + the largest op header before WRITE data. */
#define DEV_DATA_OFFSET (sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))

enum dev_slot_state { SLOT_FREE, SLOT_READING, SLOT_SERVING, SLOT_DEAD };

struct dev_slot {
	struct furing_req req;
	struct furing_event read_ev;
	struct dev_channel *ch;
	unsigned char *in; /* where read() lands */
	size_t in_size;
	enum dev_slot_state state;
	struct dev_slot *next_free;
};

struct dev_channel {
	struct fu_worker *w;
	int fd;
	unsigned int nslots;
	unsigned int reading;
	unsigned int live; /* slots not dead */
	bool gone;         /* the connection ended (ENODEV) */
	bool blocking;     /* no io_uring at all: one blocking read() at a time */
	struct dev_slot *slots;
	struct dev_slot *free;
	void *mem;
	size_t mem_size;
};

static void dev_deliver(struct furing_req *req, int error, const struct iovec *iov, int iovcnt);
static void dev_recycle(struct furing_req *req, bool answered);
static void dev_read_done(struct furing_event *ev, int res);

static const struct fu_transport_ops dev_ops = {
	.deliver = dev_deliver,
	.recycle = dev_recycle,
};

static void slot_kill(struct dev_slot *sl)
{
	sl->state = SLOT_DEAD;
	sl->ch->live--;
}

static void slot_release(struct dev_slot *sl)
{
	struct dev_channel *ch = sl->ch;

	if (ch->gone) {
		slot_kill(sl);
		return;
	}
	sl->state = SLOT_FREE;
	sl->next_free = ch->free;
	ch->free = sl;
	dev_channel_arm(ch);
}

void dev_channel_arm(struct dev_channel *ch)
{
	while (!ch->blocking && !ch->gone && !ch->w->stop_now && ch->reading < DEV_READS_ARMED && ch->free) {
		struct dev_slot *sl = ch->free;

		ch->free = sl->next_free;
		sl->state = SLOT_READING;
		ch->reading++;
		struct io_uring_sqe *sqe = fu_loop_sqe(&ch->w->loop, &sl->read_ev);
		io_uring_prep_read(sqe, ch->fd, sl->in, (unsigned)sl->in_size, 0);
		fu_worker_dev_target(ch->w, sqe);
	}
}

/* Nothing will be read from the channel again: the reading slot and the
 * free ones are dead now, the serving ones once answered. */
static void channel_end(struct dev_channel *ch, struct dev_slot *reading)
{
	ch->gone = true;
	slot_kill(reading);
	while (ch->free) {
		struct dev_slot *f = ch->free;
		ch->free = f->next_free;
		slot_kill(f);
	}
}

static void dev_read_done(struct furing_event *ev, int res)
{
	struct dev_slot *sl = container_of(ev, struct dev_slot, read_ev);
	struct dev_channel *ch = sl->ch;

	ch->reading--;
	if (res < 0) {
		switch (-res) {
		case ENODEV: /* unmounted or aborted: the normal end */
		case ECONNABORTED:
			channel_end(ch, sl);
			return;
		case EINTR:
		case EAGAIN:
		case ENOENT: /* the request was interrupted before we got it */
			slot_release(sl);
			return;
		case ECANCELED:
			slot_kill(sl);
			return;
		default:
			/* The session stops. Ending the channel too lets the
			 * worker leave once its slots are answered, instead of
			 * waiting to be forced out with free slots that no read
			 * would ever wake again. */
			fu_session_fail(ch->w->s, "reading /dev/fuse failed: %s", strerror(-res));
			channel_end(ch, sl);
			return;
		}
	}

	struct fu_wire wire = {
		.in = sl->in,
		.in_len = (size_t)res,
		.arg = sl->in + sizeof(struct fuse_in_header),
		.arg_len = (size_t)res > sizeof(struct fuse_in_header) ? (size_t)res - sizeof(struct fuse_in_header) : 0,
		.split = false,
	};
	int err = 0;
	struct furing_req *r = &sl->req;

	sl->state = SLOT_SERVING;
	/* Start the next read before serving this one: another request may
	 * already be waiting. */
	dev_channel_arm(ch);
	enum fu_decode_result d = fu_decode(&wire, &ch->w->s->limits, &r->msg, &err);
	/* The answer buffer starts DEV_DATA_OFFSET bytes into `in`; what the
	 * request brought past that point (names, WRITE data) stays readable. */
	fu_request_arrived(r, d, err, (size_t)res > DEV_DATA_OFFSET ? (size_t)res - DEV_DATA_OFFSET : 0);
}

/* Any thread: a write on the fd the request came from (doc/protocol.md 3.1). */
static void dev_deliver(struct furing_req *req, int error, const struct iovec *iov, int iovcnt)
{
	struct dev_slot *sl = container_of(req, struct dev_slot, req);
	struct iovec v[1 + FURING_REPLY_IOV_MAX];
	struct fuse_out_header oh = {.len = sizeof(oh), .error = error, .unique = req->msg.unique};

	v[0] = (struct iovec){&oh, sizeof(oh)};
	/* An error answer must be exactly the 16-byte header (doc/protocol.md 4.5). */
	for (int i = 0; !error && i < iovcnt && i < FURING_REPLY_IOV_MAX; i++) {
		v[i + 1] = iov[i];
		oh.len += (uint32_t)iov[i].iov_len;
	}
	ssize_t n = writev(sl->ch->fd, v, error ? 1 : 1 + (iovcnt < FURING_REPLY_IOV_MAX ? iovcnt : FURING_REPLY_IOV_MAX));
	/* ENOENT: the request was interrupted and is gone; ENODEV,
	 * ECONNABORTED: the connection is. Neither is ours to report. */
	if (n < 0 && errno != ENOENT && errno != ENODEV && errno != ECONNABORTED)
		fu_log(sl->ch->w->s, FURING_LOG_WARNING, "answering %s unique=%llu failed: %s",
		       fu_opcode_name(req->msg.opcode), (unsigned long long)req->msg.unique, strerror(errno));
}

static void dev_recycle(struct furing_req *req, bool answered)
{
	slot_release(container_of(req, struct dev_slot, req));
}

/* The fallback when io_uring is disabled on the system (sysctl
 * kernel.io_uring_disabled=2): the worker reads, serves and answers one
 * request at a time, and the filesystem's I/O runs inline (request.c).
 * A request whose operation returned without an answer (one answered later
 * from another thread) keeps the one slot: the worker then sleeps on its
 * control eventfd, which that answer (or a forced stop) writes, and reads
 * the next request only once the slot is back. Reading into the slot
 * earlier would overwrite the pending request. */
void dev_channel_serve_blocking(struct dev_channel *ch)
{
	struct dev_slot *sl = &ch->slots[0];
	struct fu_worker *w = ch->w;

	while (!ch->gone && sl->state != SLOT_DEAD) {
		fu_worker_drain_foreign(w);
		if (sl->state == SLOT_SERVING) {
			uint64_t v;
			if (atomic_load(&w->force_stop))
				break;
			if (read(w->ctl_fd, &v, sizeof(v)) < 0 && errno != EINTR)
				break;
			continue;
		}
		ssize_t n = read(ch->fd, sl->in, sl->in_size);

		ch->free = sl->next_free; /* the read takes the slot, as dev_channel_arm would */
		sl->state = SLOT_READING;
		ch->reading++;
		dev_read_done(&sl->read_ev, n < 0 ? -errno : (int)n);
	}
}

int dev_channel_open(struct fu_worker *w, int session_fd, unsigned int nslots, char *err, size_t errlen)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open /dev/fuse: %s", strerror(errno));
		return -1;
	}
	uint32_t src = (uint32_t)session_fd;
	if (ioctl(fd, FUSE_DEV_IOC_CLONE, &src) < 0) {
		snprintf(err, errlen, "cannot clone the /dev/fuse fd: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (!w->s->blocking && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "cannot make /dev/fuse non-blocking: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return dev_channel_attach(w, fd, nslots, err, errlen);
}

int dev_channel_attach(struct fu_worker *w, int fd, unsigned int nslots, char *err, size_t errlen)
{
	struct fu_session *s = w->s;
	long page = sysconf(_SC_PAGESIZE);
	struct dev_channel *ch = calloc(1, sizeof(*ch));

	if (!ch) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	ch->w = w;
	ch->fd = fd;
	ch->blocking = s->blocking;
	if (ch->blocking)
		nslots = 1;

	/* Per slot: one spare page in front so that in + 80 is page-aligned,
	 * the payload, and a page for names and extension headers. The kernel
	 * wants at least max(8192, 80 + max_write) or read() fails EINVAL. */
	size_t payload = s->payload_size;
	size_t per_slot = (size_t)page + payload + (size_t)page;
	per_slot = (per_slot + (size_t)page - 1) & ~((size_t)page - 1);
	ch->slots = calloc(nslots, sizeof(*ch->slots));
	ch->mem_size = per_slot * nslots;
	ch->mem = mmap(NULL, ch->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!ch->slots || ch->mem == MAP_FAILED) {
		snprintf(err, errlen, "out of memory for %u /dev/fuse buffers", nslots);
		free(ch->slots);
		close(ch->fd);
		free(ch);
		return -1;
	}
	ch->nslots = nslots;
	ch->live = nslots;
	for (unsigned int i = nslots; i-- > 0;) {
		struct dev_slot *sl = &ch->slots[i];
		unsigned char *base = (unsigned char *)ch->mem + per_slot * i;

		sl->ch = ch;
		sl->in = base + page - DEV_DATA_OFFSET;
		sl->in_size = per_slot - ((size_t)page - DEV_DATA_OFFSET);
		sl->read_ev.fn = dev_read_done;
		fu_request_init(&sl->req, w, &dev_ops, FU_DEV, base + page, (uint32_t)payload);
		sl->state = SLOT_FREE;
		sl->next_free = ch->free;
		ch->free = sl;
	}
	w->dev = ch;
	w->dev_fd = ch->fd;
	return 0;
}

unsigned int dev_channel_live(const struct dev_channel *ch)
{
	return ch ? ch->live : 0;
}

void dev_channel_free(struct dev_channel *ch)
{
	if (!ch)
		return;
	if (ch->mem)
		munmap(ch->mem, ch->mem_size);
	free(ch->slots);
	if (ch->fd >= 0)
		close(ch->fd);
	free(ch);
}
