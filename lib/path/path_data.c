/* The path API's operations on an open file's data beyond read and write:
 * fallocate, lseek (SEEK_DATA / SEEK_HOLE), copy_file_range, and fsyncdir.
 * Each finds its path(s) through the open file's node (NULL once removed),
 * as read and write do. A filesystem without one of them answers ENOSYS,
 * after which the kernel does without it for the rest of the mount: its
 * own SEEK_DATA (all data), a copy through the page cache, an fsyncdir
 * that succeeds; only fallocate then fails (EOPNOTSUPP) for the caller. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "path_priv.h"

/* The longest copy one answer reports (as the kernel's own limit on one
 * read or write): a caller asking for more gets a short count and goes on. */
#define COPY_MAX ((uint64_t)(INT_MAX & ~4095))

static const struct furing_path_file *open_fi(const struct preq *q)
{
	return &q->pf->fi;
}

void path_fallocate(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
		    const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_FALLOCATE);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->fallocate ? o->fallocate(req, q->path, mode, off, len, open_fi(q)) : -ENOSYS);
}

void path_lseek(struct furing_req *req, uint64_t ino, uint64_t off, int whence, const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_LSEEK);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	q->off = off; /* the operation moves it to the answer */
	preq_result(req, q, o->lseek ? o->lseek(req, q->path, &q->off, whence, open_fi(q)) : -ENOSYS);
}

void path_copy_file_range(struct furing_req *req, uint64_t ino_in, uint64_t off_in, const struct furing_file *fi_in,
			  uint64_t ino_out, uint64_t off_out, const struct furing_file *fi_out, uint64_t len,
			  uint64_t flags)
{
	struct preq *q = preq_new(req, P_COPY_FILE_RANGE);
	if (!q || !preq_file_path(req, q, fi_in))
		return;
	/* The destination's path and handle: q->path2, q->pf2. */
	struct ptable *t = &q->p->table;
	int enomem = 0;
	q->pf2 = (struct pfile *)(uintptr_t)fi_out->fh;
	table_lock(t);
	q->path2 = table_path(t, q->pf2->node, &enomem);
	table_unlock(t);
	if (enomem) {
		preq_reply_err(req, q, ENOMEM);
		return;
	}
	const struct furing_path_ops *o = &q->p->ops;
	if (!o->copy_file_range || flags > UINT_MAX) {
		preq_result(req, q, o->copy_file_range ? -EINVAL : -ENOSYS);
		return;
	}
	preq_result(req, q,
		    o->copy_file_range(req, q->path, open_fi(q), off_in, q->path2, &q->pf2->fi, off_out,
				       (size_t)(len < COPY_MAX ? len : COPY_MAX), (unsigned int)flags));
}

void path_fsyncdir(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_FSYNCDIR);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->fsyncdir ? o->fsyncdir(req, q->path, datasync, open_fi(q)) : -ENOSYS);
}

bool preq_finish_data(struct furing_req *req, struct preq *q, int res)
{
	switch (q->op) {
	case P_FALLOCATE:
	case P_FSYNCDIR:
		furing_reply_err(req, 0);
		break;
	case P_LSEEK:
		furing_reply_lseek(req, q->off);
		break;
	case P_COPY_FILE_RANGE:
		furing_reply_copy(req, (uint64_t)res);
		break;
	default:
		return false;
	}
	preq_free(q);
	return true;
}
