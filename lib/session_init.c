/* A session's FUSE_INIT exchange (doc/design.md "FUSE_INIT belongs to the
 * filesystem"): read INIT from /dev/fuse, fill struct furing_conn with what
 * the kernel offers and what to ask, let the filesystem's init() change it,
 * negotiate the answer (lib/proto/init.c) and, once the transport is planned
 * and the workers are prepared, write it.
 *
 * Owns the FURING_CAP_* bits and which of them a filesystem may ask for.
 * Building the connection and the wish are pure steps; the I/O is reading
 * INIT and writing answers. The answer is left pending (struct
 * fu_init_pending) so that session.c can prepare the workers between the
 * agreement and the answer (doc/protocol.md 1.2). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session_priv.h"

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

/* ---- the wire: reading INIT, writing answers ---- */

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
		fu_fmt_err(err, errlen, "the kernel sent no FUSE_INIT within %d ms (start_timeout_ms)", timeout);
		return -ETIMEDOUT;
	}
	ssize_t n;
	do
		n = read(s->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		fu_fmt_err(err, errlen, "reading FUSE_INIT: %s", strerror(e));
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
		fu_fmt_err(err, errlen, "expected FUSE_INIT, got a malformed or other request (opcode %u)",
			   msg->opcode);
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

void fu_init_refuse(struct fu_session *s, const struct fu_init_pending *p, int error)
{
	write_reply(s->fd, p->unique, error, NULL, 0);
}

int fu_init_answer(struct fu_session *s, const struct fu_init_pending *p, char *err, size_t errlen)
{
	int ret = write_reply(s->fd, p->unique, 0, &p->out, p->out_len);

	if (ret < 0)
		fu_fmt_err(err, errlen, "answering FUSE_INIT failed: %s", strerror(-ret));
	return ret;
}

/* ---- pure steps: the connection and the wish ---- */

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

/* The connection the filesystem's init() sees: the kernel's offer and the
 * defaults of what to ask. */
static void conn_from_offer(const struct fu_session *s, const struct fuse_init_in *in, bool ring_wished,
			    struct furing_conn *c)
{
	const uint64_t offered = fu_init_offered(in);

	memset(c, 0, sizeof(*c));
	c->proto_major = in->major;
	c->proto_minor = in->minor;
	c->capable = offered & FS_CAPS;
	c->over_io_uring = ring_wished && (offered & FURING_CAP_OVER_IO_URING);
	c->nr_workers = s->nworkers;
	c->want = implied_caps(&s->ops) & c->capable;
	c->max_write = s->cfg.max_write;
	c->max_readahead = in->max_readahead;
	c->max_background = fu_transport_background_limit(s);
	c->time_gran = 1;
	c->max_stack_depth = 1;
}

/* What the engine asks the kernel for, from the connection init() left. */
static struct fu_init_wish wish_of(const struct furing_conn *c, bool ring_wished, uint32_t page_size)
{
	return (struct fu_init_wish){
		.want = (c->want & FS_CAPS & ~FURING_CAP_OVER_IO_URING),
		.over_io_uring = ring_wished,
		.max_write = c->max_write,
		.max_readahead = c->max_readahead,
		.max_background = c->max_background,
		.congestion_threshold = c->congestion_threshold,
		.time_gran = c->time_gran,
		.max_stack_depth = c->max_stack_depth,
		.page_size = page_size,
	};
}

/* ---- the exchange ---- */

/* One INIT request: the filesystem's init() (once), then the negotiation
 * into s->init and @p. */
static int init_round(struct fu_session *s, const struct fu_msg *msg, bool ring_wished, struct fu_init_pending *p,
		      char *err, size_t errlen)
{
	const struct fuse_init_in *in = &msg->arg.init;
	struct furing_conn *c = &s->conn;

	p->unique = msg->unique;
	conn_from_offer(s, in, ring_wished, c);
	if (in->major == FUSE_KERNEL_VERSION && !s->init_ran) {
		/* From here on destroy runs: after init, or with no init at all. */
		s->init_ran = true;
		int ret = s->ops.init ? s->ops.init(s->fs, c) : 0;
		if (ret < 0) {
			fu_init_refuse(s, p, -EPROTO);
			fu_fmt_err(err, errlen, "the filesystem's init refused the mount: %s", strerror(-ret));
			return ret;
		}
	}
	if (c->max_write > s->cfg.max_write || c->max_write < 4096)
		c->max_write = s->cfg.max_write; /* it may only shrink, never below a page */
	struct fu_init_wish wish = wish_of(c, ring_wished, (uint32_t)sysconf(_SC_PAGESIZE));
	if (fu_init_negotiate(in, &wish, &p->out, &p->out_len, &s->init) != FU_INIT_OK) {
		fu_init_refuse(s, p, -EPROTO);
		fu_fmt_err(err, errlen, "unsupported FUSE protocol %u.%u from the kernel", in->major, in->minor);
		return -EPROTO;
	}
	return 0;
}

int fu_init_exchange(struct fu_session *s, const char *no_ring_reason, struct fu_init_pending *p, char *err,
		     size_t errlen)
{
	size_t buflen = s->payload_size + 8192;
	unsigned char *buf = malloc(buflen);
	struct fu_msg msg;
	int ret;

	if (!buf) {
		fu_fmt_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	const bool ring_wished = s->cfg.io_uring != FURING_IO_URING_OFF && !no_ring_reason;
	for (;;) {
		ret = read_init(s, buf, buflen, &msg, err, errlen);
		if (ret < 0)
			break;
		ret = init_round(s, &msg, ring_wished, p, err, errlen);
		if (ret < 0 || !s->init.retry_major)
			break;
		write_reply(s->fd, p->unique, 0, &p->out, p->out_len); /* the kernel asks again with major 7 */
	}
	free(buf);
	return ret;
}

void fu_init_apply(struct fu_session *s, const struct fu_init_pending *p)
{
	s->limits.max_write = s->init.max_write;
	s->limits.setxattr_ext = (s->init.flags64 & FUSE_SETXATTR_EXT) != 0;
	s->conn.granted = s->init.flags64;
	s->conn.over_io_uring = s->over_ring;
	s->conn.max_write = s->init.max_write;
	s->conn.max_readahead = s->init.max_readahead;
	s->conn.max_background = p->out.max_background;
	s->conn.congestion_threshold = p->out.congestion_threshold;
	s->conn.time_gran = p->out.time_gran;
	s->conn.max_stack_depth = p->out.max_stack_depth;
	if ((s->conn.want & ~s->conn.capable & FS_CAPS) != 0)
		fu_log(s, FURING_LOG_WARNING, "init asked for capabilities the kernel does not offer: %#llx (dropped)",
		       (unsigned long long)(s->conn.want & ~s->conn.capable & FS_CAPS));
}
