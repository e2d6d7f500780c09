/* See loop.h. Kept deliberately small: a turn is submit-and-wait, then a walk
 * over the CQ ring, then one advance. Callbacks queue new SQEs (replies,
 * backend I/O, re-armed reads), which the next turn submits in one batch. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

int fu_loop_init(struct fu_loop *l, unsigned int entries, unsigned int cq_entries, unsigned int flags,
		 bool wait_in_poll)
{
	struct io_uring_params p;

	memset(l, 0, sizeof(*l));
	memset(&p, 0, sizeof(p));
	p.flags = flags | IORING_SETUP_CQSIZE;
	p.cq_entries = cq_entries;
	int ret = io_uring_queue_init_params(entries, &l->ring, &p);
	if (ret < 0)
		return ret;
	l->ready = true;
	/* valgrind (3.19) does not treat a waiting io_uring_enter as blocking,
	 * so a worker waiting there holds valgrind's global lock and the
	 * process stops; poll(2) it knows blocks (furing_config.wait_with_poll). */
	l->wait_in_poll = wait_in_poll;
	return 0;
}

void fu_loop_exit(struct fu_loop *l)
{
	if (l->ready)
		io_uring_queue_exit(&l->ring);
	l->ready = false;
}

struct io_uring_sqe *fu_loop_sqe(struct fu_loop *l, struct furing_event *ev)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	while (!sqe) {
		/* The SQ is full: hand the batch to the kernel and try again. The
		 * CQ is sized for every SQE that can be outstanding, so this
		 * cannot overflow it. */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	if (l->ring.flags & IORING_SETUP_SQE128)
		memset(sqe, 0, 128);
	else
		memset(sqe, 0, sizeof(*sqe));
	io_uring_sqe_set_data(sqe, ev);
	l->inflight++;
	return sqe;
}

void fu_loop_set_busy_poll(struct fu_loop *l, uint64_t max_ns)
{
	l->poll_max_ns = max_ns;
	l->wait_avg_ns = max_ns; /* start out willing to spin */
}

/* The kernel hands FUSE requests (and most completions) to the worker as
 * task work, which runs only when the worker enters the kernel; with
 * IORING_SETUP_TASKRUN_FLAG it says so in the SQ flags, so a spin can watch
 * memory and enter only when there is something to collect. */
static bool collect(struct fu_loop *l)
{
	if (IO_URING_READ_ONCE(*l->ring.sq.kflags) & IORING_SQ_TASKRUN)
		io_uring_get_events(&l->ring);
	return io_uring_cq_ready(&l->ring) != 0;
}

/* Waking a sleeping worker costs a wake-up of an idle CPU (tens of
 * microseconds on a virtual machine), which one request at a time pays on
 * every request. When the loop's recent waits were short, spinning for
 * about twice that long catches the next request on a CPU that is still
 * awake; when they were long (an idle mount, or requests far apart) it
 * sleeps at once, so an idle worker uses no CPU. */
static bool busy_poll(struct fu_loop *l)
{
	uint64_t budget = 2 * l->wait_avg_ns;

	if (budget > l->poll_max_ns)
		budget = l->poll_max_ns;
	if (l->wait_avg_ns >= l->poll_max_ns || budget == 0)
		return false;
	/* While the filesystem's own I/O is out (a disk read, an io-wq copy)
	 * the next completion is a device's, tens of microseconds away: sleep.
	 * A spinning vCPU there also took host time from the device's
	 * emulation (disk 4k reads at iodepth 1: p50 138 us spinning against
	 * 91 us sleeping). */
	if (l->io_pending)
		return false;
	__atomic_store_n(&l->spins, l->spins + 1, __ATOMIC_RELAXED); /* read by the stats line */
	uint64_t start = fu_now_ns(), now = start;
	do {
		if (collect(l)) {
			__atomic_store_n(&l->spin_hits, l->spin_hits + 1, __ATOMIC_RELAXED);
			return true;
		}
		/* Spin politely: on a CPU shared with the application (more
		 * runnable threads than CPUs) a plain spin would take the time the
		 * next request needs to be made; a yield gives it away and returns
		 * at once when nobody else wants the CPU. */
		sched_yield();
		now = fu_now_ns();
	} while (now - start < budget);
	return false;
}

/* The moving average of waits (1/8 weight to the newest), capped so that
 * one long idle period does not take many requests to forget. */
static void note_wait(struct fu_loop *l, uint64_t waited)
{
	uint64_t cap = 4 * l->poll_max_ns;

	if (waited > cap)
		waited = cap;
	l->wait_avg_ns = l->wait_avg_ns - l->wait_avg_ns / 8 + waited / 8;
}

int fu_loop_flush(struct fu_loop *l)
{
	int ret = io_uring_submit(&l->ring);
	return ret < 0 ? ret : 0;
}

int fu_loop_turn(struct fu_loop *l, bool wait)
{
	struct io_uring_cqe *cqe;
	unsigned int head, seen = 0;

	int ret;
	if (!wait) {
		ret = io_uring_submit(&l->ring);
	} else if (l->poll_max_ns && !l->wait_in_poll) {
		ret = io_uring_submit(&l->ring);
		if (ret >= 0 && !collect(l)) {
			uint64_t start = fu_now_ns();
			if (!busy_poll(l))
				ret = io_uring_submit_and_wait(&l->ring, 1);
			note_wait(l, fu_now_ns() - start);
		} else {
			note_wait(l, 0); /* busy: the next completion was already there */
		}
	} else if (l->wait_in_poll) {
		ret = io_uring_submit(&l->ring);
		if (ret >= 0 && !io_uring_cq_ready(&l->ring)) {
			struct pollfd p = {.fd = l->ring.ring_fd, .events = POLLIN};
			poll(&p, 1, -1);
		}
	} else {
		ret = io_uring_submit_and_wait(&l->ring, 1);
	}
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;

	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		struct furing_event *ev = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		seen++;
		l->inflight--;
		/* The callback may queue SQEs but never waits, so walking the
		 * CQ while it runs is safe; the advance comes after. */
		ev->fn(ev, res);
	}
	io_uring_cq_advance(&l->ring, seen);
	return (int)seen;
}
