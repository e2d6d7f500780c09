/* The engine's internal objects and how they point at each other.
 *
 *   fu_session ── owns ──▶ fu_worker[threads] ── each owns ──▶ fu_loop (io_uring)
 *                                             ├─▶ dev_channel (cloned /dev/fuse fd + slots)
 *                                             └─▶ ring_queue[] (the CPU queues it serves)
 *
 * A request (struct furing_req) is embedded in the transport object that
 * received it: a dev_slot (legacy) or a ring_ent (io_uring). The transport
 * fills it in, dispatch.c hands it to the filesystem, and the answer goes
 * back through the transport in two steps: `deliver` writes the answer (to
 * the entry's buffers, or to /dev/fuse) and may run on any thread; `recycle`
 * gives the slot back (re-arms the read, submits COMMIT_AND_FETCH) and runs
 * only on the request's worker, which owns the ring. An answer made on
 * another thread is delivered there and queued to the worker for recycling.
 *
 * Nothing here is shared between workers except the session's read-only
 * configuration, the counters the main thread reads, and the few
 * mutex-protected tables of notify.c and request.c. */
#ifndef FURING_ENGINE_H
#define FURING_ENGINE_H

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "furing/furing.h"
#include "loop.h"
#include "placement.h"
#include "proto/decode.h"
#include "proto/init.h"
#include "stats.h"

struct fu_worker;
struct fu_session;

/* How a request goes back to the kernel. */
struct fu_transport_ops {
	/* Writes the answer: @error 0 or a negative errno; @iov the out-args,
	 * which may point into the request's own buffer. Any thread. */
	void (*deliver)(struct furing_req *req, int error, const struct iovec *iov, int iovcnt);
	/* Frees the request's slot for the next request. Worker thread only.
	 * @answered false: the request got no answer (FORGET, INTERRUPT...). */
	void (*recycle)(struct furing_req *req, bool answered);
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
	unsigned char *base; /* the transport's answer buffer (page-aligned) */
	uint32_t base_size;
	uint32_t buf_off;    /* furing_req_buf = base + buf_off: past the request's own bytes */
	uint8_t kind;        /* enum fu_transport_kind */
	uint16_t qid;        /* ring queue, for logging and counters */
	atomic_bool answered;
	/* What the answer was, for the counters (which the worker keeps when
	 * it recycles the slot) and the debug line (written as the answer
	 * goes out). */
	int ans_err;
	uint64_t ans_bytes;
	/* Registered buffers (Linux 7.3): the worker's buffer-table slot of the
	 * pool that `base` lies in (-1: none); for a zero-copy READ or WRITE,
	 * the slot the kernel lent the caller's pages to and their length. */
	int32_t buf_index;
	bool zc;
	uint16_t zc_index;
	uint32_t zc_len;
	struct furing_req *next_foreign; /* in the worker's list of answers from other threads */
	/* Arguments handed to the filesystem by pointer live here, so that they
	 * stay valid until the answer. */
	struct furing_file fi[2]; /* [1]: copy_file_range's destination */
	union {
		struct furing_setattr setattr;
		struct flock lock;
	} argv;
	struct furing_event io_ev; /* the filesystem's I/O on its behalf */
	furing_io_done io_done;
	void *user_data; /* furing_req_set_data; NULL when the request arrives */
	_Alignas(16) unsigned char scratch[FURING_REQ_SCRATCH_SIZE];
};

/* ---- transports (transport_dev.c, transport_ring.c) ---- */

struct dev_channel;
struct ring_queue;

/* Legacy: one cloned /dev/fuse fd per worker with @slots reads in flight. */
int dev_channel_open(struct fu_worker *w, int session_fd, unsigned int slots, char *err, size_t errlen);
/* The second half of dev_channel_open: the slots around @fd, which is
 * already cloned (and non-blocking unless the session is blocking). Takes
 * @fd over, also on failure. Separate so that fuzz/fuzz_engine.c can serve
 * the legacy transport without a mount: it hands in one end of a socket
 * pair that collects the answers, and plays the kernel's side of the reads
 * itself. */
int dev_channel_attach(struct fu_worker *w, int fd, unsigned int slots, char *err, size_t errlen);
void dev_channel_arm(struct dev_channel *ch);
void dev_channel_serve_blocking(struct dev_channel *ch);
void dev_channel_free(struct dev_channel *ch);
unsigned int dev_channel_live(const struct dev_channel *ch);

/* io_uring: the queues of one worker. @slot: the queue's index among the
 * worker's queues, which names its buffer-table slots (fu_ring_slots). */
int ring_queue_create(struct fu_worker *w, uint16_t qid, unsigned int slot, unsigned int depth,
		      uint32_t payload_size, struct ring_queue **out, char *err, size_t errlen);
/* Sets the queue up with the kernel: with a pool, ADD_QUEUE and ADD_BUFPOOL
 * first (falling back to per-entry buffers when refused), then REGISTER of
 * every entry. Worker thread, after fu_ring_table_register. */
void ring_queue_register(struct ring_queue *q);
/* True while ADD_QUEUE / ADD_BUFPOOL are still with the kernel. */
bool ring_queue_setting_up(const struct ring_queue *q);
unsigned int ring_queue_live(const struct ring_queue *q);
uint16_t ring_queue_qid(const struct ring_queue *q);
/* Requests this worker's part of the queue has received (any thread may read). */
uint64_t ring_queue_served(const struct ring_queue *q);
void ring_queue_free(struct ring_queue *q, bool buffers_may_be_in_use);

/* ---- requests (request.c, dispatch.c, reply.c) ---- */

/* Sets up a request embedded in a transport slot (once, at slot creation). */
void fu_request_init(struct furing_req *r, struct fu_worker *w, const struct fu_transport_ops *tp,
		     enum fu_transport_kind kind, void *base, uint32_t base_size);
/* A request enters here, on its worker, once the transport has decoded it:
 * dispatched to the filesystem, or answered/dropped as the decoder said.
 * @tail_end: how far past `base` the request's own bytes (names, data)
 * reach, so the answer buffer can start after them. */
void fu_request_arrived(struct furing_req *req, enum fu_decode_result res, int err, size_t tail_end);
/* The one way out: an answer (@err positive errno or 0, @iov out-args). */
void fu_answer(struct furing_req *req, int err, const struct iovec *iov, int iovcnt);
/* No answer (FORGET, INTERRUPT, NOTIFY_REPLY, dropped requests). */
void fu_no_answer(struct furing_req *req);
/* Hands the filesystem the decoded request (dispatch.c). */
void fu_dispatch(struct furing_req *req);
/* Worker: recycles the slots of answers made on other threads. */
void fu_worker_drain_foreign(struct fu_worker *w);

/* ---- workers (worker.c) ---- */

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
	/* eventfd: other threads wake the worker (a forced stop, answers made
	 * on other threads); read by an SQE on the worker's own ring. */
	int ctl_fd;
	uint64_t ctl_val;
	struct furing_event ctl_ev;
	atomic_bool force_stop;   /* leave the loop at once */
	bool stop_now;            /* the worker saw force_stop */
	bool ring_failed;         /* a ring queue could not be registered */
	bool table_registered;    /* the sparse buffer table of fu_ring_table_register */
	void *user_data;          /* furing_worker_set_data */
	pthread_mutex_t foreign_lock;
	struct furing_req *foreign; /* answered on other threads, waiting to be recycled */
	struct fu_stats stats;
	bool served;              /* a request arrived during this loop turn ... */
	uint32_t served_pid;      /* ... the last one from this caller thread */
	struct fu_placement place;
};

/* The worker whose thread is running, or NULL on any other thread. */
extern __thread struct fu_worker *fu_current_worker;

int fu_worker_prepare(struct fu_session *s, struct fu_worker *w, unsigned int idx, char *err, size_t errlen);
void *fu_worker_main(void *arg);
/* Wakes the worker's loop (its ctl eventfd). Any thread. */
void fu_worker_wake(struct fu_worker *w);
void fu_worker_free(struct fu_worker *w, bool forced);
/* /dev/fuse slots per worker when the ring carries the requests: FORGET,
 * INTERRUPT and whatever arrives before the ring is ready. */
#define DEV_SLOTS_BESIDE_RING 2
/* Bytes per ring entry's header (struct fuse_uring_req_header, 288,
 * rounded up: keeps entries on separate cache lines). */
#define RING_HDR_STRIDE 512
/* The CPUs of the ring queues the worker serves (a queue's id is its CPU). */
void fu_worker_queue_cpus(const struct fu_worker *w, cpu_set_t *set);

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

/* ---- Linux 7.3 queue set-up (ring_setup.c) ---- */

/* How the ring queues are set up, decided once after FUSE_INIT. */
struct fu_ring_plan {
	bool pool;            /* ADD_QUEUE + ADD_BUFPOOL + header-only REGISTERs */
	bool pool_fixed;      /* try the pool as a registered buffer */
	bool zero_copy;       /* ADD_QUEUE with FUSE_URING_ZERO_COPY */
	uint32_t buf_size;    /* the kernel's buffer: max(8192, max_write, max_pages x page) */
	uint64_t pool_bytes;  /* per queue, a multiple of buf_size */
	char why_not[200];    /* why not a pool or not zero-copy, for the serving line ("" if both) */
};

/* Decides the plan from the INIT exchange and the configuration; with
 * FURING_FEATURE_ON a feature that cannot be had fails the start (< 0). */
int fu_ring_plan_decide(struct fu_session *s, char *err, size_t errlen);
/* A worker's buffer table: [0, pools) one slot per queue's pool, then
 * `depth` zero-copy slots per queue. */
unsigned int fu_ring_pool_slots(const struct fu_session *s);
static inline unsigned int fu_ring_zc_slot(const struct fu_session *s, unsigned int queue_slot, unsigned int ent,
					   unsigned int depth)
{
	return fu_ring_pool_slots(s) + queue_slot * depth + ent;
}
/* Worker thread, once its ring exists: the sparse buffer table, when the
 * plan registers pools or lends pages. A failure is logged and the worker's
 * queues go without (per-entry buffers for zero-copy, an unregistered pool). */
void fu_ring_table_register(struct fu_worker *w);
/* What the queues ended up with, for the serving line (after start). */
void fu_ring_describe(const struct fu_session *s, char *buf, size_t len);

/* ---- the session (session.c, notify.c, signals.c, log.c) ---- */

#define FU_INTERRUPTS_REMEMBERED 64

struct fu_session {
	struct furing_ops ops;
	void *fs;
	struct furing_config cfg;
	char *mountpoint;
	int fd;                   /* the /dev/fuse fd given to mount */
	bool mounted;
	bool via_fusermount;
	dev_t conn_dev;           /* st_dev of the mount: names the fusectl connection */
	struct fu_init_agreed init;
	struct furing_conn conn;
	bool init_ran;            /* ops->init was called (or there is none): destroy will be */
	struct fu_decode_limits limits;
	bool over_ring;
	bool blocking;            /* io_uring is disabled on this system: blocking /dev/fuse reads */
	unsigned int nworkers;
	struct fu_worker *workers;
	unsigned int nqueues;     /* possible CPUs, when the ring is used */
	unsigned int depth;
	uint32_t payload_size;
	struct fu_ring_plan plan;
	/* Queues set up with a pool / with zero-copy / whose pool was refused
	 * (workers count them as the kernel answers). */
	atomic_uint queues_pooled, queues_zc, queues_fell_back, pools_fixed;
	/* Start-up and stop: workers report here, the main thread waits. */
	pthread_mutex_t state_lock;
	pthread_cond_t state_cond;
	unsigned int workers_armed; /* workers that have armed reads and registered queues */
	atomic_uint workers_done;
	int wake_fd;              /* eventfd: wakes furing_session_wait */
	bool forced;              /* workers were forced out: the kernel may still own buffers */
	atomic_bool running;      /* from the INIT answer to the end of wait: notifications may go out */
	atomic_bool fatal;
	atomic_bool stop_requested;
	atomic_bool abort_requested; /* furing_session_abort: no grace before the abort */
	atomic_bool stats_requested;
	char fatal_msg[256];
	pthread_mutex_t fatal_lock;
	/* INTERRUPTs seen, for furing_req_interrupted (request.c). */
	pthread_mutex_t intr_lock;
	atomic_uint intr_count;
	uint64_t intr_unique[FU_INTERRUPTS_REMEMBERED];
	unsigned int intr_next;
	/* Retrieve notifications waiting for their NOTIFY_REPLY (notify.c). */
	pthread_mutex_t notify_lock;
	struct fu_retrieve *retrieves;
	uint64_t notify_unique;
	bool handles_signals;
};

/* A worker reports a condition that ends the session (and the reason). */
void fu_session_fail(struct fu_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A worker has armed its queues (or failed to), for start-up. */
void fu_session_worker_armed(struct fu_session *s);
/* A worker has left its loop. */
void fu_session_worker_done(struct fu_session *s);
/* Wakes furing_session_wait (async-signal-safe). */
void fu_session_wake(struct fu_session *s);

/* Logging through furing_config.log. */
void fu_log(const struct fu_session *s, enum furing_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* notify.c: the NOTIFY_REPLY of a retrieve; takes its cookie back. */
bool fu_retrieve_take(struct fu_session *s, uint64_t notify_unique, void **cookie);
void fu_retrieve_free_all(struct fu_session *s);
/* signals.c: puts back the handlers furing_session_handle_signals replaced. */
void fu_signals_restore(struct fu_session *s);

#endif
