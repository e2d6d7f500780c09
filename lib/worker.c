/* A worker thread: its io_uring, its transports, its loop, and the public
 * worker API (events a filesystem arms on the worker's ring).
 *
 *   prepare (main thread, before the INIT answer): cloned /dev/fuse fd,
 *           ring queue buffers, control eventfd
 *   main    (the thread): create the ring -> worker_start -> arm the reads
 *           and REGISTER the queues -> report armed -> loop until every
 *           slot and entry is dead or a forced stop -> worker_stop
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define DEFAULT_RING_SETUP IORING_SETUP_COOP_TASKRUN
#define DEFAULT_BUSY_POLL_US 50

static unsigned int worker_live(const struct fu_worker *w)
{
	unsigned int n = dev_channel_live(w->dev);
	for (unsigned int i = 0; i < w->nqueues; i++)
		n += ring_queue_live(w->queues[i]);
	return n;
}

static bool queues_setting_up(const struct fu_worker *w)
{
	for (unsigned int i = 0; i < w->nqueues; i++)
		if (ring_queue_setting_up(w->queues[i]))
			return true;
	return false;
}

void fu_worker_wake(struct fu_worker *w)
{
	uint64_t one = 1;
	/* Only fails when the counter is saturated: then a wake-up is pending anyway. */
	if (write(w->ctl_fd, &one, sizeof(one)) < 0)
		return;
}

static void arm_ctl(struct fu_worker *w)
{
	io_uring_prep_read(fu_loop_sqe(&w->loop, &w->ctl_ev), w->ctl_fd, &w->ctl_val, sizeof(w->ctl_val), 0);
}

/* Someone woke us: answers made on other threads to recycle, or a forced stop. */
static void ctl_done(struct furing_event *ev, int res)
{
	struct fu_worker *w = container_of(ev, struct fu_worker, ctl_ev);

	fu_worker_drain_foreign(w);
	if (atomic_load(&w->force_stop))
		w->stop_now = true;
	else if (res != -ECANCELED)
		arm_ctl(w);
}

void fu_worker_queue_cpus(const struct fu_worker *w, cpu_set_t *set)
{
	CPU_ZERO(set);
	for (unsigned int i = 0; i < w->nqueues; i++)
		CPU_SET(ring_queue_qid(w->queues[i]), set);
}

static void pin_worker(struct fu_worker *w)
{
	struct fu_session *s = w->s;
	cpu_set_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);

	if (s->over_ring) {
		fu_worker_queue_cpus(w, &set);
	} else {
		CPU_ZERO(&set);
		CPU_SET(w->idx % (ncpu > 0 ? (unsigned long)ncpu : 1), &set);
	}
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		fu_log(s, FURING_LOG_WARNING, "worker %u: cannot pin to its CPUs: %s", w->idx, strerror(errno));
}

static unsigned int pow2_at_least(unsigned int n)
{
	unsigned int p = 1;
	while (p < n && p < (1u << 16))
		p <<= 1;
	return p;
}

static int start_ring(struct fu_worker *w)
{
	struct fu_session *s = w->s;
	unsigned int slots = s->over_ring ? DEV_SLOTS_BESIDE_RING : s->depth;
	/* At most one SQE is outstanding per slot or entry (its transport
	 * command or its backend I/O), plus the control read: the CQ holds
	 * twice that (and a margin for the filesystem's worker events), so it
	 * does not overflow; if it ever did, the kernel keeps the overflow. */
	unsigned int outstanding = slots + w->nqueues * s->depth + 1;
	unsigned int flags = IORING_SETUP_SUBMIT_ALL | (s->cfg.ring_setup_flags ? s->cfg.ring_setup_flags : DEFAULT_RING_SETUP);

	if (flags & IORING_SETUP_DEFER_TASKRUN)
		flags |= IORING_SETUP_SINGLE_ISSUER;
	if (s->over_ring)
		flags |= IORING_SETUP_SQE128;
	/* Busy polling watches the SQ flags for pending task work, which the
	 * kernel only reports with TASKRUN_FLAG (valid with COOP or DEFER). */
	bool busy_poll = !s->cfg.busy_poll_off && !s->cfg.wait_with_poll &&
			 (flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN));
	if (busy_poll)
		flags |= IORING_SETUP_TASKRUN_FLAG;
	unsigned int sq = pow2_at_least(outstanding + 8);
	/* The kernel wants the CQ at least as large as the SQ. */
	unsigned int cq = pow2_at_least(2 * outstanding + 64 > sq ? 2 * outstanding + 64 : sq);
	int ret = fu_loop_init(&w->loop, sq, cq, flags, s->cfg.wait_with_poll);
	if (ret < 0)
		return ret;
	if (busy_poll)
		fu_loop_set_busy_poll(&w->loop,
				      (uint64_t)(s->cfg.busy_poll_us ? s->cfg.busy_poll_us : DEFAULT_BUSY_POLL_US) * 1000);
	/* Registered ring fd and /dev/fuse file: one lookup fewer per
	 * io_uring_enter and per command. Both are optional. */
	io_uring_register_ring_fd(&w->loop.ring);
	w->dev_fd_fixed = io_uring_register_files(&w->loop.ring, &w->dev_fd, 1) == 0;
	return 0;
}

void *fu_worker_main(void *arg)
{
	struct fu_worker *w = arg;
	struct fu_session *s = w->s;
	int ret;

	fu_current_worker = w;
	/* Pinning keeps a queue's task work on the CPU that issued its
	 * requests: +40% IOPS for 4 KiB random I/O at iodepth 32 on 2 CPUs,
	 * but half the bandwidth for 1 MiB sequential I/O, where the worker
	 * then competes with the application for its CPU (bench/README.md).
	 * So it is asked for, not assumed. */
	if (s->cfg.pin == FURING_PIN_ON)
		pin_worker(w);
	if (s->blocking) {
		ret = s->ops.worker_start ? s->ops.worker_start(s->fs, (struct furing_worker *)w) : 0;
		if (ret < 0)
			fu_session_fail(s, "worker %u: worker_start failed: %s", w->idx, strerror(-ret));
		fu_session_worker_armed(s);
		if (!atomic_load(&s->fatal))
			dev_channel_serve_blocking(w->dev);
		/* The pair holds here too: what worker_start set up is freed. */
		if (ret >= 0 && s->ops.worker_stop)
			s->ops.worker_stop(s->fs, (struct furing_worker *)w);
		goto out;
	}
	ret = start_ring(w);
	if (ret < 0) {
		fu_session_fail(s, "worker %u: cannot create its io_uring: %s", w->idx, strerror(-ret));
		fu_session_worker_armed(s);
		goto out;
	}
	if (s->ops.worker_start && (ret = s->ops.worker_start(s->fs, (struct furing_worker *)w)) < 0) {
		fu_session_fail(s, "worker %u: worker_start failed: %s", w->idx, strerror(-ret));
		fu_session_worker_armed(s);
		goto out_ring;
	}
	arm_ctl(w);
	dev_channel_arm(w->dev);
	fu_ring_table_register(w);
	for (unsigned int i = 0; i < w->nqueues; i++)
		ring_queue_register(w->queues[i]);
	/* Submit, and take the completions that are already there: a
	 * REGISTER the kernel refuses completes at once, and start-up must
	 * hear of it before it reports success. ADD_QUEUE and ADD_BUFPOOL
	 * (Linux 7.3) also complete at once; the REGISTERs follow them. */
	ret = fu_loop_turn(&w->loop, false);
	while (ret >= 0 && !w->stop_now && queues_setting_up(w))
		ret = fu_loop_turn(&w->loop, true);
	if (ret >= 0)
		ret = fu_loop_turn(&w->loop, false);
	if (ret < 0)
		fu_session_fail(s, "worker %u: submitting to io_uring failed: %s", w->idx, strerror(-ret));
	fu_session_worker_armed(s);
	fu_placement_init(w);

	while (!w->stop_now && worker_live(w) > 0) {
		ret = fu_loop_turn(&w->loop, true);
		if (ret < 0) {
			fu_session_fail(s, "worker %u: io_uring wait failed: %s", w->idx, strerror(-ret));
			break;
		}
		if (w->served && w->place.active)
			fu_placement_served(w, w->served_pid);
		w->served = false;
	}
	if (s->ops.worker_stop)
		s->ops.worker_stop(s->fs, (struct furing_worker *)w);
out_ring:
	fu_loop_exit(&w->loop);
out:
	fu_current_worker = NULL;
	fu_session_worker_done(s);
	return NULL;
}

/* Everything a worker needs before the INIT answer goes out, so that a
 * failure can still withdraw the io_uring offer. */
int fu_worker_prepare(struct fu_session *s, struct fu_worker *w, unsigned int idx, char *err, size_t errlen)
{
	w->s = s;
	w->idx = idx;
	w->dev_fd = -1;
	w->ctl_ev.fn = ctl_done;
	pthread_mutex_init(&w->foreign_lock, NULL);
	w->ctl_fd = eventfd(0, EFD_CLOEXEC);
	if (w->ctl_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -errno;
	}
	int ret = dev_channel_open(w, s->fd, s->over_ring ? DEV_SLOTS_BESIDE_RING : s->depth, err, errlen);
	if (ret < 0)
		return ret;
	if (!s->over_ring)
		return 0;
	/* Queues are dealt round-robin: with N workers, worker i serves qids i,
	 * i+N, ... With more workers than queues, a queue is shared: worker i
	 * brings its own `depth` entries to qid i mod queues, and the kernel
	 * hands a request to whichever entry of the queue is free. */
	w->queues = calloc(s->nqueues / s->nworkers + 1, sizeof(*w->queues));
	if (!w->queues) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	unsigned int step = s->nworkers <= s->nqueues ? s->nworkers : s->nqueues;
	for (unsigned int q = idx % s->nqueues; q < s->nqueues; q += step) {
		ret = ring_queue_create(w, (uint16_t)q, w->nqueues, s->depth, s->payload_size, &w->queues[w->nqueues], err,
					errlen);
		if (ret < 0)
			return ret;
		w->nqueues++;
		if (s->nworkers > s->nqueues)
			break;
	}
	return 0;
}

void fu_worker_free(struct fu_worker *w, bool forced)
{
	for (unsigned int q = 0; q < w->nqueues; q++)
		ring_queue_free(w->queues[q], forced);
	free(w->queues);
	w->queues = NULL;
	w->nqueues = 0;
	if (!forced)
		dev_channel_free(w->dev);
	w->dev = NULL;
	if (w->ctl_fd >= 0)
		close(w->ctl_fd);
	w->ctl_fd = -1;
	if (w->s)
		pthread_mutex_destroy(&w->foreign_lock);
}

/* ---- the public worker API ---- */

static struct fu_worker *W(struct furing_worker *pub)
{
	return (struct fu_worker *)pub;
}

unsigned int furing_worker_index(const struct furing_worker *w)
{
	return ((const struct fu_worker *)w)->idx;
}

struct furing_session *furing_worker_session(const struct furing_worker *w)
{
	return (struct furing_session *)((const struct fu_worker *)w)->s;
}

void *furing_worker_data(const struct furing_worker *w)
{
	return ((const struct fu_worker *)w)->user_data;
}

void furing_worker_set_data(struct furing_worker *w, void *data)
{
	W(w)->user_data = data;
}

struct io_uring_sqe *furing_worker_sqe(struct furing_worker *pub, struct furing_event *ev)
{
	struct fu_worker *w = W(pub);

	if (w->s->blocking || !w->loop.ready)
		return NULL;
	return fu_loop_sqe(&w->loop, ev);
}

int furing_worker_poll(struct furing_worker *w, struct furing_event *ev, int fd, uint32_t events)
{
	struct io_uring_sqe *sqe = furing_worker_sqe(w, ev);

	if (!sqe)
		return -EOPNOTSUPP;
	io_uring_prep_poll_add(sqe, fd, events);
	return 0;
}

int furing_worker_timeout(struct furing_worker *w, struct furing_event *ev, uint64_t nsec)
{
	/* The kernel reads the time when the SQE is submitted (the next turn),
	 * so it lives in the event until then. */
	_Static_assert(sizeof(ev->engine_private) >= sizeof(struct __kernel_timespec), "the time fits the event");
	struct __kernel_timespec *ts = (struct __kernel_timespec *)(void *)ev->engine_private;
	struct io_uring_sqe *sqe = furing_worker_sqe(w, ev);

	if (!sqe)
		return -EOPNOTSUPP;
	ts->tv_sec = (long long)(nsec / 1000000000u);
	ts->tv_nsec = (long long)(nsec % 1000000000u);
	io_uring_prep_timeout(sqe, ts, 0, 0);
	return 0;
}

static void cancel_done(struct furing_event *ev, int res)
{
	/* The cancel's own completion: the target's says what happened. */
}

static struct furing_event cancel_event = {.fn = cancel_done};

int furing_worker_cancel(struct furing_worker *w, struct furing_event *ev)
{
	struct io_uring_sqe *sqe = furing_worker_sqe(w, &cancel_event);

	if (!sqe)
		return -EOPNOTSUPP;
	io_uring_prep_cancel(sqe, ev, 0);
	return 0;
}

int furing_worker_register_personality(struct furing_worker *pub)
{
	struct fu_worker *w = W(pub);

	if (w->s->blocking || !w->loop.ready)
		return -EOPNOTSUPP;
	/* The kernel takes the credentials of the thread that registers: this
	 * one, which is why only the worker itself may call it. */
	return io_uring_register_personality(&w->loop.ring);
}

int furing_worker_unregister_personality(struct furing_worker *pub, int id)
{
	struct fu_worker *w = W(pub);

	if (w->s->blocking || !w->loop.ready)
		return -EOPNOTSUPP;
	return io_uring_unregister_personality(&w->loop.ring, id);
}
