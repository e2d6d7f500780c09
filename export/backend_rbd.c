/* The RBD backend: a Ceph RBD image (or snapshot) through librbd's
 * asynchronous API. What each export call becomes:
 *
 *   read / write      rbd_aio_read / rbd_aio_write (--writethrough: then
 *                     rbd_aio_flush before the answer)
 *   fsync             rbd_aio_flush
 *   punch hole        rbd_aio_discard, with rbd_skip_partial_discard off so
 *                     that a range inside an object is zeroed too: a
 *                     punched hole must read as zeros
 *   zero range        rbd_aio_write_zeroes, thick (stays allocated)
 *   allocate (mode 0) EOPNOTSUPP
 *   SEEK_DATA/HOLE    rbd_diff_iterate2 on a short-lived thread (librbd has
 *                     no asynchronous form), answered on the worker
 *   statfs            the image's size, nothing free (it does not grow)
 *
 * COMPLETIONS. librbd completes on its own threads. Its callback only
 * queues the operation on the issuing worker's lock-free list and, when
 * the list was empty, writes the worker's eventfd; the worker keeps an
 * io_uring read armed on that eventfd, and on its completion answers every
 * queued operation. So a worker never blocks on librbd and has any number
 * of requests in flight. Each operation is a small heap object that never
 * points into a request after the session ended: close() waits for
 * librbd to give every one back, and frees those no worker answered.
 *
 * FAULTS. rados_osd_op_timeout (--timeout) makes librbd fail a request the
 * cluster leaves unanswered with ETIMEDOUT: the application gets EIO, one
 * line says the cluster is lost, and the next request that succeeds says it
 * is back. Without io_uring (the engine's blocking fallback) each call
 * waits on the eventfd itself. */
#include "backend_rbd.h"

#include <errno.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "disk_times.h"
#include "log.h"
#include "rbd_spec.h"

#define RBD_BLOCK_SIZE 4096
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
/* How much of the image one rbd_diff_iterate2 call covers while seeking:
 * the extents of a window are sorted before use (librbd does not promise
 * their order), and a seek stops at the first window that answers it. */
#define SEEK_WINDOW_OBJECTS 64

struct rbd_wq;

struct rbd_backend {
	struct backend b;
	struct export_log log;
	rados_t cluster;
	rados_ioctx_t io;
	rbd_image_t image;
	bool writable, writethrough, locked;
	unsigned int timeout_s;
	uint64_t obj_size;
	char name[256]; /* POOL/IMAGE[@SNAP], for messages */

	_Atomic unsigned long inflight; /* operations librbd (or a seek thread) holds */
	atomic_bool lost;               /* a request timed out or failed; said once */

	pthread_mutex_t lock; /* the list of worker queues */
	struct rbd_wq *wqs;
	struct disk_times times; /* an image has none of its own */
	char describe[96];
};

/* A worker's completion queue (its data pointer). */
struct rbd_wq {
	struct rbd_wq *next_wq; /* in the backend's list */
	struct rbd_backend *rb;
	struct furing_worker *w;
	_Atomic(struct rbd_op *) head; /* pushed by librbd's threads, taken whole by the worker */
	int efd;
	uint64_t count; /* the eventfd read's buffer */
	struct furing_event ev;
	bool armed, sync, stopped;
	unsigned int outstanding; /* sync mode: issued and not yet answered */
	bool waiting;             /* sync mode: a call is waiting for them */
};

enum op_kind { OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD, OP_ZERO, OP_SEEK };
static const char *const op_names[] = {"read", "write", "flush", "discard", "write zeroes", "seek"};

struct rbd_op {
	struct rbd_op *next;
	struct rbd_wq *wq;
	struct furing_req *req;
	furing_io_done done;
	int64_t res;
	uint32_t len; /* what a successful read or write answers */
	uint8_t kind;
	bool flush_after; /* --writethrough: a write that still needs its flush */
	bool flushing;    /* that flush is the call in flight */
	/* seek */
	int whence;
	uint64_t off, size;
};

static struct rbd_backend *RB(struct backend *b)
{
	return (struct rbd_backend *)b;
}

#define rb_log(rb, w, level, ...) export_log(&(rb)->log, (w) ? furing_worker_session(w) : NULL, level, __VA_ARGS__)

/* ---- the worker's queue ---- */

/* On a librbd thread (or a seek thread): hands @op to its worker. */
static void wq_push(struct rbd_op *op)
{
	struct rbd_wq *wq = op->wq;
	struct rbd_backend *rb = wq->rb;
	struct rbd_op *old = atomic_load(&wq->head);

	do
		op->next = old;
	while (!atomic_compare_exchange_weak(&wq->head, &old, op));
	/* Only the push onto an empty list wakes the worker: it takes the
	 * whole list after reading the eventfd, so later pushes ride along. */
	if (!old) {
		uint64_t one = 1;
		ssize_t n = write(wq->efd, &one, sizeof(one));
		(void)n; /* an eventfd's counter cannot overflow at our rate */
	}
	atomic_fetch_sub(&rb->inflight, 1);
}

static void rbd_cb(rbd_completion_t c, void *arg)
{
	struct rbd_op *op = arg;

	op->res = rbd_aio_get_return_value(c);
	rbd_aio_release(c);
	wq_push(op);
}

static void finish(struct rbd_op *op);

/* Answers everything queued, oldest first. */
static void wq_drain(struct rbd_wq *wq)
{
	struct rbd_op *list = atomic_exchange(&wq->head, NULL), *fifo = NULL;

	while (list) {
		struct rbd_op *n = list->next;
		list->next = fifo;
		fifo = list;
		list = n;
	}
	while (fifo) {
		struct rbd_op *n = fifo->next;
		finish(fifo);
		fifo = n;
	}
}

static void wq_arm(struct rbd_wq *wq);

static void wq_event(struct furing_event *ev, int res)
{
	struct rbd_wq *wq = container_of(ev, struct rbd_wq, ev);

	wq->armed = false;
	if (wq->stopped || res == -ECANCELED)
		return;
	wq_drain(wq);
	wq_arm(wq);
}

static void wq_arm(struct rbd_wq *wq)
{
	struct io_uring_sqe *sqe = furing_worker_sqe(wq->w, &wq->ev);

	if (!sqe) {
		rb_log(wq->rb, wq->w, FURING_LOG_ERROR, "%s: no room on the worker's ring for the completion read",
		       wq->rb->name);
		return;
	}
	io_uring_prep_read(sqe, wq->efd, &wq->count, sizeof(wq->count), 0);
	wq->armed = true;
}

/* Sync mode: waits until every operation this worker issued is answered
 * (answering may issue more: a partial transfer's rest, a flush). */
static void wq_wait(struct rbd_wq *wq)
{
	if (!wq->sync || wq->waiting)
		return;
	wq->waiting = true;
	while (wq->outstanding) {
		if (!atomic_load(&wq->head)) {
			ssize_t n = read(wq->efd, &wq->count, sizeof(wq->count));
			(void)n; /* EINTR: look again */
		}
		wq_drain(wq);
	}
	wq->waiting = false;
}

/* ---- operations ---- */

/* A new operation of @req on its worker's queue, counted there; NULL (nothing answered) when out of memory. */
static struct rbd_op *op_alloc(struct furing_req *req, enum op_kind kind)
{
	struct rbd_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->wq = furing_worker_data(furing_req_worker(req));
	op->req = req;
	op->kind = kind;
	op->wq->outstanding++;
	return op;
}

/* The same for an I/O that ends in @done, which gets -ENOMEM at once when there is no memory. */
static struct rbd_op *op_new(struct furing_req *req, enum op_kind kind, uint32_t len, furing_io_done done)
{
	struct rbd_op *op = op_alloc(req, kind);

	if (!op) {
		done(req, -ENOMEM);
		return NULL;
	}
	op->done = done;
	op->len = len;
	return op;
}

/* Issues @op's librbd call (once more for a write's flush). */
static void op_issue(struct rbd_op *op, void *buf, uint64_t off, uint64_t len)
{
	struct rbd_backend *rb = op->wq->rb;
	rbd_completion_t c;
	int ret = rbd_aio_create_completion(op, rbd_cb, &c);

	if (ret < 0) {
		op->res = ret;
		finish(op);
		return;
	}
	atomic_fetch_add(&rb->inflight, 1);
	switch (op->flushing ? OP_FLUSH : op->kind) {
	case OP_READ:
		ret = rbd_aio_read(rb->image, off, len, buf, c);
		break;
	case OP_WRITE:
		ret = rbd_aio_write(rb->image, off, len, buf, c);
		break;
	case OP_FLUSH:
		ret = rbd_aio_flush(rb->image, c);
		break;
	case OP_DISCARD:
		ret = rbd_aio_discard(rb->image, off, len, c);
		break;
	case OP_ZERO:
		ret = rbd_aio_write_zeroes(rb->image, off, len, c, RBD_WRITE_ZEROES_FLAG_THICK_PROVISION, 0);
		break;
	default:
		ret = -EINVAL;
	}
	if (ret < 0) { /* librbd refused it at once: no callback will come */
		atomic_fetch_sub(&rb->inflight, 1);
		rbd_aio_release(c);
		op->res = ret;
		finish(op);
	}
}

/* The application's errno for librbd's @res: a full pool is ENOSPC, a
 * quota EDQUOT, the rest (a timeout, a lost lock, a dead OSD) EIO. */
static int app_error(int64_t res)
{
	return res == -ENOSPC || res == -EDQUOT ? (int)res : -EIO;
}

static void note_failure(struct rbd_op *op)
{
	struct rbd_backend *rb = op->wq->rb;

	if (atomic_exchange(&rb->lost, true))
		return;
	const char *why = op->res == -ETIMEDOUT ? "the cluster did not answer in time (--timeout)"
			  : op->res == -ESHUTDOWN ? "this client was blocklisted (another client broke its lock)"
						     : strerror((int)-op->res);
	rb_log(rb, op->wq->w, FURING_LOG_WARNING, "%s: %s failed: %s; requests fail with EIO until the cluster answers",
	       rb->name, op_names[op->kind], why);
}

static void note_success(struct rbd_op *op)
{
	struct rbd_backend *rb = op->wq->rb;

	if (atomic_load(&rb->lost) && atomic_exchange(&rb->lost, false))
		rb_log(rb, op->wq->w, FURING_LOG_WARNING, "%s: the cluster answers again; serving", rb->name);
}

static void seek_reply(struct rbd_op *op)
{
	if (op->res >= 0)
		furing_reply_lseek(op->req, (uint64_t)op->res);
	else
		furing_reply_err(op->req, (int)-op->res);
}

/* On the worker: @op's librbd call completed with op->res. */
static void finish(struct rbd_op *op)
{
	struct rbd_wq *wq = op->wq;

	if (op->kind == OP_SEEK) {
		if (op->res < 0 && op->res != -ENXIO) {
			note_failure(op);
			op->res = -EIO;
		}
		seek_reply(op);
	} else if (op->res < 0) {
		if (app_error(op->res) == -EIO) /* a full pool is no lost cluster */
			note_failure(op);
		op->done(op->req, app_error(op->res));
	} else if (op->flush_after) {
		note_success(op);
		op->flush_after = false;
		op->flushing = true;
		op_issue(op, NULL, 0, 0); /* the same operation again, as its flush */
		return;
	} else {
		note_success(op);
		op->done(op->req, op->kind == OP_READ || op->kind == OP_WRITE ? (int)op->len : 0);
	}
	wq->outstanding--;
	free(op);
}

static void rbd_io(struct backend *b, struct furing_req *req, bool write, void *buf, uint32_t len, uint64_t off,
		   furing_io_done done)
{
	struct rbd_op *op = op_new(req, write ? OP_WRITE : OP_READ, len, done);

	if (!op)
		return;
	struct rbd_wq *wq = op->wq;
	op->flush_after = write && RB(b)->writethrough;
	op_issue(op, buf, off, len);
	wq_wait(wq);
}

static void rbd_sync(struct backend *b, struct furing_req *req, bool datasync, furing_io_done done)
{
	if (!RB(b)->writable) {
		done(req, 0); /* nothing of ours to flush */
		return;
	}
	struct rbd_op *op = op_new(req, OP_FLUSH, 0, done);
	if (!op)
		return;
	struct rbd_wq *wq = op->wq;
	op_issue(op, NULL, 0, 0);
	wq_wait(wq);
}

static void rbd_fallocate(struct backend *b, struct furing_req *req, int mode, uint64_t off, uint64_t len,
			  furing_io_done done)
{
	if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
		done(req, -EOPNOTSUPP); /* RBD cannot reserve space */
		return;
	}
	if (off >= b->size) { /* KEEP_SIZE past the end: nothing there */
		done(req, 0);
		return;
	}
	if (len > b->size - off)
		len = b->size - off;
	struct rbd_op *op = op_new(req, mode & FALLOC_FL_PUNCH_HOLE ? OP_DISCARD : OP_ZERO, 0, done);
	if (!op)
		return;
	struct rbd_wq *wq = op->wq;
	op->flush_after = RB(b)->writethrough;
	op_issue(op, NULL, off, len);
	wq_wait(wq);
}

/* ---- SEEK_DATA / SEEK_HOLE ---- */

struct extents {
	uint64_t (*e)[2]; /* offset, length */
	size_t n, cap;
	bool oom;
};

static int extent_seen(uint64_t off, size_t len, int exists, void *arg)
{
	struct extents *x = arg;

	if (!exists)
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 64;
		void *p = realloc(x->e, cap * sizeof(*x->e));
		if (!p) {
			x->oom = true;
			return -ENOMEM;
		}
		x->e = p;
		x->cap = cap;
	}
	x->e[x->n][0] = off;
	x->e[x->n][1] = len;
	x->n++;
	return 0;
}

static int by_offset(const void *a, const void *b)
{
	uint64_t x = ((const uint64_t *)a)[0], y = ((const uint64_t *)b)[0];
	return x < y ? -1 : x > y;
}

/* The answer to the seek in @op: an offset, -ENXIO, or librbd's error. */
static int64_t seek_find(struct rbd_backend *rb, const struct rbd_op *op)
{
	uint64_t window = rb->obj_size * SEEK_WINDOW_OBJECTS;
	uint64_t pos = op->off; /* SEEK_HOLE: data known to reach here */
	struct extents x = {0};
	int64_t ans = op->whence == SEEK_DATA ? -ENXIO : (int64_t)op->size;

	for (uint64_t start = op->off; start < op->size; start += window) {
		uint64_t len = op->size - start < window ? op->size - start : window;
		x.n = 0;
		int ret = rbd_diff_iterate2(rb->image, NULL, start, len, 1, 0, extent_seen, &x);
		if (ret < 0) {
			ans = x.oom ? -ENOMEM : ret;
			break;
		}
		if (x.n) /* none yet: x.e may be NULL, which qsort must not get */
			qsort(x.e, x.n, sizeof(*x.e), by_offset);
		bool found = false;
		for (size_t i = 0; i < x.n && !found; i++) {
			uint64_t s = x.e[i][0], end = s + x.e[i][1];
			if (end <= pos)
				continue;
			if (op->whence == SEEK_DATA) {
				ans = (int64_t)(s > pos ? s : pos);
				found = true;
			} else if (s > pos) {
				ans = (int64_t)pos;
				found = true;
			} else {
				pos = end;
			}
		}
		if (!found && op->whence == SEEK_HOLE && pos < start + len) {
			ans = (int64_t)pos;
			found = true;
		}
		if (found)
			break;
	}
	free(x.e);
	if (ans >= 0 && (uint64_t)ans > op->size)
		ans = (int64_t)op->size;
	return ans;
}

static void *seek_thread(void *arg)
{
	struct rbd_op *op = arg;

	op->res = seek_find(op->wq->rb, op);
	wq_push(op);
	return NULL;
}

static void rbd_seek(struct backend *b, struct furing_req *req, uint64_t off, int whence, uint64_t size)
{
	struct rbd_backend *rb = RB(b);
	struct rbd_op *op = op_alloc(req, OP_SEEK);

	if (!op) {
		furing_reply_err(req, ENOMEM);
		return;
	}
	op->whence = whence;
	op->off = off;
	op->size = size;

	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add(&rb->inflight, 1);
	int ret = pthread_create(&t, &attr, seek_thread, op);
	pthread_attr_destroy(&attr);
	if (ret) {
		atomic_fetch_sub(&rb->inflight, 1);
		op->wq->outstanding--;
		free(op);
		furing_reply_err(req, EAGAIN);
		return;
	}
	wq_wait(op->wq);
}

/* ---- metadata ---- */

static int rbd_stat_backend(struct backend *b, struct stat *st)
{
	disk_stat(&RB(b)->times, b->size, RBD_BLOCK_SIZE, st);
	return 0;
}

static int rbd_statfs(struct backend *b, struct statvfs *st)
{
	disk_statfs(b->size, RBD_BLOCK_SIZE, st);
	return 0;
}

static int rbd_truncate(struct backend *b, uint64_t size)
{
	return EPERM; /* never called: the image is not resizable through furing */
}

static int rbd_set_times(struct backend *b, const struct timespec ts[2])
{
	disk_times_set(&RB(b)->times, ts);
	return 0;
}

static bool rbd_unreachable(struct backend *b)
{
	return atomic_load(&RB(b)->lost);
}

/* ---- workers and the end ---- */

static int rbd_worker_start(struct backend *b, struct furing_worker *w)
{
	struct rbd_backend *rb = RB(b);
	struct rbd_wq *wq = calloc(1, sizeof(*wq));

	if (!wq)
		return -ENOMEM;
	wq->efd = eventfd(0, EFD_CLOEXEC);
	if (wq->efd < 0) {
		int err = -errno;
		free(wq);
		return err;
	}
	wq->rb = rb;
	wq->w = w;
	wq->ev.fn = wq_event;
	pthread_mutex_lock(&rb->lock);
	wq->next_wq = rb->wqs;
	rb->wqs = wq;
	pthread_mutex_unlock(&rb->lock);
	furing_worker_set_data(w, wq);
	struct io_uring_sqe *sqe = furing_worker_sqe(w, &wq->ev);
	if (sqe) {
		io_uring_prep_read(sqe, wq->efd, &wq->count, sizeof(wq->count), 0);
		wq->armed = true;
	} else {
		wq->sync = true; /* the engine runs without io_uring */
	}
	return 0;
}

static void rbd_worker_stop(struct backend *b, struct furing_worker *w)
{
	struct rbd_wq *wq = furing_worker_data(w);

	if (wq)
		wq->stopped = true; /* its event never completes now */
}

static int rbd_close_backend(struct backend *b)
{
	struct rbd_backend *rb = RB(b);
	int ret = 0;

	/* librbd fails what the cluster leaves unanswered after the timeout,
	 * so this ends; its callbacks touch only our operations and queues. */
	while (atomic_load(&rb->inflight) > 0) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	if (rb->image) {
		if (rb->locked) { /* a writable export that got as far as serving */
			int r = rbd_flush(rb->image);
			if (r < 0) {
				export_log(&rb->log, NULL, FURING_LOG_ERROR,
					   "%s: the final flush failed (%s): acknowledged writes may be lost", rb->name,
					   strerror(-r));
				ret = -1;
			}
		}
		/* rbd_close releases the exclusive lock itself; an explicit
		 * rbd_lock_release first waited 10 s after an OSD restart. */
		rbd_close(rb->image);
	}
	if (rb->io)
		rados_ioctx_destroy(rb->io);
	if (rb->cluster)
		rados_shutdown(rb->cluster);
	/* Operations answered by no worker (the session ended first): their
	 * requests are gone, so they are only freed. */
	for (struct rbd_wq *wq = rb->wqs, *n; wq; wq = n) {
		n = wq->next_wq;
		for (struct rbd_op *op = atomic_load(&wq->head), *m; op; op = m) {
			m = op->next;
			free(op);
		}
		close(wq->efd);
		free(wq);
	}
	pthread_mutex_destroy(&rb->lock);
	disk_times_destroy(&rb->times);
	free(rb);
	return ret;
}

static const struct backend_ops rbd_ops = {
	.io = rbd_io,
	.sync = rbd_sync,
	.fallocate = rbd_fallocate,
	.seek = rbd_seek,
	.stat = rbd_stat_backend,
	.statfs = rbd_statfs,
	.truncate = rbd_truncate,
	.set_times = rbd_set_times,
	.unreachable = rbd_unreachable,
	.worker_start = rbd_worker_start,
	.worker_stop = rbd_worker_stop,
	.close = rbd_close_backend,
};

/* ---- opening ---- */

static int conf_set(struct rbd_backend *rb, const char *key, const char *val, const char *source, char *err,
		    size_t errlen)
{
	int r = rados_conf_set(rb->cluster, key, val);

	if (r < 0)
		snprintf(err, errlen, "%s: Ceph option %s=%s: %s", source, key, val,
			 r == -ENOENT ? "no such option" : strerror(-r));
	return r;
}

/* The cluster handle, configured and connected. */
static int connect_cluster(struct rbd_backend *rb, const struct rbd_spec *s, const char *source, unsigned int timeout_s,
			   char *err, size_t errlen)
{
	int r = rados_create(&rb->cluster, s->id);

	if (r < 0) {
		snprintf(err, errlen, "%s: librados: %s", source, strerror(-r));
		return -1;
	}
	/* Ceph's own messages would go to stderr; ours say what matters in
	 * one line. */
	rados_conf_set(rb->cluster, "log_to_stderr", "false");
	rados_conf_set(rb->cluster, "err_to_stderr", "false");
	r = rados_conf_read_file(rb->cluster, s->conf); /* NULL: $CEPH_CONF, /etc/ceph/ceph.conf, ... */
	if (r < 0 && s->conf) {
		snprintf(err, errlen, "%s: cannot read the Ceph configuration %s: %s", source, s->conf, strerror(-r));
		return -1;
	}
	rados_conf_set(rb->cluster, "log_to_stderr", "false");
	rados_conf_set(rb->cluster, "err_to_stderr", "false");
	if (s->keyring && conf_set(rb, "keyring", s->keyring, source, err, errlen) < 0)
		return -1;
	/* librbd hands every aio call to its op thread by default, so that the
	 * caller never waits: one more thread hop per I/O on CPUs the OSD and
	 * the application share (bench/README.md, RBD: 77.8 -> 61.9 us of
	 * daemon CPU per 4k read). Called in the worker instead, a request
	 * that would wait (image refresh, exclusive lock not held, writes
	 * blocked) is still queued inside librbd, not waited for. Set before
	 * the source's options: ":rbd_non_blocking_aio=true" restores it. */
	rados_conf_set(rb->cluster, "rbd_non_blocking_aio", "false");
	for (unsigned int i = 0; i < s->nopts; i++)
		if (conf_set(rb, s->opt_key[i], s->opt_val[i], source, err, errlen) < 0)
			return -1;
	/* A punched hole reads as zeros only if discards inside an object zero. */
	rados_conf_set(rb->cluster, "rbd_skip_partial_discard", "false");
	char t[16];
	snprintf(t, sizeof(t), "%u", timeout_s ? timeout_s : EXPORT_NBD_TIMEOUT_DEFAULT);
	rados_conf_set(rb->cluster, "client_mount_timeout", t);
	rados_conf_set(rb->cluster, "rados_mon_op_timeout", t);
	if (timeout_s)
		rados_conf_set(rb->cluster, "rados_osd_op_timeout", t); /* 0: requests wait for the cluster forever */

	r = rados_connect(rb->cluster);
	if (r < 0) {
		char mon[256] = "";
		rados_conf_get(rb->cluster, "mon_host", mon, sizeof(mon));
		const char *who = s->id ? s->id : "admin";
		if (r == -ETIMEDOUT || r == -ETIME)
			snprintf(err, errlen, "%s: no answer from the Ceph monitors (%s) within %s s", source,
				 *mon ? mon : "mon_host unset", t);
		else if (r == -EACCES || r == -EPERM)
			snprintf(err, errlen, "%s: the Ceph cluster refused client.%s: %s (wrong key, or no keyring for it?)",
				 source, who, strerror(-r));
		else if (r == -ENOENT || r == -EINVAL)
			snprintf(err, errlen, "%s: cannot connect to the Ceph cluster as client.%s: %s (no mon_host, or no keyring? give :conf=FILE)",
				 source, who, strerror(-r));
		else
			snprintf(err, errlen, "%s: cannot connect to the Ceph cluster (%s): %s", source,
				 *mon ? mon : "mon_host unset", strerror(-r));
		return -1;
	}
	return 0;
}

/* The image (or snapshot), opened and, when writable, locked. */
static int open_image(struct rbd_backend *rb, const struct rbd_spec *s, const char *source, char *err, size_t errlen)
{
	int r = rados_ioctx_create(rb->cluster, s->pool, &rb->io);

	if (r < 0) {
		snprintf(err, errlen, "%s: %s", source, r == -ENOENT ? "no such pool" : strerror(-r));
		return -1;
	}
	if (s->nspace)
		rados_ioctx_set_namespace(rb->io, s->nspace);
	r = rb->writable ? rbd_open(rb->io, s->image, &rb->image, NULL)
			 : rbd_open_read_only(rb->io, s->image, &rb->image, s->snap);
	if (r == -ENOENT && s->snap && rbd_open_read_only(rb->io, s->image, &rb->image, NULL) == 0) {
		rbd_close(rb->image);
		rb->image = NULL;
		snprintf(err, errlen, "%s: image %s has no snapshot %s", source, s->image, s->snap);
		return -1;
	}
	if (r < 0) {
		rb->image = NULL;
		if (r == -ENOENT)
			snprintf(err, errlen, "%s: no image %s in pool %s%s%s", source, s->image, s->pool,
				 s->nspace ? ", namespace " : "", s->nspace ? s->nspace : "");
		else
			snprintf(err, errlen, "%s: cannot open the image: %s", source, strerror(-r));
		return -1;
	}
	if (rb->writable) {
		r = rbd_lock_acquire(rb->image, RBD_LOCK_MODE_EXCLUSIVE);
		if (r == -EROFS || r == -EBUSY || r == -EAGAIN) {
			snprintf(err, errlen, "%s: another client holds the image's exclusive lock (a writable export "
					      "elsewhere?): refusing to write to it",
				 source);
			return -1;
		}
		if (r == -EINVAL) {
			snprintf(err, errlen, "%s: the image has no exclusive-lock feature (rbd feature enable %s/%s "
					      "exclusive-lock), which --writable needs",
				 source, s->pool, s->image);
			return -1;
		}
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot take the image's exclusive lock: %s", source, strerror(-r));
			return -1;
		}
		rb->locked = true;
	}
	rbd_image_info_t info;
	r = rbd_stat(rb->image, &info, sizeof(info));
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read the image's size: %s", source, strerror(-r));
		return -1;
	}
	rb->b.size = info.size;
	rb->obj_size = info.obj_size ? info.obj_size : (1u << 22);
	return 0;
}

struct backend *rbd_backend_open(const struct export_opts *o, const char *source, char *err, size_t errlen)
{
	struct rbd_spec s;

	if (rbd_spec_parse(source, &s, err, errlen) < 0)
		return NULL;
	if (s.snap && o->writable) {
		snprintf(err, errlen, "%s: a snapshot is read-only: drop --writable", source);
		rbd_spec_free(&s);
		return NULL;
	}
	if (o->growable) {
		snprintf(err, errlen, "--growable: an RBD image keeps its size here (resize it with rbd resize, then export it again)");
		rbd_spec_free(&s);
		return NULL;
	}
	struct rbd_backend *rb = calloc(1, sizeof(*rb));
	if (!rb) {
		snprintf(err, errlen, "out of memory");
		rbd_spec_free(&s);
		return NULL;
	}
	rb->b.ops = &rbd_ops;
	rb->log = o->log;
	rb->writable = o->writable;
	rb->writethrough = o->writethrough;
	rb->timeout_s = o->nbd_timeout_s;
	pthread_mutex_init(&rb->lock, NULL);
	disk_times_init(&rb->times);
	snprintf(rb->name, sizeof(rb->name), "%s/%s%s%s%s%s", s.pool, s.nspace ? s.nspace : "", s.nspace ? "/" : "",
		 s.image, s.snap ? "@" : "", s.snap ? s.snap : "");

	if (connect_cluster(rb, &s, source, o->nbd_timeout_s, err, errlen) < 0 ||
	    open_image(rb, &s, source, err, errlen) < 0) {
		rbd_spec_free(&s);
		rbd_close_backend(&rb->b);
		return NULL;
	}
	snprintf(rb->describe, sizeof(rb->describe), "librbd%s", rb->locked ? ", exclusive lock" : s.snap ? ", snapshot" : "");
	rbd_spec_free(&s);
	rb->b.resizable = false;
	rb->b.max_workers = 0;
	rb->b.describe = rb->describe;
	rb->b.not_local = "the disk is an RBD image";
	return &rb->b;
}
