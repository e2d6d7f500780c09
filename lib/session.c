/* A session's life: create, start, wait, stop, destroy.
 *
 * Owns the lifecycle and the configuration's defaults; it runs the steps of
 * the other two session files in order (lib/session_priv.h):
 * session_transport.c decides the transport and its sizes,
 * session_init.c answers FUSE_INIT.
 *
 *   new:    defaults -> transport sizing (max_write, payload, depth) ->
 *           the eventfd that wait sleeps on.
 *   start:  choose the transport (io_uring usable? ring offered?) -> mount
 *           -> read INIT on /dev/fuse -> the filesystem's init() chooses ->
 *           negotiate -> the ring setup plan -> prepare each worker (cloned
 *           fd, ring queue buffers) -> write the INIT answer -> start the
 *           workers (each creates its io_uring and only now REGISTERs its
 *           queues: doc/protocol.md 1.2) -> wait until every worker has
 *           armed its reads and entries, or failed, or the start-up time is
 *           over.
 *   wait:   the calling thread sleeps in poll(2) on an eventfd that stop
 *           requests, signals, fatal errors and finishing workers write;
 *           workers serve until the connection ends (someone unmounted:
 *           reads give ENODEV, ring entries -ENOTCONN) and leave on their own.
 *   stop:   furing_session_stop or a fatal worker error -> lazy unmount ->
 *           if the connection is still held open by a user after a grace
 *           period, abort it through fusectl -> if a worker still has not
 *           finished, force it out of its loop. furing_session_abort skips
 *           the grace period: the abort follows the unmount at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mount.h"
#include "session_priv.h"

#define DEFAULT_QUEUE_DEPTH 32
#define DEFAULT_START_TIMEOUT_MS 10000
#define STOP_GRACE_MS 1000  /* after the lazy unmount, before aborting */
#define ABORT_GRACE_MS 3000 /* after the abort, before forcing workers out */

void fu_fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
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

/* ---- what workers report ---- */

void fu_session_wake(struct fu_session *s)
{
	uint64_t one = 1;
	/* Fails only when the counter is saturated: a wake-up is pending then. */
	if (s->wake_fd >= 0 && write(s->wake_fd, &one, sizeof(one)) < 0)
		return;
}

void fu_session_fail(struct fu_session *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->fatal_lock);
	if (!atomic_load(&s->fatal)) {
		va_start(ap, fmt);
		vsnprintf(s->fatal_msg, sizeof(s->fatal_msg), fmt, ap);
		va_end(ap);
		fu_log(s, FURING_LOG_ERROR, "%s", s->fatal_msg);
		atomic_store(&s->fatal, true);
	}
	pthread_mutex_unlock(&s->fatal_lock);
	atomic_store(&s->stop_requested, true);
	fu_session_wake(s);
}

void fu_session_worker_armed(struct fu_session *s)
{
	pthread_mutex_lock(&s->state_lock);
	s->workers_armed++;
	pthread_cond_broadcast(&s->state_cond);
	pthread_mutex_unlock(&s->state_lock);
}

void fu_session_worker_done(struct fu_session *s)
{
	atomic_fetch_add(&s->workers_done, 1);
	fu_session_wake(s);
}

/* ---- the public session API ---- */

const char *furing_version(void)
{
	return FURING_LIB_VERSION;
}

/* The configuration's defaults: a zero field means "default". */
static void apply_defaults(struct furing_config *cfg)
{
	if (!cfg->fsname)
		cfg->fsname = "furing";
	if (!cfg->subtype)
		cfg->subtype = "furing";
	if (!cfg->root_mode)
		cfg->root_mode = S_IFDIR | 0755;
	if (!cfg->threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->threads = n > 0 ? (unsigned int)n : 1;
	}
	if (!cfg->queue_depth)
		cfg->queue_depth = DEFAULT_QUEUE_DEPTH;
	if (!cfg->start_timeout_ms)
		cfg->start_timeout_ms = DEFAULT_START_TIMEOUT_MS;
	if (cfg->start_timeout_ms > INT_MAX)
		cfg->start_timeout_ms = INT_MAX;
}

uint64_t furing_config_buffer_bytes(const struct furing_config *cfg, size_t cfg_size)
{
	/* The sizing of furing_session_new, on a session that is never
	 * started: the same defaults and rounding, so the same figure. */
	struct fu_session *s = cfg ? calloc(1, sizeof(*s)) : NULL;
	uint64_t bytes = 0;

	if (!s)
		return 0;
	memcpy(&s->cfg, cfg, cfg_size < sizeof(s->cfg) ? cfg_size : sizeof(s->cfg));
	apply_defaults(&s->cfg);
	if (fu_transport_size(s, NULL, 0) == 0)
		bytes = fu_transport_buffer_bytes(s);
	free(s);
	return bytes;
}

/* Defaults, sizing, checks and the wake-up eventfd. */
static int session_setup(struct fu_session *s, char *err, size_t errlen)
{
	int ret;

	apply_defaults(&s->cfg);
	ret = fu_transport_size(s, err, errlen);
	if (ret < 0)
		return ret;
	if (!S_ISDIR(s->cfg.root_mode) && !S_ISREG(s->cfg.root_mode)) {
		fu_fmt_err(err, errlen, "root_mode %#o is neither a directory (S_IFDIR) nor a file (S_IFREG)",
			   (unsigned)s->cfg.root_mode);
		return -EINVAL;
	}
	/* Created now, so that a stop (or a signal) that comes before or
	 * during start is not lost. */
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		int e = errno;
		fu_fmt_err(err, errlen, "eventfd: %s", strerror(e));
		return -e;
	}
	s->nworkers = s->cfg.threads;
	return 0;
}

struct furing_session *furing_session_new(const struct furing_ops *ops, size_t ops_size,
					  const struct furing_config *cfg, size_t cfg_size, void *fs, char *err,
					  size_t errlen)
{
	struct fu_session *s;

	if (!ops || !cfg) {
		fu_fmt_err(err, errlen, "furing_session_new: ops and cfg are required");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		fu_fmt_err(err, errlen, "out of memory");
		return NULL;
	}
	/* An older caller's structs are shorter: the fields it does not know
	 * stay zero, which means "default". */
	memcpy(&s->ops, ops, ops_size < sizeof(s->ops) ? ops_size : sizeof(s->ops));
	memcpy(&s->cfg, cfg, cfg_size < sizeof(s->cfg) ? cfg_size : sizeof(s->cfg));
	s->fs = fs;
	s->fd = -1;
	s->wake_fd = -1;
	pthread_mutex_init(&s->fatal_lock, NULL);
	pthread_mutex_init(&s->state_lock, NULL);
	pthread_cond_init(&s->state_cond, NULL);
	pthread_mutex_init(&s->intr_lock, NULL);
	pthread_mutex_init(&s->notify_lock, NULL);
	if (session_setup(s, err, errlen) < 0) {
		furing_session_destroy((struct furing_session *)s);
		return NULL;
	}
	struct fu_mount_opts mo = {.fsname = s->cfg.fsname, .subtype = s->cfg.subtype, .max_read = s->payload_size,
				   .options = s->cfg.mount_options};
	if (fu_mount_check(&mo, err, errlen) < 0) { /* a name that cannot be mounted fails here, not at start */
		furing_session_destroy((struct furing_session *)s);
		return NULL;
	}
	return (struct furing_session *)s;
}

/* Every worker's cloned fd and ring queue buffers, before INIT is answered
 * (doc/protocol.md 1.2). On failure INIT has been refused. */
static int prepare_workers(struct fu_session *s, const struct fu_init_pending *p, char *err, size_t errlen)
{
	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	if (!s->workers) {
		fu_init_refuse(s, p, -ENOMEM);
		fu_fmt_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < s->nworkers; i++)
		s->workers[i].ctl_fd = -1;
	for (unsigned int i = 0; i < s->nworkers; i++) {
		int ret = fu_worker_prepare(s, &s->workers[i], i, err, errlen);
		if (ret < 0) {
			fu_init_refuse(s, p, -EIO);
			return ret;
		}
	}
	return 0;
}

/* FUSE_INIT, the ring setup plan and the workers, in the order the kernel
 * needs: everything a worker registers is ready before INIT is answered.
 * On failure INIT has been refused (or the kernel is gone). */
static int negotiate(struct fu_session *s, const char *no_ring_reason, char *err, size_t errlen)
{
	struct fu_init_pending p;
	int ret = fu_init_exchange(s, no_ring_reason, &p, err, errlen);

	if (ret < 0)
		return ret;
	ret = fu_transport_plan(s, no_ring_reason, err, errlen);
	if (ret < 0) {
		fu_init_refuse(s, &p, -EPROTO);
		return ret;
	}
	fu_init_apply(s, &p);
	ret = prepare_workers(s, &p, err, errlen);
	if (ret < 0)
		return ret;
	return fu_init_answer(s, &p, err, errlen);
}

/* realpath, a check that nothing is mounted there yet, and the mount. */
static int mount_fs(struct fu_session *s, const char *mountpoint, char *err, size_t errlen)
{
	int ret;

	s->mountpoint = realpath(mountpoint, NULL);
	if (!s->mountpoint) {
		ret = -errno;
		fu_fmt_err(err, errlen, "mountpoint %s: %s", mountpoint, strerror(-ret));
		return ret;
	}
	if (fu_is_mountpoint(s->mountpoint)) {
		fu_fmt_err(err, errlen, "mountpoint %s is busy: something is already mounted there", s->mountpoint);
		return -EBUSY;
	}
	struct fu_mount_opts mo = {
		.fsname = s->cfg.fsname,
		.subtype = s->cfg.subtype,
		.root_mode = s->cfg.root_mode,
		.allow_other = s->cfg.allow_other,
		.read_only = s->cfg.read_only,
		.default_permissions = s->cfg.default_permissions,
		.max_read = s->payload_size,
		.options = s->cfg.mount_options,
	};
	s->fd = fu_mount(s->mountpoint, &mo, &s->via_fusermount, err, errlen);
	if (s->fd < 0) {
		ret = s->fd;
		s->fd = -1;
		return ret < -1 ? ret : -EIO;
	}
	s->mounted = true;
	fu_mount_dev(s->mountpoint, &s->conn_dev);
	return 0;
}

/* Workers run with every signal blocked: signals are the application's to
 * take, on its own threads. The calling thread's mask is not touched. */
static int start_workers(struct fu_session *s, char *err, size_t errlen)
{
	pthread_attr_t attr;
	sigset_t all;
	int ret = pthread_attr_init(&attr);

	if (ret) {
		fu_fmt_err(err, errlen, "pthread_attr_init: %s", strerror(ret));
		return -ret;
	}
	sigfillset(&all);
	pthread_attr_setsigmask_np(&attr, &all);
	for (unsigned int i = 0; i < s->nworkers; i++) {
		struct fu_worker *w = &s->workers[i];
		ret = pthread_create(&w->thread, &attr, fu_worker_main, w);
		if (ret) {
			fu_fmt_err(err, errlen, "cannot start worker thread %u of %u: %s", i + 1, s->nworkers, strerror(ret));
			/* The ones never started count as done and as armed. */
			pthread_mutex_lock(&s->state_lock);
			s->workers_armed += s->nworkers - i;
			pthread_mutex_unlock(&s->state_lock);
			atomic_fetch_add(&s->workers_done, s->nworkers - i);
			pthread_attr_destroy(&attr);
			return -ret;
		}
		w->thread_started = true;
	}
	pthread_attr_destroy(&attr);
	return 0;
}

/* Until every worker has armed (or failed), or the time is over. */
static bool wait_armed(struct fu_session *s)
{
	struct timespec deadline;
	bool all;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += s->cfg.start_timeout_ms / 1000;
	deadline.tv_nsec += (long)(s->cfg.start_timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->state_lock);
	while (s->workers_armed < s->nworkers && !atomic_load(&s->fatal))
		if (pthread_cond_timedwait(&s->state_cond, &s->state_lock, &deadline) == ETIMEDOUT)
			break;
	all = s->workers_armed >= s->nworkers;
	pthread_mutex_unlock(&s->state_lock);
	return all;
}

int furing_session_start(struct furing_session *pub, const char *mountpoint, char *err, size_t errlen)
{
	struct fu_session *s = (struct fu_session *)pub;
	struct fu_transport_choice tc;
	int ret;

	if (s->mountpoint || s->fd >= 0 || s->workers) {
		fu_fmt_err(err, errlen, "furing_session_start: the session was already started");
		return -EBUSY;
	}
	ret = fu_transport_choose(s, &tc, err, errlen);
	if (ret < 0)
		return ret;
	ret = mount_fs(s, mountpoint, err, errlen);
	if (ret < 0)
		return ret;
	ret = negotiate(s, tc.no_ring, err, errlen);
	if (ret < 0) {
		fu_unmount(s->mountpoint, s->via_fusermount);
		s->mounted = false;
		return ret;
	}
	/* Workers serve from their first moment, and a request's operation may
	 * already notify: the session counts as running from here. */
	atomic_store(&s->running, true);
	ret = start_workers(s, err, errlen);
	/* A worker that failed counts as armed: its reason is the error. */
	if (ret == 0 && !wait_armed(s) && !atomic_load(&s->fatal)) {
		fu_fmt_err(err, errlen, "the workers did not arm their queues within %u ms (start_timeout_ms)",
			   s->cfg.start_timeout_ms);
		ret = -ETIMEDOUT;
	}
	if (ret == 0 && atomic_load(&s->fatal)) {
		fu_fmt_err(err, errlen, "%s", s->fatal_msg);
		ret = -EIO;
	}
	if (ret < 0) {
		/* Undo: unmount, abort, force out, join: bounded by the grace
		 * periods of furing_session_wait. */
		furing_session_stop(pub);
		furing_session_wait(pub);
		return ret;
	}
	/* After the workers armed: only then is it known what each queue got
	 * (a pool, zero-copy, or per-entry buffers after a refusal). */
	fu_transport_report(s);
	return 0;
}

void furing_session_stop(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;

	atomic_store(&s->stop_requested, true);
	fu_session_wake(s);
}

void furing_session_abort(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;

	atomic_store(&s->abort_requested, true);
	furing_session_stop(pub);
}

/* Users still holding the file get ECONNABORTED from now on; the workers
 * see the connection end and leave. @stop_at moves back so that the
 * forced exit comes ABORT_GRACE_MS after this abort, however early. */
static void abort_now(struct fu_session *s, uint64_t now, uint64_t *stop_at)
{
	int ret = fu_abort_connection(s->conn_dev);
	if (ret < 0)
		fu_log(s, FURING_LOG_WARNING, "cannot abort the connection (%s); closing it", strerror(-ret));
	*stop_at = now - STOP_GRACE_MS;
}

static void force_workers_out(struct fu_session *s)
{
	for (unsigned int i = 0; i < s->nworkers; i++) {
		if (s->workers[i].ctl_fd < 0)
			continue;
		atomic_store(&s->workers[i].force_stop, true);
		fu_worker_wake(&s->workers[i]);
	}
}

static void log_stats(struct fu_session *s)
{
	char line[4096];
	furing_session_stats_line((struct furing_session *)s, line, sizeof(line));
	fu_log(s, FURING_LOG_INFO, "stats %s", line);
}

int furing_session_wait(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;
	uint64_t stop_at = 0;
	enum { RUNNING, UNMOUNTED, ABORTED, FORCED } phase = RUNNING;

	if (!atomic_load(&s->running))
		return -EINVAL;
	while (atomic_load(&s->workers_done) < s->nworkers) {
		int timeout = -1;
		uint64_t now = now_ms();
		if (phase == UNMOUNTED)
			timeout = (int)(stop_at + STOP_GRACE_MS > now ? stop_at + STOP_GRACE_MS - now : 0);
		else if (phase == ABORTED)
			timeout = (int)(stop_at + STOP_GRACE_MS + ABORT_GRACE_MS > now
						? stop_at + STOP_GRACE_MS + ABORT_GRACE_MS - now
						: 0);
		struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};
		if (poll(&p, 1, timeout) > 0) {
			uint64_t v;
			if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
		}
		if (atomic_exchange(&s->stats_requested, false))
			log_stats(s);
		if (!atomic_load(&s->stop_requested))
			continue;
		now = now_ms();
		switch (phase) {
		case RUNNING:
			/* Lazy: the mount vanishes now; the connection ends as
			 * soon as no one holds the file open. */
			if (s->mounted)
				fu_unmount(s->mountpoint, s->via_fusermount);
			s->mounted = false;
			stop_at = now;
			phase = UNMOUNTED;
			if (atomic_load(&s->abort_requested)) {
				abort_now(s, now, &stop_at);
				phase = ABORTED;
			}
			break;
		case UNMOUNTED:
			if (atomic_load(&s->abort_requested) || now - stop_at >= STOP_GRACE_MS) {
				abort_now(s, now, &stop_at);
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
	atomic_store(&s->running, false);
	return atomic_load(&s->fatal) ? -EIO : 0;
}

const struct furing_conn *furing_session_conn(const struct furing_session *pub)
{
	return &((const struct fu_session *)pub)->conn;
}

bool furing_session_has_io_uring(const struct furing_session *pub)
{
	return !((const struct fu_session *)pub)->blocking;
}

bool furing_session_buffer_pool(const struct furing_session *pub)
{
	return atomic_load(&((const struct fu_session *)pub)->queues_pooled) != 0;
}

bool furing_session_zero_copy(const struct furing_session *pub)
{
	return atomic_load(&((const struct fu_session *)pub)->queues_zc) != 0;
}

void furing_session_stats_line(struct furing_session *pub, char *buf, size_t len)
{
	fu_stats_line((struct fu_session *)pub, buf, len);
}

int furing_session_stats(struct furing_session *pub, struct furing_stats *st, size_t st_size, uint64_t *queue_requests,
			 unsigned int max_queues)
{
	return fu_stats_get((struct fu_session *)pub, st, st_size, queue_requests, max_queues);
}

void furing_session_destroy(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;

	if (!s)
		return;
	if (atomic_load(&s->running)) {
		furing_session_stop(pub);
		furing_session_wait(pub);
	}
	fu_signals_restore(s);
	if (s->init_ran && s->ops.destroy)
		s->ops.destroy(s->fs);
	for (unsigned int i = 0; s->workers && i < s->nworkers; i++)
		fu_worker_free(&s->workers[i], s->forced);
	free(s->workers);
	if (s->fd >= 0)
		close(s->fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	fu_retrieve_free_all(s);
	free(s->mountpoint);
	pthread_mutex_destroy(&s->fatal_lock);
	pthread_mutex_destroy(&s->state_lock);
	pthread_cond_destroy(&s->state_cond);
	pthread_mutex_destroy(&s->intr_lock);
	pthread_mutex_destroy(&s->notify_lock);
	free(s);
}
