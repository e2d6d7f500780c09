/* A session's life: mount, FUSE_INIT, workers, serving, stop.
 *
 *   start:  probe io_uring -> mount -> read INIT on /dev/fuse -> the
 *           filesystem's init() chooses -> negotiate -> prepare each worker
 *           (cloned fd, ring queue buffers) -> write the INIT answer ->
 *           start the workers (each creates its io_uring and only now
 *           REGISTERs its queues: doc/protocol.md 1.2) -> wait until every
 *           worker has armed its reads and entries, or failed, or the
 *           start-up time is over.
 *   wait:   the calling thread sleeps in poll(2) on an eventfd that stop
 *           requests, signals, fatal errors and finishing workers write;
 *           workers serve until the connection ends (someone unmounted:
 *           reads give ENODEV, ring entries -ENOTCONN) and leave on their own.
 *   stop:   furing_session_stop or a fatal worker error -> lazy unmount ->
 *           if the connection is still held open by a user after a grace
 *           period, abort it through fusectl -> if a worker still has not
 *           finished, force it out of its loop.
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

#include "engine.h"
#include "mount.h"

#define DEFAULT_MAX_WRITE (1u << 20)
#define DEFAULT_QUEUE_DEPTH 32
#define DEFAULT_START_TIMEOUT_MS 10000
#define STOP_GRACE_MS 1000  /* after the lazy unmount, before aborting */
#define ABORT_GRACE_MS 3000 /* after the abort, before forcing workers out */

/* Every FURING_CAP_* must be the kernel's bit: the two are ORed and ANDed
 * together in the INIT answer. */
#define SAME_BIT(cap, flags) _Static_assert((cap) == (uint64_t)(flags), #cap " is the kernel's " #flags)
#define SAME_BIT2(cap, flags2) _Static_assert((cap) == ((uint64_t)(flags2) << 32), #cap " is the kernel's " #flags2)
SAME_BIT(FURING_CAP_ASYNC_READ, FUSE_ASYNC_READ);
SAME_BIT(FURING_CAP_POSIX_LOCKS, FUSE_POSIX_LOCKS);
SAME_BIT(FURING_CAP_ATOMIC_O_TRUNC, FUSE_ATOMIC_O_TRUNC);
SAME_BIT(FURING_CAP_EXPORT_SUPPORT, FUSE_EXPORT_SUPPORT);
SAME_BIT(FURING_CAP_DONT_MASK, FUSE_DONT_MASK);
SAME_BIT(FURING_CAP_FLOCK_LOCKS, FUSE_FLOCK_LOCKS);
SAME_BIT(FURING_CAP_IOCTL_DIR, FUSE_HAS_IOCTL_DIR);
SAME_BIT(FURING_CAP_AUTO_INVAL_DATA, FUSE_AUTO_INVAL_DATA);
SAME_BIT(FURING_CAP_READDIRPLUS, FUSE_DO_READDIRPLUS);
SAME_BIT(FURING_CAP_READDIRPLUS_AUTO, FUSE_READDIRPLUS_AUTO);
SAME_BIT(FURING_CAP_ASYNC_DIO, FUSE_ASYNC_DIO);
SAME_BIT(FURING_CAP_WRITEBACK_CACHE, FUSE_WRITEBACK_CACHE);
SAME_BIT(FURING_CAP_NO_OPEN_SUPPORT, FUSE_NO_OPEN_SUPPORT);
SAME_BIT(FURING_CAP_PARALLEL_DIROPS, FUSE_PARALLEL_DIROPS);
SAME_BIT(FURING_CAP_HANDLE_KILLPRIV, FUSE_HANDLE_KILLPRIV);
SAME_BIT(FURING_CAP_POSIX_ACL, FUSE_POSIX_ACL);
SAME_BIT(FURING_CAP_CACHE_SYMLINKS, FUSE_CACHE_SYMLINKS);
SAME_BIT(FURING_CAP_NO_OPENDIR_SUPPORT, FUSE_NO_OPENDIR_SUPPORT);
SAME_BIT(FURING_CAP_EXPLICIT_INVAL_DATA, FUSE_EXPLICIT_INVAL_DATA);
SAME_BIT(FURING_CAP_HANDLE_KILLPRIV_V2, FUSE_HANDLE_KILLPRIV_V2);
SAME_BIT(FURING_CAP_SETXATTR_EXT, FUSE_SETXATTR_EXT);
SAME_BIT2(FURING_CAP_SECURITY_CTX, FUSE2_SECURITY_CTX);
SAME_BIT2(FURING_CAP_CREATE_SUPP_GROUP, FUSE2_CREATE_SUPP_GROUP);
SAME_BIT2(FURING_CAP_EXPIRE_ONLY, FUSE2_HAS_EXPIRE_ONLY);
SAME_BIT2(FURING_CAP_DIRECT_IO_ALLOW_MMAP, FUSE2_DIRECT_IO_ALLOW_MMAP);
SAME_BIT2(FURING_CAP_PASSTHROUGH, FUSE2_PASSTHROUGH);
SAME_BIT2(FURING_CAP_NO_EXPORT_SUPPORT, FUSE2_NO_EXPORT_SUPPORT);
SAME_BIT2(FURING_CAP_OVER_IO_URING, FUSE2_OVER_IO_URING);
#undef SAME_BIT
#undef SAME_BIT2

/* The capabilities a filesystem may ask for (the rest are the engine's). */
#define FS_CAPS                                                                                                  \
	(FURING_CAP_ASYNC_READ | FURING_CAP_POSIX_LOCKS | FURING_CAP_ATOMIC_O_TRUNC | FURING_CAP_EXPORT_SUPPORT |      \
	 FURING_CAP_DONT_MASK | FURING_CAP_FLOCK_LOCKS | FURING_CAP_IOCTL_DIR | FURING_CAP_AUTO_INVAL_DATA |          \
	 FURING_CAP_READDIRPLUS | FURING_CAP_READDIRPLUS_AUTO | FURING_CAP_ASYNC_DIO | FURING_CAP_WRITEBACK_CACHE |    \
	 FURING_CAP_NO_OPEN_SUPPORT | FURING_CAP_PARALLEL_DIROPS | FURING_CAP_HANDLE_KILLPRIV | FURING_CAP_POSIX_ACL | \
	 FURING_CAP_CACHE_SYMLINKS | FURING_CAP_NO_OPENDIR_SUPPORT | FURING_CAP_EXPLICIT_INVAL_DATA |                 \
	 FURING_CAP_HANDLE_KILLPRIV_V2 | FURING_CAP_SETXATTR_EXT | FURING_CAP_SECURITY_CTX |                         \
	 FURING_CAP_CREATE_SUPP_GROUP | FURING_CAP_EXPIRE_ONLY | FURING_CAP_DIRECT_IO_ALLOW_MMAP |                    \
	 FURING_CAP_PASSTHROUGH | FURING_CAP_NO_EXPORT_SUPPORT | FURING_CAP_OVER_IO_URING)

/* Public constants that must equal the kernel's. */
_Static_assert(FURING_SET_MODE == FATTR_MODE && FURING_SET_UID == FATTR_UID && FURING_SET_GID == FATTR_GID &&
		       FURING_SET_SIZE == FATTR_SIZE && FURING_SET_ATIME == FATTR_ATIME &&
		       FURING_SET_MTIME == FATTR_MTIME && FURING_SET_ATIME_NOW == FATTR_ATIME_NOW &&
		       FURING_SET_MTIME_NOW == FATTR_MTIME_NOW && FURING_SET_CTIME == FATTR_CTIME &&
		       FURING_SET_KILL_SUIDGID == FATTR_KILL_SUIDGID,
	       "FURING_SET_* are the kernel's FATTR_* bits");
_Static_assert(FURING_OPEN_DIRECT_IO == FOPEN_DIRECT_IO && FURING_OPEN_KEEP_CACHE == FOPEN_KEEP_CACHE &&
		       FURING_OPEN_NONSEEKABLE == FOPEN_NONSEEKABLE && FURING_OPEN_CACHE_DIR == FOPEN_CACHE_DIR &&
		       FURING_OPEN_STREAM == FOPEN_STREAM && FURING_OPEN_NOFLUSH == FOPEN_NOFLUSH &&
		       FURING_OPEN_PARALLEL_WRITES == FOPEN_PARALLEL_DIRECT_WRITES &&
		       FURING_OPEN_PASSTHROUGH == FOPEN_PASSTHROUGH,
	       "FURING_OPEN_* are the kernel's FOPEN_* bits");
_Static_assert(FURING_SETXATTR_ACL_KILL_SGID == FUSE_SETXATTR_ACL_KILL_SGID, "setxattr flags");
_Static_assert(FURING_IOCTL_COMPAT == FUSE_IOCTL_COMPAT && FURING_IOCTL_DIR == FUSE_IOCTL_DIR, "ioctl flags");
_Static_assert(FURING_NOTIFY_EXPIRE_ONLY == FUSE_EXPIRE_ONLY, "inval_entry flags");
_Static_assert(FURING_ROOT_ID == FUSE_ROOT_ID, "the root's node id");

static void fmt_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
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

/* ---- io_uring availability (doc/protocol.md 1.1) ---- */

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

/* ---- FUSE_INIT ---- */

static int read_init(struct fu_session *s, unsigned char *buf, size_t len, struct fu_msg *msg, char *err,
		     size_t errlen)
{
	struct pollfd p = {.fd = s->fd, .events = POLLIN};
	int timeout = (int)s->cfg.start_timeout_ms;
	int ret;

	do
		ret = poll(&p, 1, timeout);
	while (ret < 0 && errno == EINTR);
	if (ret <= 0) {
		fmt_err(err, errlen, "the kernel sent no FUSE_INIT within %d ms (start_timeout_ms)", timeout);
		return -ETIMEDOUT;
	}
	ssize_t n;
	do
		n = read(s->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		fmt_err(err, errlen, "reading FUSE_INIT: %s", strerror(e));
		return -e;
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
		return -EPROTO;
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

/* What the operations table implies, on top of FURING_CAP_DEFAULTS. */
static uint64_t implied_caps(const struct furing_ops *o)
{
	uint64_t want = FURING_CAP_DEFAULTS;

	if (o->getlk && o->setlk)
		want |= FURING_CAP_POSIX_LOCKS;
	if (o->flock)
		want |= FURING_CAP_FLOCK_LOCKS;
	if (o->readdirplus)
		want |= FURING_CAP_READDIRPLUS | FURING_CAP_READDIRPLUS_AUTO;
	if (o->ioctl)
		want |= FURING_CAP_IOCTL_DIR;
	if (o->setxattr)
		want |= FURING_CAP_SETXATTR_EXT;
	if (!o->open)
		want |= FURING_CAP_NO_OPEN_SUPPORT;
	if (!o->opendir)
		want |= FURING_CAP_NO_OPENDIR_SUPPORT;
	return want;
}

/* Asks the filesystem, then answers. On failure the INIT request has been
 * answered with an error (or not at all when the kernel is gone). */
static int negotiate(struct fu_session *s, const char *no_ring_reason, char *err, size_t errlen)
{
	size_t buflen = s->payload_size + 8192;
	unsigned char *buf = malloc(buflen);
	struct fu_msg msg;
	struct fuse_init_out out;
	size_t out_len = 0;
	int ret;

	if (!buf) {
		fmt_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	const bool ring_wished = s->cfg.io_uring != FURING_IO_URING_OFF && !no_ring_reason;
	struct fu_init_wish wish;
	for (;;) {
		ret = read_init(s, buf, buflen, &msg, err, errlen);
		if (ret < 0)
			goto out;
		const uint64_t offered = fu_init_offered(&msg.arg.init);
		struct furing_conn *c = &s->conn;
		memset(c, 0, sizeof(*c));
		c->proto_major = msg.arg.init.major;
		c->proto_minor = msg.arg.init.minor;
		c->capable = offered & FS_CAPS;
		c->over_io_uring = ring_wished && (offered & FURING_CAP_OVER_IO_URING);
		c->nr_workers = s->nworkers;
		c->want = implied_caps(&s->ops) & c->capable;
		c->max_write = s->cfg.max_write;
		c->max_readahead = msg.arg.init.max_readahead;
		c->max_background = background_limit(s);
		c->time_gran = 1;
		c->max_stack_depth = 1;
		if (msg.arg.init.major == FUSE_KERNEL_VERSION && s->ops.init && !s->init_ran) {
			s->init_ran = true;
			ret = s->ops.init(s->fs, c);
			if (ret < 0) {
				write_reply(s->fd, msg.unique, -EPROTO, NULL, 0);
				fmt_err(err, errlen, "the filesystem's init refused the mount: %s", strerror(-ret));
				goto out;
			}
		}
		if (c->max_write > s->cfg.max_write || c->max_write < 4096)
			c->max_write = s->cfg.max_write; /* it may only shrink, never below a page */
		wish = (struct fu_init_wish){
			.want = (c->want & FS_CAPS & ~FURING_CAP_OVER_IO_URING),
			.over_io_uring = ring_wished,
			.max_write = c->max_write,
			.max_readahead = c->max_readahead,
			.max_background = c->max_background,
			.congestion_threshold = c->congestion_threshold,
			.time_gran = c->time_gran,
			.max_stack_depth = c->max_stack_depth,
			.page_size = (uint32_t)sysconf(_SC_PAGESIZE),
		};
		if (fu_init_negotiate(&msg.arg.init, &wish, &out, &out_len, &s->init) != FU_INIT_OK) {
			write_reply(s->fd, msg.unique, -EPROTO, NULL, 0);
			fmt_err(err, errlen, "unsupported FUSE protocol %u.%u from the kernel", msg.arg.init.major,
				msg.arg.init.minor);
			ret = -EPROTO;
			goto out;
		}
		if (!s->init.retry_major)
			break;
		write_reply(s->fd, msg.unique, 0, &out, out_len); /* the kernel asks again with major 7 */
	}

	s->over_ring = s->init.over_io_uring;
	if (s->cfg.io_uring == FURING_IO_URING_ON && !s->over_ring) {
		write_reply(s->fd, msg.unique, -EPROTO, NULL, 0);
		fmt_err(err, errlen,
			"io_uring = FURING_IO_URING_ON: the kernel did not offer FUSE-over-io_uring (protocol 7.%u)",
			s->init.minor);
		ret = -EOPNOTSUPP;
		goto out;
	}
	if (s->cfg.io_uring == FURING_IO_URING_AUTO && !s->over_ring && !no_ring_reason)
		fu_log(s, FURING_LOG_WARNING, "the kernel did not offer FUSE-over-io_uring; serving over /dev/fuse");
	if (!s->over_ring)
		s->nqueues = 0;

	s->limits.max_write = s->init.max_write;
	s->limits.setxattr_ext = (s->init.flags64 & FUSE_SETXATTR_EXT) != 0;
	s->conn.granted = s->init.flags64;
	s->conn.over_io_uring = s->over_ring;
	s->conn.max_write = s->init.max_write;
	s->conn.max_readahead = s->init.max_readahead;
	s->conn.max_background = out.max_background;
	s->conn.congestion_threshold = out.congestion_threshold;
	s->conn.time_gran = out.time_gran;
	s->conn.max_stack_depth = out.max_stack_depth;
	if ((s->conn.want & ~s->conn.capable & FS_CAPS) != 0)
		fu_log(s, FURING_LOG_WARNING, "init asked for capabilities the kernel does not offer: %#llx (dropped)",
		       (unsigned long long)(s->conn.want & ~s->conn.capable & FS_CAPS));

	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	if (!s->workers) {
		write_reply(s->fd, msg.unique, -ENOMEM, NULL, 0);
		fmt_err(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < s->nworkers; i++)
		s->workers[i].ctl_fd = -1;
	for (unsigned int i = 0; i < s->nworkers; i++) {
		ret = fu_worker_prepare(s, &s->workers[i], i, err, errlen);
		if (ret < 0) {
			write_reply(s->fd, msg.unique, -EIO, NULL, 0);
			goto out;
		}
	}
	ret = write_reply(s->fd, msg.unique, 0, &out, out_len);
	if (ret < 0)
		fmt_err(err, errlen, "answering FUSE_INIT failed: %s", strerror(-ret));
out:
	free(buf);
	return ret;
}

/* ---- the public session API ---- */

const char *furing_version(void)
{
	return FURING_LIB_VERSION;
}

struct furing_session *furing_session_new(const struct furing_ops *ops, size_t ops_size,
					  const struct furing_config *cfg, size_t cfg_size, void *fs, char *err,
					  size_t errlen)
{
	struct fu_session *s;

	if (!ops || !cfg) {
		fmt_err(err, errlen, "furing_session_new: ops and cfg are required");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		fmt_err(err, errlen, "out of memory");
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
	if (!s->cfg.fsname)
		s->cfg.fsname = "furing";
	if (!s->cfg.subtype)
		s->cfg.subtype = "furing";
	if (!s->cfg.root_mode)
		s->cfg.root_mode = S_IFDIR | 0755;
	if (!s->cfg.threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		s->cfg.threads = n > 0 ? (unsigned int)n : 1;
	}
	if (!s->cfg.queue_depth)
		s->cfg.queue_depth = DEFAULT_QUEUE_DEPTH;
	if (!s->cfg.start_timeout_ms)
		s->cfg.start_timeout_ms = DEFAULT_START_TIMEOUT_MS;
	if (s->cfg.start_timeout_ms > INT_MAX)
		s->cfg.start_timeout_ms = INT_MAX;
	/* An explicit payload size sets max_write: the kernel requires every
	 * entry to hold max(8192, max_write, max_pages * page). */
	if (!s->cfg.max_write)
		s->cfg.max_write = s->cfg.payload_size ? s->cfg.payload_size : DEFAULT_MAX_WRITE;
	s->cfg.max_write = clamp_max_write(s->cfg.max_write);
	long page = sysconf(_SC_PAGESIZE);
	uint32_t need = s->cfg.max_write < 8192 ? 8192 : s->cfg.max_write;
	need = (uint32_t)((need + (uint32_t)page - 1) & ~((uint32_t)page - 1));
	if (s->cfg.payload_size && s->cfg.payload_size < need) {
		fmt_err(err, errlen, "payload_size %u is below what the kernel requires (%u = max_write rounded to a page)",
			s->cfg.payload_size, need);
		furing_session_destroy((struct furing_session *)s);
		return NULL;
	}
	if (!S_ISDIR(s->cfg.root_mode) && !S_ISREG(s->cfg.root_mode)) {
		fmt_err(err, errlen, "root_mode %#o is neither a directory (S_IFDIR) nor a file (S_IFREG)",
			(unsigned)s->cfg.root_mode);
		furing_session_destroy((struct furing_session *)s);
		return NULL;
	}
	/* Created now, so that a stop (or a signal) that comes before or
	 * during start is not lost. */
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		fmt_err(err, errlen, "eventfd: %s", strerror(errno));
		furing_session_destroy((struct furing_session *)s);
		return NULL;
	}
	s->payload_size = s->cfg.payload_size ? s->cfg.payload_size : need;
	s->depth = s->cfg.queue_depth;
	s->nworkers = s->cfg.threads;
	s->limits.max_write = s->cfg.max_write;
	struct fu_mount_opts mo = {.fsname = s->cfg.fsname, .subtype = s->cfg.subtype, .max_read = s->payload_size,
				   .options = s->cfg.mount_options};
	if (fu_mount_check(&mo, err, errlen) < 0) { /* a name that cannot be mounted fails here, not at start */
		furing_session_destroy((struct furing_session *)s);
		return NULL;
	}
	return (struct furing_session *)s;
}

static void report_layout(struct fu_session *s)
{
	if (s->over_ring) {
		unsigned int parts = s->nworkers > s->nqueues ? s->nworkers : s->nqueues;
		double mib = (double)parts * s->depth * s->payload_size / (1024.0 * 1024.0);
		fu_log(s, FURING_LOG_INFO,
		       "io_uring: %u queues (possible CPUs) on %u worker thread%s, %u x depth %u x %u KiB "
		       "payload = %.0f MiB of buffers (touched on use)",
		       s->nqueues, s->nworkers, s->nworkers == 1 ? "" : "s", parts, s->depth, s->payload_size / 1024, mib);
	} else {
		fu_log(s, FURING_LOG_INFO, "/dev/fuse: %u worker thread%s x %u requests in flight, max_write %u KiB",
		       s->nworkers, s->nworkers == 1 ? "" : "s", s->blocking ? 1 : s->depth, s->init.max_write / 1024);
	}
}

/* Workers run with every signal blocked: signals are the application's to
 * take, on its own threads. The calling thread's mask is not touched. */
static int start_workers(struct fu_session *s, char *err, size_t errlen)
{
	pthread_attr_t attr;
	sigset_t all;
	int ret = pthread_attr_init(&attr);

	if (ret) {
		fmt_err(err, errlen, "pthread_attr_init: %s", strerror(ret));
		return -ret;
	}
	sigfillset(&all);
	pthread_attr_setsigmask_np(&attr, &all);
	for (unsigned int i = 0; i < s->nworkers; i++) {
		struct fu_worker *w = &s->workers[i];
		ret = pthread_create(&w->thread, &attr, fu_worker_main, w);
		if (ret) {
			fmt_err(err, errlen, "cannot start worker thread %u of %u: %s", i + 1, s->nworkers, strerror(ret));
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
	char why_loop[256], why_ring[256];
	int ret;

	if (s->mountpoint || s->fd >= 0 || s->workers) {
		fmt_err(err, errlen, "furing_session_start: the session was already started");
		return -EBUSY;
	}
	const char *no_loop = io_uring_refused(why_loop, sizeof(why_loop));
	const char *no_ring = NULL;

	if (s->cfg.io_uring != FURING_IO_URING_OFF)
		no_ring = no_loop ? no_loop : fuse_ring_refused(why_ring, sizeof(why_ring));
	if (no_ring && s->cfg.io_uring == FURING_IO_URING_ON) {
		fmt_err(err, errlen, "io_uring = FURING_IO_URING_ON: %s", no_ring);
		return -EOPNOTSUPP;
	}
	s->blocking = no_loop != NULL;
	if (no_loop)
		fu_log(s, FURING_LOG_WARNING, "%s: serving /dev/fuse with blocking reads, one request per thread at a time",
		       no_loop);
	else if (no_ring)
		fu_log(s, FURING_LOG_WARNING, "%s; serving over /dev/fuse", no_ring);
	s->nqueues = no_ring || s->cfg.io_uring == FURING_IO_URING_OFF ? 0 : possible_cpus();

	s->mountpoint = realpath(mountpoint, NULL);
	if (!s->mountpoint) {
		ret = -errno;
		fmt_err(err, errlen, "mountpoint %s: %s", mountpoint, strerror(-ret));
		return ret;
	}
	if (fu_is_mountpoint(s->mountpoint)) {
		fmt_err(err, errlen, "mountpoint %s is busy: something is already mounted there", s->mountpoint);
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

	ret = negotiate(s, no_ring, err, errlen);
	if (ret < 0) {
		fu_unmount(s->mountpoint, s->via_fusermount);
		s->mounted = false;
		return ret;
	}
	report_layout(s);
	/* Workers serve from their first moment, and a request's operation may
	 * already notify: the session counts as running from here. */
	atomic_store(&s->running, true);
	ret = start_workers(s, err, errlen);
	/* A worker that failed counts as armed: its reason is the error. */
	if (ret == 0 && !wait_armed(s) && !atomic_load(&s->fatal)) {
		fmt_err(err, errlen, "the workers did not arm their queues within %u ms (start_timeout_ms)",
			s->cfg.start_timeout_ms);
		ret = -ETIMEDOUT;
	}
	if (ret == 0 && atomic_load(&s->fatal)) {
		fmt_err(err, errlen, "%s", s->fatal_msg);
		ret = -EIO;
	}
	if (ret < 0) {
		/* Undo: unmount, abort, force out, join: bounded by the grace
		 * periods of furing_session_wait. */
		furing_session_stop(pub);
		furing_session_wait(pub);
		return ret;
	}
	return 0;
}

void furing_session_stop(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;

	atomic_store(&s->stop_requested, true);
	fu_session_wake(s);
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
			break;
		case UNMOUNTED:
			if (now - stop_at >= STOP_GRACE_MS) {
				int ret = fu_abort_connection(s->conn_dev);
				if (ret < 0)
					fu_log(s, FURING_LOG_WARNING, "cannot abort the connection (%s); closing it",
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

void furing_session_stats_line(struct furing_session *pub, char *buf, size_t len)
{
	fu_stats_line((struct fu_session *)pub, buf, len);
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
