/* Extended attributes. GETXATTR and SETXATTR go on the ring
 * (IORING_OP_GETXATTR/SETXATTR, path-based: the node's /proc/self/fd magic
 * link leads to the node itself, a symlink included, and O_PATH handles
 * are refused by the fd-based forms); LISTXATTR and REMOVEXATTR are inline
 * (io_uring has no operation for them).
 *
 * With --no-xattr every one of them is answered ENOSYS, which the kernel
 * remembers for the connection: it then fails them with EOPNOTSUPP itself
 * and, above all, stops asking for security.capability before each write,
 * a round trip per write under kernel passthrough (the kernel's own writes
 * cannot skip it otherwise: it must know whether to drop capabilities).
 *
 * SOURCE's POSIX ACLs are stored and read back like any attribute; the
 * mount's permission checks use the mode bits (FUSE_POSIX_ACL is not
 * asked for: it would hand the umask to the daemon, which shares one
 * umask among all its callers). */
#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

#include "pt.h"

struct xattr_state {
	struct pt_inode *in; /* reference held until the answer */
	size_t size;
	char path[PT_FD_PATH_MAX];
};

static struct xattr_state *begin(struct furing_req *req, uint64_t ino)
{
	struct xattr_state *st = PT_SCRATCH(req, struct xattr_state);

	if (pt_fs_of(req)->o.no_xattr) {
		furing_reply_err(req, ENOSYS);
		return NULL;
	}
	memset(st, 0, sizeof(*st));
	st->in = pt_get(pt_fs_of(req), ino);
	if (!st->in) {
		furing_reply_err(req, ESTALE);
		return NULL;
	}
	pt_fd_path(st->path, st->in->fd);
	return st;
}

static void end(struct furing_req *req)
{
	struct xattr_state *st = PT_SCRATCH(req, struct xattr_state);
	pt_put(pt_fs_of(req), st->in);
}

static void got(struct furing_req *req, int res)
{
	struct xattr_state *st = PT_SCRATCH(req, struct xattr_state);

	end(req);
	if (res < 0)
		furing_reply_err(req, -res);
	else if (st->size == 0)
		furing_reply_xattr_size(req, (size_t)res);
	else
		furing_reply_buf(req, (size_t)res);
}

void pt_getxattr(struct furing_req *req, uint64_t ino, const char *name, size_t size)
{
	struct xattr_state *st = begin(req, ino);

	if (!st)
		return;
	if (size > furing_req_buf_size(req))
		size = furing_req_buf_size(req); /* the kernel never asks for more than XATTR_SIZE_MAX */
	st->size = size;
	be_getxattr(req, st->path, name, size ? furing_req_buf(req) : NULL, size, got);
}

static void set_done(struct furing_req *req, int res)
{
	end(req);
	pt_reply_res(req, res);
}

/* @xflags (FURING_SETXATTR_ACL_KILL_SGID) only matters with kernel ACL
 * handling, which is not asked for. */
void pt_setxattr(struct furing_req *req, uint64_t ino, const char *name, const void *value, size_t size, int flags,
		 uint32_t xflags)
{
	struct xattr_state *st = begin(req, ino);

	if (!st)
		return;
	be_setxattr(req, st->path, name, value, size, flags, set_done);
}

void pt_listxattr(struct furing_req *req, uint64_t ino, size_t size)
{
	struct xattr_state *st = begin(req, ino);

	if (!st)
		return;
	if (size > furing_req_buf_size(req))
		size = furing_req_buf_size(req);
	st->size = size;
	ssize_t n = listxattr(st->path, size ? furing_req_buf(req) : NULL, size);
	got(req, n < 0 ? -errno : (int)n);
}

void pt_removexattr(struct furing_req *req, uint64_t ino, const char *name)
{
	struct xattr_state *st = begin(req, ino);

	if (!st)
		return;
	int ret = removexattr(st->path, name);
	set_done(req, ret < 0 ? -errno : 0);
}
