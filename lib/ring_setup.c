/* Linux 7.3's ways of setting a ring queue up (doc/design.md, "Buffer pools
 * and zero-copy"): which of them a session uses, decided once after
 * FUSE_INIT, and the worker's buffer table they need.
 *
 * Without a pool every entry owns a max_payload-sized buffer. With one
 * (FUSE_HAS_IO_URING_BUFPOOL in INIT), a queue is created by ADD_QUEUE, its
 * pool handed over by ADD_BUFPOOL, and entries REGISTER only their headers;
 * the kernel picks a free pool buffer for each request that has data or an
 * answer and says where in ent_in_out.offset. The pool sits in the worker's
 * buffer table, so the kernel imports it without pinning pages per request
 * and the backend I/O on it can be READ_FIXED/WRITE_FIXED too. Zero-copy
 * queues additionally get one empty table slot per entry, where the kernel
 * lends the caller's pages of a READ or WRITE for the request's life. */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"

#define DEFAULT_KERNEL_MAX_PAGES 32 /* the kernel's FUSE_DEFAULT_MAX_PAGES_PER_REQ */

static bool have_cap_sys_admin(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) != 0)
		return false;
	return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

/* The kernel cuts the pool into buffers of exactly this size. */
static uint32_t kernel_payload_size(const struct fu_session *s)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t pages = s->init.max_pages ? s->init.max_pages : DEFAULT_KERNEL_MAX_PAGES;
	uint64_t n = s->init.max_write > 8192 ? s->init.max_write : 8192;

	if (pages * page > n)
		n = pages * page;
	return (uint32_t)n;
}

static const char *pool_refused(const struct fu_session *s, char *buf, size_t len)
{
	if (!s->over_ring)
		return "no io_uring queues";
	if (s->cfg.buffer_pool == FURING_FEATURE_OFF)
		return "buffer pools are off";
	if (!(s->init.offered & ((uint64_t)FUSE2_HAS_IO_URING_BUFPOOL << 32))) {
		snprintf(buf, len, "the kernel offers no io_uring buffer pools (FUSE 7.%u; they came with 7.46, Linux 7.3)",
			 s->init.minor);
		return buf;
	}
	if (s->nworkers > s->nqueues) {
		/* A pool belongs to one queue and its registration to one
		 * ring: two workers cannot share either. */
		snprintf(buf, len, "%u worker threads share %u queues (a pool needs threads <= queues)", s->nworkers,
			 s->nqueues);
		return buf;
	}
	return NULL;
}

static const char *zero_copy_refused(const struct fu_session *s, const char *no_pool)
{
	if (s->cfg.zero_copy == FURING_FEATURE_OFF)
		return "zero-copy is off";
	if (no_pool)
		return "zero-copy needs buffer pools";
	if (!have_cap_sys_admin())
		return "zero-copy needs CAP_SYS_ADMIN";
	return NULL;
}

int fu_ring_plan_decide(struct fu_session *s, char *err, size_t errlen)
{
	struct fu_ring_plan *p = &s->plan;
	char why[160];
	const char *no_pool = pool_refused(s, why, sizeof(why));
	const char *no_zc = zero_copy_refused(s, no_pool);

	memset(p, 0, sizeof(*p));
	if (no_pool && s->cfg.buffer_pool == FURING_FEATURE_ON) {
		snprintf(err, errlen, "buffer_pool = on: %s", no_pool);
		return -EOPNOTSUPP;
	}
	if (no_zc && s->cfg.zero_copy == FURING_FEATURE_ON) {
		snprintf(err, errlen, "zero_copy = on: %s", no_zc);
		return -EOPNOTSUPP;
	}
	if (no_pool) {
		/* Only worth a word where a pool was possible at all. */
		if (s->over_ring && s->cfg.buffer_pool != FURING_FEATURE_OFF)
			snprintf(p->why_not, sizeof(p->why_not), "no buffer pools: %s", no_pool);
		return 0;
	}
	p->pool = true;
	p->pool_fixed = true;
	p->zero_copy = no_zc == NULL;
	p->buf_size = kernel_payload_size(s);
	uint64_t want = s->cfg.buffer_pool_size;
	if (!want)
		want = (uint64_t)(s->depth / 4 ? s->depth / 4 : 1) * p->buf_size;
	if (want < p->buf_size || want / p->buf_size > UINT32_MAX) {
		snprintf(err, errlen, "buffer_pool_size %llu must hold between one and 2^32-1 buffers of %u bytes",
			 (unsigned long long)want, p->buf_size);
		return -EINVAL;
	}
	p->pool_bytes = want / p->buf_size * p->buf_size;
	if (no_zc && s->cfg.zero_copy != FURING_FEATURE_OFF)
		snprintf(p->why_not, sizeof(p->why_not), "no zero-copy: %s", no_zc);
	return 0;
}

unsigned int fu_ring_pool_slots(const struct fu_session *s)
{
	/* What a worker may serve at most (fu_worker_prepare deals queues
	 * round-robin). */
	return s->nqueues / s->nworkers + 1;
}

void fu_ring_table_register(struct fu_worker *w)
{
	struct fu_session *s = w->s;
	unsigned int slots = fu_ring_pool_slots(s);

	if (!s->plan.pool || (!s->plan.pool_fixed && !s->plan.zero_copy))
		return;
	if (s->plan.zero_copy)
		slots += fu_ring_pool_slots(s) * s->depth;
	int ret = io_uring_register_buffers_sparse(&w->loop.ring, slots);
	if (ret < 0) {
		fu_log(s, FURING_LOG_WARNING,
		       "worker %u: no io_uring buffer table (%u slots): %s; its pools are not registered and it lends no pages",
		       w->idx, slots, strerror(-ret));
		return;
	}
	w->table_registered = true;
}

void fu_ring_describe(const struct fu_session *s, char *buf, size_t len)
{
	unsigned int pooled = atomic_load(&s->queues_pooled), zc = atomic_load(&s->queues_zc);
	unsigned int fixed = atomic_load(&s->pools_fixed), fell = atomic_load(&s->queues_fell_back);
	unsigned int nbuf = s->plan.buf_size ? (unsigned int)(s->plan.pool_bytes / s->plan.buf_size) : 0;

	if (!s->plan.pool || pooled == 0) {
		double mib = (double)s->nqueues * s->depth * s->payload_size / (1024.0 * 1024.0);
		snprintf(buf, len, "per-entry buffers: %u x depth %u x %u KiB = %.0f MiB (touched on use)%s%s", s->nqueues,
			 s->depth, s->payload_size / 1024, mib, s->plan.why_not[0] ? "; " : "", s->plan.why_not);
		return;
	}
	snprintf(buf, len,
		 "buffer pools: %u queue%s x %u buffers x %u KiB = %.1f MiB (%u registered), depth %u header-only "
		 "entries; zero-copy on %u queue%s%s%s%s",
		 pooled, pooled == 1 ? "" : "s", nbuf, s->plan.buf_size / 1024,
		 (double)pooled * (double)s->plan.pool_bytes / (1024.0 * 1024.0), fixed, s->depth, zc, zc == 1 ? "" : "s",
		 fell ? "; per-entry buffers on queues whose pool was refused" : "", s->plan.why_not[0] ? "; " : "",
		 s->plan.why_not);
}
