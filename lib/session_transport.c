/* A session's transport: which one, how many queues, how big.
 *
 * Owns everything start-up decides about the transport, apart from the
 * lifecycle (session.c) and the FUSE_INIT bytes (session_init.c):
 *
 *   new:      fu_transport_size: max_write within the kernel's
 *             max_pages_limit, the payload size of a request buffer, the
 *             queue depth
 *   start:    fu_transport_choose, before mounting: can this process use
 *             io_uring at all, and will the kernel offer FUSE-over-io_uring
 *             (doc/protocol.md 1.1)? A queue for every possible CPU (1.5).
 *   INIT:     fu_transport_background_limit, the default max_background
 *   plan:     fu_transport_plan, between INIT and fu_worker_prepare: the
 *             per-session ring setup plan (see there)
 *   report:   fu_transport_report, the layout in one log line
 *
 * Kept apart so that new ring setup steps have one place to go. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session_priv.h"

#define DEFAULT_MAX_WRITE (1u << 20)

static long read_sysfs_long(const char *path, long dflt)
{
	char buf[64];
	long v = dflt;
	FILE *f = fopen(path, "re");

	if (f) {
		if (fgets(buf, sizeof(buf), f))
			v = strtol(buf, NULL, 10);
		fclose(f);
	}
	return v;
}

/* ---- sizing (furing_session_new) ---- */

static uint32_t clamp_max_write(uint32_t want)
{
	long page = sysconf(_SC_PAGESIZE);
	long limit = read_sysfs_long("/proc/sys/fs/fuse/max_pages_limit", 256);
	uint64_t cap = (uint64_t)limit * (uint64_t)page;

	if (want > cap)
		want = (uint32_t)cap;
	return want;
}

int fu_transport_size(struct fu_session *s, char *err, size_t errlen)
{
	/* An explicit payload size sets max_write: the kernel requires every
	 * entry to hold max(8192, max_write, max_pages * page). */
	if (!s->cfg.max_write)
		s->cfg.max_write = s->cfg.payload_size ? s->cfg.payload_size : DEFAULT_MAX_WRITE;
	s->cfg.max_write = clamp_max_write(s->cfg.max_write);
	long page = sysconf(_SC_PAGESIZE);
	uint32_t need = s->cfg.max_write < 8192 ? 8192 : s->cfg.max_write;
	need = (uint32_t)((need + (uint32_t)page - 1) & ~((uint32_t)page - 1));
	if (s->cfg.payload_size && s->cfg.payload_size < need) {
		fu_fmt_err(err, errlen,
			   "payload_size %u is below what the kernel requires (%u = max_write rounded to a page)",
			   s->cfg.payload_size, need);
		return -EINVAL;
	}
	s->payload_size = s->cfg.payload_size ? s->cfg.payload_size : need;
	s->depth = s->cfg.queue_depth;
	s->limits.max_write = s->cfg.max_write;
	return 0;
}

static unsigned int possible_cpus(void);

/* Ring: every queue's entries (transport_ring.c: each payload on its own
 * pages, each header in RING_HDR_STRIDE bytes), or its buffer pool when
 * one was asked for larger than them (Linux 7.3; the default pool is a
 * quarter of them), and each worker's few /dev/fuse slots beside them;
 * /dev/fuse: depth slots per worker (transport_dev.c: a page either side
 * of the payload). */
uint64_t fu_transport_buffer_bytes(const struct fu_session *s)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t entry = ((uint64_t)s->payload_size + page - 1) & ~(page - 1);
	uint64_t slot = entry + 2 * page;
	uint64_t workers = s->cfg.threads;
	uint64_t dev = workers * s->depth * slot;

	if (s->cfg.io_uring == FURING_IO_URING_OFF)
		return dev;
	uint64_t payloads = s->depth * entry;
	if (s->cfg.buffer_pool != FURING_FEATURE_OFF && s->cfg.buffer_pool_size > payloads)
		payloads = s->cfg.buffer_pool_size;
	uint64_t queue = payloads + (uint64_t)s->depth * RING_HDR_STRIDE;
	uint64_t ring = (uint64_t)possible_cpus() * queue + workers * DEV_SLOTS_BESIDE_RING * slot;
	if (s->cfg.io_uring == FURING_IO_URING_ON)
		return ring;
	return ring > dev ? ring : dev;
}

/* Async direct I/O, readahead and writeback are "background" requests, and
 * the kernel lets only max_background of them be in flight (default 12): an
 * application at iodepth 64 would wait in the kernel, not in our queues.
 * Allow as many as the session can hold at once. */
uint16_t fu_transport_background_limit(const struct fu_session *s)
{
	unsigned int cap;

	if (s->cfg.max_background)
		return s->cfg.max_background;
	if (s->cfg.io_uring == FURING_IO_URING_OFF || !s->nqueues)
		cap = s->nworkers * s->depth;
	else
		cap = (s->nworkers > s->nqueues ? s->nworkers : s->nqueues) * s->depth;
	if (cap < 64)
		cap = 64;
	return cap > 65535 ? 65535 : (uint16_t)cap;
}

/* ---- the choice (furing_session_start, before mounting) ---- */

/* The kernel wants a queue for every *possible* CPU (doc/protocol.md 1.5):
 * count the CPUs listed in /sys/devices/system/cpu/possible ("0-1,4"). */
static unsigned int possible_cpus(void)
{
	char buf[256];
	unsigned int n = 0;
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");

	if (f && fgets(buf, sizeof(buf), f)) {
		char *p = buf;
		while (*p && *p != '\n') {
			char *end;
			unsigned long a = strtoul(p, &end, 10), b = a;
			if (end == p)
				break;
			if (*end == '-')
				b = strtoul(end + 1, &end, 10);
			if (b >= a)
				n += (unsigned int)(b - a + 1);
			p = *end == ',' ? end + 1 : end;
		}
	}
	if (f)
		fclose(f);
	if (!n) {
		long c = sysconf(_SC_NPROCESSORS_CONF);
		n = c > 0 ? (unsigned int)c : 1;
	}
	return n;
}

/* Why this process cannot use io_uring at all, or NULL when it can. The
 * event loop needs it for both transports; without it the workers fall back
 * to blocking reads of /dev/fuse. */
static const char *io_uring_refused(char *buf, size_t len)
{
	struct io_uring probe;
	int ret = io_uring_queue_init(4, &probe, 0);

	if (ret == 0) {
		io_uring_queue_exit(&probe);
		return NULL;
	}
	long dis = read_sysfs_long("/proc/sys/kernel/io_uring_disabled", 0);
	if (dis)
		snprintf(buf, len,
			 "io_uring is disabled by sysctl (kernel.io_uring_disabled=%ld); allow it as root with: "
			 "sysctl -w kernel.io_uring_disabled=0",
			 dis);
	else
		snprintf(buf, len, "io_uring cannot be set up: %s", strerror(-ret));
	return buf;
}

/* Why the kernel will not offer FUSE-over-io_uring, or NULL when it will.
 * (A kernel that has it also has the SQE128 rings it needs.) */
static const char *fuse_ring_refused(char *buf, size_t len)
{
	char v[8] = "";
	FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "re");

	if (!f) {
		snprintf(buf, len, "this kernel has no FUSE-over-io_uring (CONFIG_FUSE_IO_URING is not set)");
		return buf;
	}
	if (!fgets(v, sizeof(v), f))
		v[0] = '\0';
	fclose(f);
	if (v[0] != 'Y' && v[0] != 'y' && v[0] != '1') {
		snprintf(buf, len,
			 "FUSE-over-io_uring is disabled (fuse.enable_uring=N); enable it as root with: "
			 "echo Y > /sys/module/fuse/parameters/enable_uring");
		return buf;
	}
	return NULL;
}

int fu_transport_choose(struct fu_session *s, struct fu_transport_choice *tc, char *err, size_t errlen)
{
	const char *no_loop = io_uring_refused(tc->why_loop, sizeof(tc->why_loop));
	const char *no_ring = NULL;

	if (s->cfg.io_uring != FURING_IO_URING_OFF)
		no_ring = no_loop ? no_loop : fuse_ring_refused(tc->why_ring, sizeof(tc->why_ring));
	tc->no_ring = no_ring;
	if (no_ring && s->cfg.io_uring == FURING_IO_URING_ON) {
		fu_fmt_err(err, errlen, "io_uring = FURING_IO_URING_ON: %s", no_ring);
		return -EOPNOTSUPP;
	}
	s->blocking = no_loop != NULL;
	if (no_loop)
		fu_log(s, FURING_LOG_WARNING, "%s: serving /dev/fuse with blocking reads, one request per thread at a time",
		       no_loop);
	else if (no_ring)
		fu_log(s, FURING_LOG_WARNING, "%s; serving over /dev/fuse", no_ring);
	s->nqueues = no_ring || s->cfg.io_uring == FURING_IO_URING_OFF ? 0 : possible_cpus();
	return 0;
}

/* ---- the ring setup plan (after INIT, before the workers) ---- */
/* (ring_setup.c holds Linux 7.3's part: buffer pools and zero-copy.) */

/* What the session will set up, now that INIT has fixed whether the ring
 * carries requests (s->init.over_io_uring) and how large they are
 * (s->init.max_write), and before fu_worker_prepare builds each worker's
 * queues and buffers from s->over_ring, s->nqueues, s->depth and
 * s->payload_size.
 *
 * Today the plan is the transport itself: the ring, or /dev/fuse. Setup
 * steps that are decided once per session and that every worker then
 * follows (Linux 7.3's io_uring buffer pools, zero-copy) go here, after
 * the transport is settled. */
int fu_transport_plan(struct fu_session *s, const char *no_ring_reason, char *err, size_t errlen)
{
	s->over_ring = s->init.over_io_uring;
	if (s->cfg.io_uring == FURING_IO_URING_ON && !s->over_ring) {
		fu_fmt_err(err, errlen,
			   "io_uring = FURING_IO_URING_ON: the kernel did not offer FUSE-over-io_uring (protocol 7.%u)",
			   s->init.minor);
		return -EOPNOTSUPP;
	}
	if (s->cfg.io_uring == FURING_IO_URING_AUTO && !s->over_ring && !no_ring_reason)
		fu_log(s, FURING_LOG_WARNING, "the kernel did not offer FUSE-over-io_uring; serving over /dev/fuse");
	if (!s->over_ring)
		s->nqueues = 0;
	return fu_ring_plan_decide(s, err, errlen);
}

void fu_transport_report(const struct fu_session *s)
{
	if (s->over_ring) {
		char bufs[512];
		fu_ring_describe(s, bufs, sizeof(bufs));
		fu_log(s, FURING_LOG_INFO, "io_uring: %u queues (possible CPUs) on %u worker thread%s, %s", s->nqueues,
		       s->nworkers, s->nworkers == 1 ? "" : "s", bufs);
	} else {
		fu_log(s, FURING_LOG_INFO, "/dev/fuse: %u worker thread%s x %u requests in flight, max_write %u KiB",
		       s->nworkers, s->nworkers == 1 ? "" : "s", s->blocking ? 1 : s->depth, s->init.max_write / 1024);
	}
}
