/* A session's life: mount, FUSE_INIT, workers, serving, stop.
 *
 *   start:  probe io_uring -> mount -> read INIT on /dev/fuse -> negotiate ->
 *           prepare each worker (cloned fd, ring queue buffers) -> write the
 *           INIT answer -> start the workers (each creates its io_uring and
 *           only now REGISTERs its queues: PROTOCOL.md 1.2) -> wait until
 *           every worker has armed its reads and entries.
 *   wait:   the main thread sleeps in sigtimedwait; workers serve until the
 *           connection ends (someone unmounted: reads give ENODEV, ring
 *           entries -ENOTCONN) and then leave on their own.
 *   stop:   SIGINT/SIGTERM or a fatal worker error -> lazy unmount -> if the
 *           connection is still held open by a user after a grace period,
 *           abort it through fusectl -> if a worker still has not finished,
 *           force it out of its loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "mount.h"

#define DEFAULT_MAX_WRITE (1u << 20)
#define DEFAULT_QUEUE_DEPTH 32
/* /dev/fuse slots per worker when the ring carries the requests: FORGET,
 * INTERRUPT and whatever arrives before the ring is ready. */
#define DEV_SLOTS_BESIDE_RING 2
#define INIT_TIMEOUT_MS 10000
#define DEFAULT_URING_SETUP IORING_SETUP_COOP_TASKRUN
#define STOP_GRACE_MS 1000 /* after the lazy unmount, before aborting */
#define ABORT_GRACE_MS 3000 /* after the abort, before forcing workers out */

static void fmt_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

/* The kernel wants a queue for every *possible* CPU (PROTOCOL.md 1.5):
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

void fu_session_fail(struct fu_session *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->fatal_lock);
	if (!atomic_load(&s->fatal)) {
		va_start(ap, fmt);
		vsnprintf(s->fatal_msg, sizeof(s->fatal_msg), fmt, ap);
		va_end(ap);
		fprintf(stderr, "furing: %s\n", s->fatal_msg);
		atomic_store(&s->fatal, true);
	}
	pthread_mutex_unlock(&s->fatal_lock);
	atomic_store(&s->stop_requested, true);
}

/* ---- io_uring availability (PROTOCOL.md 1.1) ---- */

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

/* ---- workers ---- */

static unsigned int worker_live(const struct fu_worker *w)
{
	unsigned int n = dev_channel_live(w->dev);
	for (unsigned int i = 0; i < w->nqueues; i++)
		n += ring_queue_live(w->queues[i]);
	return n;
}

static void ctl_done(struct fu_event *ev, int res)
{
	struct fu_worker *w = (struct fu_worker *)((char *)ev - offsetof(struct fu_worker, ctl_ev));

	if (res > 0)
		w->stop_now = true; /* the only message is "leave now" */
	else if (res != -ECANCELED)
		io_uring_prep_read(fu_loop_sqe(&w->loop, &w->ctl_ev), w->ctl_fd, &w->ctl_val, sizeof(w->ctl_val), 0);
}

static void pin_worker(struct fu_worker *w)
{
	struct fu_session *s = w->s;
	cpu_set_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);

	CPU_ZERO(&set);
	if (s->over_ring) {
		for (unsigned int i = 0; i < w->nqueues; i++)
			CPU_SET(ring_queue_qid(w->queues[i]), &set);
	} else {
		CPU_SET(w->idx % (ncpu > 0 ? (unsigned long)ncpu : 1), &set);
	}
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		fprintf(stderr, "furing: worker %u: cannot pin: %s\n", w->idx, strerror(errno));
}

static unsigned int pow2_at_least(unsigned int n)
{
	unsigned int p = 1;
	while (p < n && p < (1u << 16))
		p <<= 1;
	return p;
}

/* The io_uring setup flags of the workers' rings. The default is what the
 * benchmarks support (bench/README.md); FURING_URING_SETUP=coop,single,defer
 * (any subset, or "none") overrides it for measurements. All of them are
 * safe for our loop: each ring is created, submitted to and waited on by
 * its own worker thread only. */
static unsigned int loop_setup_flags(void)
{
	const char *env = getenv("FURING_URING_SETUP");
	unsigned int flags = 0;

	if (!env)
		return DEFAULT_URING_SETUP;
	if (strstr(env, "coop"))
		flags |= IORING_SETUP_COOP_TASKRUN;
	if (strstr(env, "single"))
		flags |= IORING_SETUP_SINGLE_ISSUER;
	if (strstr(env, "defer"))
		flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	return flags;
}

static void *worker_main(void *arg)
{
	struct fu_worker *w = arg;
	struct fu_session *s = w->s;
	unsigned int slots = s->over_ring ? DEV_SLOTS_BESIDE_RING : s->depth;
	/* At most one SQE is outstanding per slot or entry (its transport
	 * command or its backend I/O), plus the control read: the CQ holds
	 * twice that, so it can never overflow. */
	unsigned int outstanding = slots + w->nqueues * s->depth + 1;
	unsigned int flags = IORING_SETUP_SUBMIT_ALL | loop_setup_flags();

	if (s->over_ring)
		flags |= IORING_SETUP_SQE128;
	/* Pinning keeps a queue's task work on the CPU that issued its
	 * requests: +40% IOPS for 4 KiB random I/O at iodepth 32 on 2 CPUs,
	 * but half the bandwidth for 1 MiB sequential I/O, where the worker
	 * then competes with the application for its CPU (bench/README.md).
	 * So it is asked for, not assumed. */
	if (s->cfg.pin == FURING_PIN_ON)
		pin_worker(w);
	if (s->blocking) {
		atomic_fetch_add(&s->workers_armed, 1);
		dev_channel_serve_blocking(w->dev);
		goto out;
	}
	unsigned int sq = pow2_at_least(outstanding + 8);
	/* The kernel wants the CQ at least as large as the SQ. */
	unsigned int cq = pow2_at_least(2 * outstanding > sq ? 2 * outstanding : sq);
	int ret = fu_loop_init(&w->loop, sq, cq, flags);
	if (ret < 0) {
		fu_session_fail(s, "worker %u: cannot create its io_uring: %s", w->idx, strerror(-ret));
		goto out;
	}
	/* Registered ring fd and /dev/fuse file: one lookup fewer per
	 * io_uring_enter and per command. Both are optional. */
	io_uring_register_ring_fd(&w->loop.ring);
	w->dev_fd_fixed = io_uring_register_files(&w->loop.ring, &w->dev_fd, 1) == 0;
	io_uring_prep_read(fu_loop_sqe(&w->loop, &w->ctl_ev), w->ctl_fd, &w->ctl_val, sizeof(w->ctl_val), 0);
	dev_channel_arm(w->dev);
	for (unsigned int i = 0; i < w->nqueues; i++)
		ring_queue_register(w->queues[i]);
	ret = fu_loop_flush(&w->loop);
	if (ret < 0)
		fu_session_fail(s, "worker %u: submitting to io_uring failed: %s", w->idx, strerror(-ret));
	atomic_fetch_add(&s->workers_armed, 1);

	while (!w->stop_now && worker_live(w) > 0) {
		ret = fu_loop_turn(&w->loop);
		if (ret < 0) {
			fu_session_fail(s, "worker %u: io_uring wait failed: %s", w->idx, strerror(-ret));
			break;
		}
	}
	fu_loop_exit(&w->loop);
out:
	atomic_fetch_add(&s->workers_done, 1);
	return NULL;
}

/* Everything a worker needs before the INIT answer goes out, so that a
 * failure can still withdraw the io_uring offer. */
static int prepare_worker(struct fu_session *s, struct fu_worker *w, unsigned int idx, char *err, size_t errlen)
{
	w->s = s;
	w->idx = idx;
	w->dev_fd = -1;
	w->ctl_fd = eventfd(0, EFD_CLOEXEC);
	w->ctl_ev.fn = ctl_done;
	if (w->ctl_fd < 0) {
		fmt_err(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	if (dev_channel_open(w, s->fd, s->over_ring ? DEV_SLOTS_BESIDE_RING : s->depth, err, errlen) < 0)
		return -1;
	if (!s->over_ring)
		return 0;
	/* Queues are dealt round-robin: with N workers, worker i serves qids i,
	 * i+N, ... With more workers than queues, a queue is shared: worker i
	 * brings its own `depth` entries to qid i mod queues, and the kernel
	 * hands a request to whichever entry of the queue is free. */
	w->queues = calloc(s->nqueues / s->nworkers + 1, sizeof(*w->queues));
	if (!w->queues) {
		fmt_err(err, errlen, "out of memory");
		return -1;
	}
	unsigned int step = s->nworkers <= s->nqueues ? s->nworkers : s->nqueues;
	for (unsigned int q = idx % s->nqueues; q < s->nqueues; q += step) {
		if (ring_queue_create(w, (uint16_t)q, s->depth, s->payload_size, &w->queues[w->nqueues], err, errlen) < 0)
			return -1;
		w->nqueues++;
		if (s->nworkers > s->nqueues)
			break;
	}
	return 0;
}

static void free_workers(struct fu_session *s, bool forced)
{
	for (unsigned int i = 0; s->workers && i < s->nworkers; i++) {
		struct fu_worker *w = &s->workers[i];

		for (unsigned int q = 0; q < w->nqueues; q++)
			ring_queue_free(w->queues[q], forced);
		free(w->queues);
		if (!forced)
			dev_channel_free(w->dev);
		if (w->ctl_fd >= 0)
			close(w->ctl_fd);
	}
	free(s->workers);
	s->workers = NULL;
}

/* ---- FUSE_INIT ---- */

static int read_init(struct fu_session *s, unsigned char *buf, size_t len, struct fu_msg *msg, char *err,
		     size_t errlen)
{
	struct pollfd p = {.fd = s->fd, .events = POLLIN};
	int ret;

	do
		ret = poll(&p, 1, INIT_TIMEOUT_MS);
	while (ret < 0 && errno == EINTR);
	if (ret <= 0) {
		fmt_err(err, errlen, "the kernel sent no FUSE_INIT within %d s", INIT_TIMEOUT_MS / 1000);
		return -1;
	}
	ssize_t n;
	do
		n = read(s->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		fmt_err(err, errlen, "reading FUSE_INIT: %s", strerror(errno));
		return -1;
	}
	struct fu_wire wire = {
		.in = buf,
		.in_len = (size_t)n,
		.arg = buf + sizeof(struct fuse_in_header),
		.arg_len = (size_t)n > sizeof(struct fuse_in_header) ? (size_t)n - sizeof(struct fuse_in_header) : 0,
	};
	int derr = 0;
	if (fu_decode(&wire, &s->limits, msg, &derr) != FU_DECODE_OK || msg->opcode != FUSE_INIT) {
		fmt_err(err, errlen, "expected FUSE_INIT, got a malformed or other request (opcode %u)", msg->opcode);
		return -1;
	}
	return 0;
}

static int write_reply(int fd, uint64_t unique, int error, const void *data, size_t len)
{
	struct fuse_out_header oh = {.len = (uint32_t)(sizeof(oh) + (error ? 0 : len)), .error = error, .unique = unique};
	struct iovec iov[2] = {{&oh, sizeof(oh)}, {(void *)data, len}};
	return writev(fd, iov, error ? 1 : 2) < 0 ? -errno : 0;
}

static uint32_t clamp_max_write(uint32_t want)
{
	long page = sysconf(_SC_PAGESIZE);
	long limit = read_sysfs_long("/proc/sys/fs/fuse/max_pages_limit", 256);
	uint64_t cap = (uint64_t)limit * (uint64_t)page;

	if (want > cap)
		want = (uint32_t)cap;
	return want;
}

/* Async direct I/O, readahead and writeback are "background" requests, and
 * the kernel lets only max_background of them be in flight (default 12): an
 * application at iodepth 64 would wait in the kernel, not in our queues.
 * Allow as many as the session can hold at once. */
static uint16_t background_limit(const struct fu_session *s)
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

static int negotiate(struct fu_session *s, const char *no_ring_reason, char *err, size_t errlen)
{
	unsigned char *buf = malloc(s->payload_size + 8192);
	struct fu_msg msg;
	struct fuse_init_out out;
	size_t out_len = 0;
	int ret = -1;

	if (!buf) {
		fmt_err(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		if (read_init(s, buf, s->payload_size + 8192, &msg, err, errlen) < 0)
			goto out;
		struct fu_init_wish wish = {
			.max_write = s->cfg.max_write,
			.max_background = background_limit(s),
			.over_io_uring = s->cfg.io_uring != FURING_IO_URING_OFF && !no_ring_reason,
			.direct_io_allow_mmap = s->cfg.direct_io_allow_mmap,
			.page_size = (uint32_t)sysconf(_SC_PAGESIZE),
		};
		if (fu_init_negotiate(&msg.arg.init, &wish, &out, &out_len, &s->init) != FU_INIT_OK) {
			write_reply(s->fd, msg.unique, -EPROTO, NULL, 0);
			fmt_err(err, errlen, "unsupported FUSE protocol %u.%u from the kernel", msg.arg.init.major,
				msg.arg.init.minor);
			goto out;
		}
		if (!s->init.retry_major)
			break;
		write_reply(s->fd, msg.unique, 0, &out, out_len); /* the kernel asks again with major 7 */
	}

	s->over_ring = s->init.over_io_uring;
	if (s->cfg.io_uring == FURING_IO_URING_ON && !s->over_ring) {
		write_reply(s->fd, msg.unique, -EPROTO, NULL, 0);
		fmt_err(err, errlen, "--io-uring=on: the kernel did not offer FUSE-over-io_uring (protocol 7.%u)",
			s->init.minor);
		goto out;
	}
	if (s->cfg.io_uring == FURING_IO_URING_AUTO && !s->over_ring && !no_ring_reason)
		fprintf(stderr, "furing: the kernel did not offer FUSE-over-io_uring; serving over /dev/fuse\n");

	s->limits.max_write = s->init.max_write;
	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	if (!s->workers) {
		write_reply(s->fd, msg.unique, -ENOMEM, NULL, 0);
		fmt_err(err, errlen, "out of memory");
		goto out;
	}
	for (unsigned int i = 0; i < s->nworkers; i++)
		s->workers[i].ctl_fd = -1;
	for (unsigned int i = 0; i < s->nworkers; i++) {
		if (prepare_worker(s, &s->workers[i], i, err, errlen) < 0) {
			write_reply(s->fd, msg.unique, -EIO, NULL, 0);
			goto out;
		}
	}
	ret = write_reply(s->fd, msg.unique, 0, &out, out_len);
	if (ret < 0)
		fmt_err(err, errlen, "answering FUSE_INIT failed: %s", strerror(-ret));
out:
	free(buf);
	return ret < 0 ? -1 : 0;
}

/* ---- the public session API ---- */

struct furing_session *furing_session_new(const struct furing_ops *ops, void *fs, const struct furing_config *cfg,
					  char *err, size_t errlen)
{
	struct fu_session *s = calloc(1, sizeof(*s));

	if (!s) {
		fmt_err(err, errlen, "out of memory");
		return NULL;
	}
	s->ops = ops;
	s->fs = fs;
	s->cfg = *cfg;
	s->fd = -1;
	pthread_mutex_init(&s->fatal_lock, NULL);
	if (!s->cfg.fsname)
		s->cfg.fsname = "furing";
	if (!s->cfg.subtype)
		s->cfg.subtype = "furing";
	if (!s->cfg.threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		s->cfg.threads = n > 0 ? (unsigned int)n : 1;
	}
	if (!s->cfg.queue_depth)
		s->cfg.queue_depth = DEFAULT_QUEUE_DEPTH;
	/* An explicit payload size sets max_write: the kernel requires every
	 * entry to hold max(8192, max_write, max_pages * page). */
	if (!s->cfg.max_write)
		s->cfg.max_write = s->cfg.payload_size ? s->cfg.payload_size : DEFAULT_MAX_WRITE;
	s->cfg.max_write = clamp_max_write(s->cfg.max_write);
	long page = sysconf(_SC_PAGESIZE);
	uint32_t need = s->cfg.max_write < 8192 ? 8192 : s->cfg.max_write;
	need = (uint32_t)((need + (uint32_t)page - 1) & ~((uint32_t)page - 1));
	if (s->cfg.payload_size && s->cfg.payload_size < need) {
		fmt_err(err, errlen, "payload size %u is below what the kernel requires (%u)", s->cfg.payload_size, need);
		free(s);
		return NULL;
	}
	s->payload_size = s->cfg.payload_size ? s->cfg.payload_size : need;
	s->depth = s->cfg.queue_depth;
	s->nworkers = s->cfg.threads;
	s->limits.max_write = s->cfg.max_write;
	return (struct furing_session *)s;
}

static void block_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void report_layout(struct fu_session *s)
{
	if (s->over_ring) {
		unsigned int parts = s->nworkers > s->nqueues ? s->nworkers : s->nqueues;
		double mib = (double)parts * s->depth * s->payload_size / (1024.0 * 1024.0);
		fprintf(stderr,
			"furing: io_uring: %u queues (possible CPUs) on %u worker thread%s, %u x depth %u x %u KiB "
			"payload = %.0f MiB of buffers (touched on use)\n",
			s->nqueues, s->nworkers, s->nworkers == 1 ? "" : "s", parts, s->depth, s->payload_size / 1024,
			mib);
	} else {
		fprintf(stderr, "furing: /dev/fuse: %u worker thread%s x %u requests in flight, max_write %u KiB\n",
			s->nworkers, s->nworkers == 1 ? "" : "s", s->blocking ? 1 : s->depth, s->init.max_write / 1024);
	}
}

int furing_session_start(struct furing_session *pub, const char *mountpoint, char *err, size_t errlen)
{
	struct fu_session *s = (struct fu_session *)pub;
	char why_loop[256], why_ring[256];
	const char *no_loop = io_uring_refused(why_loop, sizeof(why_loop));
	const char *no_ring = NULL;

	if (s->cfg.io_uring != FURING_IO_URING_OFF)
		no_ring = no_loop ? no_loop : fuse_ring_refused(why_ring, sizeof(why_ring));
	if (no_ring && s->cfg.io_uring == FURING_IO_URING_ON) {
		fmt_err(err, errlen, "--io-uring=on: %s", no_ring);
		return -1;
	}
	s->blocking = no_loop != NULL;
	if (no_loop)
		fprintf(stderr, "furing: %s: serving /dev/fuse with blocking reads, one request per thread at a time\n",
			no_loop);
	else if (no_ring)
		fprintf(stderr, "furing: %s; serving over /dev/fuse\n", no_ring);
	s->nqueues = no_ring || s->cfg.io_uring == FURING_IO_URING_OFF ? 0 : possible_cpus();

	s->mountpoint = realpath(mountpoint, NULL);
	if (!s->mountpoint) {
		fmt_err(err, errlen, "mountpoint %s: %s", mountpoint, strerror(errno));
		return -1;
	}
	if (fu_is_mountpoint(s->mountpoint)) {
		fmt_err(err, errlen, "mountpoint %s is busy: something is already mounted there", s->mountpoint);
		return -1;
	}
	struct fu_mount_opts mo = {
		.fsname = s->cfg.fsname,
		.subtype = s->cfg.subtype,
		.root_mode = s->cfg.root_mode,
		.allow_other = s->cfg.allow_other,
		.read_only = s->cfg.read_only,
		.max_read = s->payload_size,
	};
	s->fd = fu_mount(s->mountpoint, &mo, &s->via_fusermount, err, errlen);
	if (s->fd < 0)
		return -1;
	s->mounted = true;
	fu_mount_dev(s->mountpoint, &s->conn_dev);

	block_signals();
	if (negotiate(s, no_ring, err, errlen) < 0)
		goto fail;
	if (s->ops->init) {
		struct furing_conn_info info = {
			.proto_major = s->init.major,
			.proto_minor = s->init.minor,
			.max_write = s->init.max_write,
			.max_read = s->payload_size,
			.over_io_uring = s->over_ring,
			.nr_workers = s->nworkers,
		};
		s->ops->init(s->fs, &info);
	}
	report_layout(s);
	for (unsigned int i = 0; i < s->nworkers; i++) {
		struct fu_worker *w = &s->workers[i];
		int ret = pthread_create(&w->thread, NULL, worker_main, w);
		if (ret) {
			fmt_err(err, errlen, "cannot start worker %u: %s", i, strerror(ret));
			goto fail_stop;
		}
		w->thread_started = true;
	}
	/* Return only once every worker has armed its reads and registered its
	 * queues, so a caller (--daemonize) can promise the mount serves. */
	uint64_t deadline = now_ms() + 10000;
	while (atomic_load(&s->workers_armed) + atomic_load(&s->workers_done) < s->nworkers && now_ms() < deadline)
		usleep(1000);
	if (atomic_load(&s->fatal)) {
		fmt_err(err, errlen, "%s", s->fatal_msg);
		goto fail_stop;
	}
	return 0;

fail_stop:
	furing_session_stop(pub);
	furing_session_wait(pub);
	return -1;
fail:
	fu_unmount(s->mountpoint, s->via_fusermount);
	s->mounted = false;
	return -1;
}

void furing_session_stop(struct furing_session *pub)
{
	atomic_store(&((struct fu_session *)pub)->stop_requested, true);
}

static void force_workers_out(struct fu_session *s)
{
	uint64_t one = 1;
	for (unsigned int i = 0; i < s->nworkers; i++)
		if (s->workers[i].ctl_fd >= 0 && write(s->workers[i].ctl_fd, &one, sizeof(one)) < 0)
			fprintf(stderr, "furing: cannot signal worker %u: %s\n", i, strerror(errno));
}

int furing_session_wait(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;
	sigset_t set;
	uint64_t stop_at = 0;
	enum { RUNNING, UNMOUNTED, ABORTED, FORCED } phase = RUNNING;
	struct timespec tick = {0, 100 * 1000 * 1000};
	char line[4096];

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	while (atomic_load(&s->workers_done) < s->nworkers) {
		int sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGUSR1) {
			fu_stats_line(s, "furing: stats", line, sizeof(line));
			fprintf(stderr, "%s\n", line);
		} else if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			atomic_store(&s->stop_requested, true);
		}
		if (!atomic_load(&s->stop_requested))
			continue;
		uint64_t now = now_ms();
		switch (phase) {
		case RUNNING:
			/* Lazy: the mount vanishes now; the connection ends as
			 * soon as no one holds the file open. */
			if (s->mounted)
				fu_unmount(s->mountpoint, s->via_fusermount);
			s->mounted = false;
			stop_at = now;
			phase = UNMOUNTED;
			break;
		case UNMOUNTED:
			if (now - stop_at >= STOP_GRACE_MS) {
				int ret = fu_abort_connection(s->conn_dev);
				if (ret < 0)
					fprintf(stderr, "furing: cannot abort the connection (%s); closing it\n",
						strerror(-ret));
				phase = ABORTED;
			}
			break;
		case ABORTED:
			if (now - stop_at >= STOP_GRACE_MS + ABORT_GRACE_MS) {
				force_workers_out(s);
				phase = FORCED;
			}
			break;
		case FORCED:
			break;
		}
	}
	for (unsigned int i = 0; i < s->nworkers; i++)
		if (s->workers[i].thread_started) {
			pthread_join(s->workers[i].thread, NULL);
			s->workers[i].thread_started = false;
		}
	/* Someone else unmounted, or a fatal error ended the connection while
	 * the mount stayed: make sure nothing is left behind. */
	if (s->mounted || fu_is_mountpoint(s->mountpoint))
		fu_unmount(s->mountpoint, s->via_fusermount);
	s->mounted = false;
	s->forced = phase == FORCED;
	return atomic_load(&s->fatal) ? 1 : 0;
}

void furing_session_stats_line(struct furing_session *pub, char *buf, size_t len)
{
	fu_stats_line((struct fu_session *)pub, "furing: summary", buf, len);
}

void furing_session_destroy(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;

	if (!s)
		return;
	if (s->ops->destroy)
		s->ops->destroy(s->fs);
	free_workers(s, s->forced);
	if (s->fd >= 0)
		close(s->fd);
	free(s->mountpoint);
	pthread_mutex_destroy(&s->fatal_lock);
	free(s);
}
