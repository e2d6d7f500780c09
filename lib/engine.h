/* The engine's internal objects and how they point at each other.
 *
 *   fu_session ── owns ──▶ fu_worker[threads] ── each owns ──▶ fu_loop (io_uring)
 *                                             ├─▶ dev_channel (cloned /dev/fuse fd + slots)
 *                                             └─▶ ring_queue[] (the CPU queues it serves)
 *
 * A request (struct furing_req) is embedded in the transport object that
 * received it: a dev_slot (legacy) or a ring_ent (io_uring). The transport
 * fills it in, request.c dispatches it to the filesystem and turns the
 * filesystem's answer into a call of the transport's send(). Nothing here is
 * shared between workers except the session's read-only configuration and
 * the counters that the main thread reads. */
#ifndef FURING_ENGINE_H
#define FURING_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "furing/furing.h"
#include "loop.h"
#include "proto/decode.h"
#include "proto/init.h"
#include "stats.h"

struct fu_worker;
struct fu_session;

/* How a request goes back to the kernel. */
struct fu_transport_ops {
	/* @error: 0 or a negative errno; @iov: the answer's out-args, which may
	 * point into the request's own buffer. Frees the request's slot. */
	void (*send)(struct furing_req *req, int error, const struct iovec *iov, int iovcnt);
	/* The request gets no answer (FORGET, INTERRUPT, dropped): free its slot. */
	void (*finish_no_reply)(struct furing_req *req);
};

enum fu_transport_kind {
	FU_DEV = 0,
	FU_RING = 1,
};

struct furing_req {
	const struct fu_transport_ops *tp;
	struct fu_worker *w;
	struct fu_msg msg;
	struct furing_ctx ctx;
	void *buf; /* page-aligned answer buffer (READ data lands here) */
	uint32_t buf_size;
	uint8_t kind; /* enum fu_transport_kind */
	uint16_t qid; /* ring queue, for logging and counters */
	bool answered;
	struct fu_event io_ev; /* the filesystem's backend I/O */
	furing_io_done io_done;
	_Alignas(16) unsigned char scratch[FURING_REQ_SCRATCH_SIZE];
};

/* ---- transports (transport_dev.c, transport_ring.c) ---- */

struct dev_channel;
struct ring_queue;

/* Legacy: one cloned /dev/fuse fd per worker with @slots reads in flight. */
int dev_channel_open(struct fu_worker *w, int session_fd, unsigned int slots, char *err, size_t errlen);
void dev_channel_arm(struct dev_channel *ch);
void dev_channel_serve_blocking(struct dev_channel *ch);
void dev_channel_free(struct dev_channel *ch);
unsigned int dev_channel_live(const struct dev_channel *ch);

/* io_uring: the queues of one worker. */
int ring_queue_create(struct fu_worker *w, uint16_t qid, unsigned int depth, uint32_t payload_size,
		      struct ring_queue **out, char *err, size_t errlen);
void ring_queue_register(struct ring_queue *q);
unsigned int ring_queue_live(const struct ring_queue *q);
uint16_t ring_queue_qid(const struct ring_queue *q);
/* Requests this worker's part of the queue has received (any thread may read). */
uint64_t ring_queue_served(const struct ring_queue *q);
void ring_queue_free(struct ring_queue *q, bool buffers_may_be_in_use);

/* ---- requests (request.c) ---- */

/* Sets up a request embedded in a transport slot (once, at slot creation). */
void fu_request_init(struct furing_req *r, struct fu_worker *w, const struct fu_transport_ops *tp,
		     enum fu_transport_kind kind, void *buf, uint32_t buf_size);
/* A request enters here, on its worker, once the transport has decoded it:
 * dispatched to the filesystem, or answered/dropped as the decoder said. */
void fu_request_arrived(struct furing_req *req, enum fu_decode_result res, int err);

/* ---- workers and the session (session.c) ---- */

struct fu_worker {
	struct fu_session *s;
	unsigned int idx;
	pthread_t thread;
	bool thread_started;
	struct fu_loop loop;
	int dev_fd;               /* this worker's cloned /dev/fuse fd */
	bool dev_fd_fixed;        /* ... registered as fixed file 0 of its ring */
	struct dev_channel *dev;
	struct ring_queue **queues;
	unsigned int nqueues;
	int ctl_fd;               /* eventfd: the main thread's stop requests */
	uint64_t ctl_val;
	struct fu_event ctl_ev;
	bool stop_now;            /* forced stop: leave the loop at once */
	bool ring_failed;         /* a ring queue could not be registered */
	struct fu_stats stats;
};

struct fu_session {
	const struct furing_ops *ops;
	void *fs;
	struct furing_config cfg;
	char *mountpoint;
	int fd;                   /* the /dev/fuse fd given to mount */
	bool mounted;
	bool via_fusermount;
	dev_t conn_dev;           /* st_dev of the mount: names the fusectl connection */
	struct fu_init_agreed init;
	struct fu_decode_limits limits;
	bool over_ring;
	bool blocking;            /* io_uring is disabled on this system: blocking /dev/fuse reads */
	unsigned int nworkers;
	struct fu_worker *workers;
	unsigned int nqueues;     /* possible CPUs, when the ring is used */
	unsigned int depth;
	uint32_t payload_size;
	atomic_uint workers_armed; /* workers that have armed reads and registered queues */
	atomic_uint workers_done;
	bool forced;              /* workers were forced out: the kernel may still own buffers */
	atomic_bool fatal;
	atomic_bool stop_requested;
	char fatal_msg[256];
	pthread_mutex_t fatal_lock;
};

/* Points an SQE at the worker's /dev/fuse fd, as a fixed file when it is
 * registered (saves a file lookup per command). */
static inline void fu_worker_dev_target(const struct fu_worker *w, struct io_uring_sqe *sqe)
{
	if (w->dev_fd_fixed) {
		sqe->fd = 0;
		sqe->flags |= IOSQE_FIXED_FILE;
	} else {
		sqe->fd = w->dev_fd;
	}
}

/* A worker reports a condition that ends the session (and the reason). */
void fu_session_fail(struct fu_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
