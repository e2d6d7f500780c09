/* Where a worker runs when the session leaves it to furing (FURING_PIN_AUTO).
 *
 * Over io_uring the kernel queues a request on the queue of the CPU its
 * caller runs on. Two loads want opposite placements on a small machine:
 *
 *   one stream (one caller, one busy queue): the worker should be free to
 *     run on another CPU, where it can spin for the next request while the
 *     caller runs; bound to the caller's CPU, the two take turns on it
 *     (passthrough on tmpfs, 4k reads at iodepth 1: -20%, 1 MiB transfers:
 *     -30 to -50%, bench/README.md). Forcing it onto the other CPU is no
 *     better: 1 MiB transfers lost as much again (the io_uring helper
 *     threads and the caller's completions then crowd one CPU);
 *   several callers on every CPU (several busy queues): each worker should
 *     stay on its queue's CPU, where the caller that waits for it ran;
 *     floating, the scheduler keeps moving workers and callers across CPUs
 *     (create/stat/unlink from 4 threads on 2 CPUs: 1.4x when bound).
 *
 * So a worker notes when it last served a request and whose (the caller's
 * thread id, which FUSE sends with every request); every millisecond while
 * it serves, it looks whether another worker served another caller just
 * now: yes for a while, it binds itself to its queues' CPUs; no for a while,
 * it goes back to the CPUs it started with. The caller counts, not just the
 * queue: one stream whose thread the scheduler moves between CPUs keeps two
 * queues busy too (and more so once the workers are bound, which pushes it
 * off their CPUs), but it is one caller. Changes are rare (at most one per
 * dwell time), each one sched_setaffinity call. */
#ifndef FURING_PLACEMENT_H
#define FURING_PLACEMENT_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct fu_worker;

struct fu_placement {
	bool active;           /* FURING_PIN_AUTO over the ring, and the masks are known */
	bool bound;            /* the thread's affinity is now the queues' CPUs */
	bool want_bound;       /* what the last look concluded ... */
	uint64_t want_since;   /* ... and since when it has concluded so */
	uint64_t next_look_ns;
	_Atomic uint64_t busy_ns; /* when this worker last served a request ... */
	_Atomic uint32_t busy_pid; /* ... and for which caller thread (others read both) */
	cpu_set_t home;        /* the CPUs of this worker's queues */
	cpu_set_t start;       /* the affinity the thread started with */
	uint64_t changes;      /* affinity changes, for the stats line */
};

/* On the worker's thread, once its queues are known: records the thread's
 * affinity and makes placement active. */
void fu_placement_init(struct fu_worker *w);
/* After a loop turn that served at least one request, the last one from
 * caller thread @pid. */
void fu_placement_served(struct fu_worker *w, uint32_t pid);

#endif
