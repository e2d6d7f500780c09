/* The path API's links, access check and extended attributes: symlink,
 * link (answered like mknod: the operation, then getattr of the new name,
 * then the entry), readlink, access, and the four xattr operations. Data
 * answers (a link's target, an attribute's value, the list of names) are
 * written by the filesystem straight into the request's buffer, which
 * starts past the request's arguments, so the names handed over stay
 * valid while it fills it. */
#include <errno.h>
#include <string.h>

#include "path_priv.h"

void path_symlink(struct furing_req *req, const char *target, uint64_t parent, const char *name)
{
	struct preq *q = preq_new(req, P_SYMLINK);
	if (!q || !preq_child_path(req, q, parent, name, &q->path, &q->node))
		return;
	q->name = name;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->symlink ? o->symlink(req, target, q->path) : -ENOSYS);
}

void path_link(struct furing_req *req, uint64_t ino, uint64_t newparent, const char *newname)
{
	struct preq *q = preq_new(req, P_LINK);
	if (!q || !preq_path(req, q, ino, false))
		return;
	/* The entry answer is the new name's: node becomes its directory. */
	if (!preq_child_path(req, q, newparent, newname, &q->path2, &q->node))
		return;
	q->name = newname;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->link ? o->link(req, q->path, q->path2) : -ENOSYS);
}

/* The request's buffer, at most @want bytes of it (0: all); its size into *size. */
static char *reply_buf(struct furing_req *req, size_t want, size_t *size)
{
	size_t have = furing_req_buf_size(req);
	*size = want && want < have ? want : have;
	return furing_req_buf(req);
}

void path_readlink(struct furing_req *req, uint64_t ino)
{
	struct preq *q = preq_new(req, P_READLINK);
	if (!q || !preq_path(req, q, ino, false))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	size_t size;
	char *buf = reply_buf(req, 0, &size);
	q->off = size;
	buf[0] = '\0';
	preq_result(req, q, o->readlink ? o->readlink(req, q->path, buf, size) : -ENOSYS);
}

void path_access(struct furing_req *req, uint64_t ino, int mask)
{
	struct preq *q = preq_new(req, P_ACCESS);
	if (!q || !preq_path(req, q, ino, false))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->access ? o->access(req, q->path, mask) : 0);
}

void path_setxattr(struct furing_req *req, uint64_t ino, const char *name, const void *value, size_t size, int flags,
		   uint32_t xflags)
{
	struct preq *q = preq_new(req, P_SETXATTR);
	if (!q || !preq_path(req, q, ino, false))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->setxattr ? o->setxattr(req, q->path, name, value, size, flags) : -ENOSYS);
}

void path_getxattr(struct furing_req *req, uint64_t ino, const char *name, size_t size)
{
	struct preq *q = preq_new(req, P_GETXATTR);
	if (!q || !preq_path(req, q, ino, false))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	size_t have;
	char *buf = reply_buf(req, size, &have);
	q->off = size; /* 0: the answer is the length */
	preq_result(req, q, o->getxattr ? o->getxattr(req, q->path, name, size ? buf : NULL, size ? have : 0) : -ENOSYS);
}

void path_listxattr(struct furing_req *req, uint64_t ino, size_t size)
{
	struct preq *q = preq_new(req, P_LISTXATTR);
	if (!q || !preq_path(req, q, ino, false))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	size_t have;
	char *buf = reply_buf(req, size, &have);
	q->off = size;
	preq_result(req, q, o->listxattr ? o->listxattr(req, q->path, size ? buf : NULL, size ? have : 0) : -ENOSYS);
}

void path_removexattr(struct furing_req *req, uint64_t ino, const char *name)
{
	struct preq *q = preq_new(req, P_REMOVEXATTR);
	if (!q || !preq_path(req, q, ino, false))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->removexattr ? o->removexattr(req, q->path, name) : -ENOSYS);
}

bool preq_finish_more(struct furing_req *req, struct preq *q, int res)
{
	switch (q->op) {
	case P_READLINK: {
		/* res < 0 was answered by the caller */
		char *buf = furing_req_buf(req);
		furing_reply_buf(req, strnlen(buf, (size_t)q->off));
		break;
	}
	case P_ACCESS:
	case P_SETXATTR:
	case P_REMOVEXATTR:
		furing_reply_err(req, 0);
		break;
	case P_GETXATTR:
	case P_LISTXATTR:
		if (q->off == 0)
			furing_reply_xattr_size(req, (size_t)res);
		else if ((uint64_t)res > q->off)
			furing_reply_err(req, ERANGE); /* more than the kernel asked for */
		else
			furing_reply_buf(req, (size_t)res);
		break;
	default:
		return false;
	}
	preq_free(q);
	return true;
}
