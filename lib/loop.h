/* The per-worker event loop: one io_uring, one wait per turn, and completions
 * dispatched through small tagged objects.
 *
 * Everything a worker waits for is an SQE on this ring: ring-queue entries,
 * reads of /dev/fuse, backend I/O, and the worker's control eventfd. An SQE's
 * user_data is a struct furing_event embedded in the object that owns the
 * operation; its callback decides what happens next. Every SQE submitted here
 * yields exactly one CQE, so `inflight` says how many completions are still
 * owed, and no buffer is freed while its completion is owed. */
#ifndef FURING_LOOP_H
#define FURING_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "furing/furing.h"

/* CLOCK_MONOTONIC in nanoseconds: what the loop's busy polling and the
 * workers' placement measure their intervals with. */
static inline uint64_t fu_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A completion's user_data is a struct furing_event (the public type: the
 * filesystem's worker events go through the same dispatch). */

struct fu_loop {
	struct io_uring ring;
	unsigned int inflight; /* SQEs handed out whose CQE has not been dispatched */
	unsigned int io_pending; /* of those, the filesystem's own I/O (furing_req_sqe): no busy polling then */
	bool ready;
	bool wait_in_poll; /* wait with poll(2) on the ring fd instead of io_uring_enter */
	/* Busy polling before sleeping (fu_loop_set_busy_poll): the longest
	 * spin, and a moving average of how long the loop waited for its next
	 * completion, which decides whether and how long to spin. */
	uint64_t poll_max_ns;
	uint64_t wait_avg_ns;
	uint64_t spins, spin_hits; /* counters for the stats line */
};

/* @entries: SQ size; @cq_entries: CQ size, at least every SQE that can be
 * outstanding at once so the CQ never overflows. @flags: IORING_SETUP_*.
 * Returns 0 or -errno. */
int fu_loop_init(struct fu_loop *l, unsigned int entries, unsigned int cq_entries, unsigned int flags,
		 bool wait_in_poll);
void fu_loop_exit(struct fu_loop *l);

/* An SQE whose completion will call @ev->fn. Never NULL: a full SQ is
 * submitted first. The caller fills in the operation. */
struct io_uring_sqe *fu_loop_sqe(struct fu_loop *l, struct furing_event *ev);

/* One turn: submit everything queued, wait for at least one completion
 * (unless @wait is false), dispatch every completion available. Returns the
 * number dispatched, or -errno on a ring failure. */
int fu_loop_turn(struct fu_loop *l, bool wait);

/* Spin up to @max_ns for the next completion before sleeping, when recent
 * waits were short enough for a spin to pay (0: never spin). The ring must
 * have been set up with IORING_SETUP_TASKRUN_FLAG, so that completions
 * waiting for task work show in the SQ flags without a system call. */
void fu_loop_set_busy_poll(struct fu_loop *l, uint64_t max_ns);

/* Submits what is queued without waiting (used during start-up). */
int fu_loop_flush(struct fu_loop *l);

#endif
