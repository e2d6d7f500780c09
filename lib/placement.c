/* See placement.h. */
#include "placement.h"

#include <errno.h>
#include <string.h>

#include "engine.h"

/* A worker that served a request within this long counts as busy. Long
 * enough to bridge a caller's pause between two requests, short enough that
 * a caller moving to another CPU leaves its old queue idle quickly. */
#define BUSY_WINDOW_NS (500 * 1000ull)
/* How often a serving worker looks at the others. */
#define LOOK_EVERY_NS (1 * 1000000ull)
/* How long a conclusion must hold before the thread moves: other callers
 * must keep other queues busy for a while (not one request that happened
 * to come from elsewhere), and a caller must be alone for much longer
 * before the worker leaves its CPU. Unbinding is the slow direction
 * because on a loaded machine the other callers' requests pause whenever
 * their CPU runs something else: with 20 ms a metadata job of four callers
 * under load flipped a worker 47 times in a few seconds, running at 0.75x
 * of --pin=on (bench/README.md); staying bound through such pauses costs
 * a lone caller at most this long on a shared CPU. */
#define BIND_AFTER_NS (10 * 1000000ull)
#define UNBIND_AFTER_NS (250 * 1000000ull)

void fu_placement_init(struct fu_worker *w)
{
	struct fu_placement *p = &w->place;
	cpu_set_t both;

	p->active = false;
	if (w->s->cfg.pin != FURING_PIN_AUTO || !w->s->over_ring || w->s->nworkers < 2 || w->nqueues == 0)
		return;
	if (sched_getaffinity(0, sizeof(p->start), &p->start) < 0)
		return;
	fu_worker_queue_cpus(w, &p->home);
	/* The CPUs the process was given (taskset, cpuset) stay the limit:
	 * a worker whose queues lie outside them is not moved there. */
	CPU_AND(&both, &p->home, &p->start);
	if (CPU_COUNT(&both) == 0 || CPU_EQUAL(&both, &p->start))
		return;
	p->home = both;
	p->active = true;
}

/* Did another worker serve another caller just now? */
static bool others_busy(const struct fu_worker *w, uint64_t now, uint32_t pid)
{
	const struct fu_session *s = w->s;

	for (unsigned int i = 0; i < s->nworkers; i++) {
		const struct fu_worker *o = &s->workers[i];
		if (o == w)
			continue;
		uint64_t t = atomic_load_explicit(&o->place.busy_ns, memory_order_relaxed);
		/* (t may be a hair later than our own clock read.) */
		if (t && t + BUSY_WINDOW_NS > now &&
		    atomic_load_explicit(&o->place.busy_pid, memory_order_relaxed) != pid)
			return true;
	}
	return false;
}

void fu_placement_served(struct fu_worker *w, uint32_t pid)
{
	struct fu_placement *p = &w->place;
	uint64_t now = fu_now_ns();

	atomic_store_explicit(&p->busy_pid, pid, memory_order_relaxed);
	atomic_store_explicit(&p->busy_ns, now, memory_order_relaxed);
	if (now < p->next_look_ns)
		return;
	p->next_look_ns = now + LOOK_EVERY_NS;

	bool want = others_busy(w, now, pid);
	if (want != p->want_bound) {
		p->want_bound = want;
		p->want_since = now;
	}
	if (want == p->bound || now - p->want_since < (want ? BIND_AFTER_NS : UNBIND_AFTER_NS))
		return;
	const cpu_set_t *set = want ? &p->home : &p->start;
	if (sched_setaffinity(0, sizeof(*set), set) < 0) {
		/* Someone changed the process's CPUs under us: stop trying. */
		fu_log(w->s, FURING_LOG_WARNING, "worker %u: cannot change its CPUs (placement stays as it is): %s", w->idx,
		       strerror(errno));
		p->active = false;
		return;
	}
	p->bound = want;
	__atomic_store_n(&p->changes, p->changes + 1, __ATOMIC_RELAXED);
}
