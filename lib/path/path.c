/* The path API over the lowlevel engine: the handle, the per-request state
 * machine and the operations on names (lookup, forget, getattr, setattr,
 * mknod, mkdir, unlink, rmdir, rename, statfs; path_files.c, path_data.c
 * and path_more.c have the rest). Each handler turns node
 * ids into paths under the table's lock, calls the filesystem's operation
 * without the lock (it may be slow, or answer later), and does the table's
 * part of the answer (count a lookup, drop or move a name) under the lock
 * again once the result is known. */
#include <errno.h>
#include <stdio.h> /* RENAME_NOREPLACE, RENAME_EXCHANGE */
#include <stdlib.h>
#include <string.h>

#include "path_priv.h"

struct furing_path *furing_path_new(const struct furing_path_ops *ops, size_t ops_size, void *fs)
{
	if (!ops || ops_size > sizeof(struct furing_path_ops)) {
		errno = EINVAL;
		return NULL;
	}
	struct furing_path *p = calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	memcpy(&p->ops, ops, ops_size); /* an older caller's table: the rest stays NULL */
	p->fs = fs;
	p->entry_timeout = p->attr_timeout = 1.0;
	if (table_init(&p->table) < 0) {
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void furing_path_destroy(struct furing_path *p)
{
	if (!p)
		return;
	table_free(&p->table);
	free(p);
}

int furing_path_set_timeouts(struct furing_path *p, double entry_s, double attr_s, double negative_s)
{
	/* !(x >= 0) also refuses NaN */
	if (!p || !(entry_s >= 0) || !(attr_s >= 0) || !(negative_s >= 0)) {
		errno = EINVAL;
		return -1;
	}
	p->entry_timeout = entry_s;
	p->attr_timeout = attr_s;
	p->negative_timeout = negative_s;
	return 0;
}

void *furing_path_fs(const struct furing_req *req)
{
	const struct furing_path *p = furing_req_fs(req);
	return p->fs;
}

const struct furing_ops *furing_path_lowlevel_ops(void)
{
	return &path_lowlevel;
}

struct preq *preq_new(struct furing_req *req, int op)
{
	struct preq *q = calloc(1, sizeof(*q));
	if (!q) {
		furing_reply_err(req, ENOMEM);
		return NULL;
	}
	q->p = path_of(req);
	q->op = op;
	furing_req_set_data(req, q);
	return q;
}

void preq_free(struct preq *q)
{
	free(q->path);
	free(q->path2);
	free(q);
}

void preq_reply_err(struct furing_req *req, struct preq *q, int err)
{
	furing_reply_err(req, err);
	preq_free(q);
}

bool preq_path(struct furing_req *req, struct preq *q, uint64_t ino, bool removed_ok)
{
	struct ptable *t = &q->p->table;
	int enomem = 0;

	table_lock(t);
	struct pnode *n = table_get(t, ino);
	if (n)
		q->path = table_path(t, n, &enomem);
	table_unlock(t);
	q->node = n;
	if (!n || enomem || (!q->path && !removed_ok)) {
		preq_reply_err(req, q, enomem ? ENOMEM : ENOENT);
		return false;
	}
	return true;
}

bool preq_child_path(struct furing_req *req, struct preq *q, uint64_t dir, const char *name, char **out,
		     struct pnode **dirp)
{
	struct ptable *t = &q->p->table;
	int enomem = 0;

	table_lock(t);
	struct pnode *d = table_get(t, dir);
	if (d)
		*out = table_path_of(t, d, name, &enomem);
	table_unlock(t);
	*dirp = d;
	if (!d || !*out) {
		preq_reply_err(req, q, enomem ? ENOMEM : ENOENT);
		return false;
	}
	return true;
}

void furing_path_done(struct furing_req *req, int result)
{
	preq_result(req, furing_req_data(req), result);
}

/* A removed node (fstat after unlink, without a handle): one of its open
 * files stands for it; none, and it is gone. False after answering. */
static bool open_file_of(struct furing_req *req, struct preq *q)
{
	struct ptable *t = &q->p->table;
	if (q->pf)
		return true;
	table_lock(t);
	q->pf = q->node->file;
	table_unlock(t);
	if (!q->pf) {
		preq_reply_err(req, q, ENOENT);
		return false;
	}
	return true;
}

void preq_run_getattr(struct furing_req *req, struct preq *q, const char *path)
{
	const struct furing_path_ops *o = &q->p->ops;
	q->stage = 1;
	if (!o->getattr) {
		preq_result(req, q, -ENOSYS);
		return;
	}
	preq_result(req, q, o->getattr(req, path, &q->st, q->pf ? &q->pf->fi : NULL));
}

void preq_result(struct furing_req *req, struct preq *q, int res)
{
	if (res == FURING_PATH_ASYNC)
		return;
	if (q->op >= P_OPEN)
		preq_finish_file(req, q, res);
	else
		preq_finish_node(req, q, res);
}

/* The new name's node, counted as one lookup, and the entry answer. */
static void answer_entry(struct furing_req *req, struct preq *q)
{
	struct ptable *t = &q->p->table;
	struct furing_entry e = {.attr = q->st,
				 .attr_timeout = q->p->attr_timeout,
				 .entry_timeout = q->p->entry_timeout};

	struct pnode *n = table_child_lookup(t, q->node, q->name);
	if (!n) {
		furing_reply_err(req, ENOMEM);
		return;
	}
	e.ino = n->id;
	furing_reply_entry(req, &e);
}

void preq_finish_node(struct furing_req *req, struct preq *q, int res)
{
	struct ptable *t = &q->p->table;

	if (res == -ENOENT && q->op == P_LOOKUP && q->p->negative_timeout > 0) {
		/* A negative entry: the kernel remembers the name is missing. */
		struct furing_entry e = {.ino = 0, .entry_timeout = q->p->negative_timeout};
		furing_reply_entry(req, &e);
		preq_free(q);
		return;
	}
	if (res < 0) {
		preq_reply_err(req, q, -res);
		return;
	}
	if (preq_finish_more(req, q, res))
		return;
	switch (q->op) {
	case P_MKNOD:
	case P_MKDIR:
	case P_SYMLINK:
	case P_LINK:
		if (q->stage == 0) {
			/* link: the new name's (path2) */
			preq_run_getattr(req, q, q->op == P_LINK ? q->path2 : q->path);
			return; /* q is the getattr's now */
		}
		/* fall through */
	case P_LOOKUP:
		answer_entry(req, q);
		break;
	case P_SETATTR:
		if (q->stage == 0) {
			preq_run_getattr(req, q, q->path);
			return;
		}
		/* fall through */
	case P_GETATTR:
		furing_reply_attr(req, &q->st, q->p->attr_timeout);
		break;
	case P_UNLINK:
	case P_RMDIR: {
		table_lock(t);
		struct pnode *n = table_child(t, q->node, q->name);
		if (n)
			table_detach(t, n);
		table_unlock(t);
		furing_reply_err(req, 0);
		break;
	}
	case P_RENAME: {
		int err = 0;
		unsigned int flags = (unsigned int)q->off;
		table_lock(t);
		struct pnode *from = table_child(t, q->node, q->name);
		struct pnode *to = table_child(t, q->newdir, q->newname);
		if (flags & RENAME_EXCHANGE) {
			/* Swap the names; either may be unknown to the table. */
			if (from)
				err = table_move(t, from, q->newdir, "\x01swap");
			if (!err && to)
				err = table_move(t, to, q->node, q->name);
			if (!err && from)
				err = table_move(t, from, q->newdir, q->newname);
		} else {
			if (to && to != from)
				table_detach(t, to);
			if (from)
				err = table_move(t, from, q->newdir, q->newname);
		}
		table_unlock(t);
		furing_reply_err(req, -err); /* the rename happened; ENOMEM only if the table lost track */
		break;
	}
	case P_STATFS:
		furing_reply_statfs(req, &q->sv);
		break;
	}
	preq_free(q);
}

/* ---- the lowlevel handlers ---- */

static void p_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	struct preq *q = preq_new(req, P_LOOKUP);
	if (!q || !preq_child_path(req, q, parent, name, &q->path, &q->node))
		return;
	q->name = name;
	q->stage = 1;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->getattr ? o->getattr(req, q->path, &q->st, NULL) : -ENOSYS);
}

static void p_forget(void *fs, uint64_t ino, uint64_t nlookup)
{
	struct furing_path *p = fs;
	table_lock(&p->table);
	struct pnode *n = table_get(&p->table, ino);
	if (n && n != &p->table.root) {
		n->nlookup = nlookup < n->nlookup ? n->nlookup - nlookup : 0;
		table_maybe_free(&p->table, n);
	}
	table_unlock(&p->table);
}

/* The request of an operation on node @ino, with its path, or with the open
 * file of @fi when the node has no name left (unlinked while open). NULL
 * when that failed; then the request has been answered. */
static struct preq *preq_of_node(struct furing_req *req, int kind, uint64_t ino,
				 const struct furing_file *fi)
{
	struct preq *q = preq_new(req, kind);
	if (!q)
		return NULL;
	if (fi && fi->fh)
		q->pf = (struct pfile *)(uintptr_t)fi->fh;
	if (!preq_path(req, q, ino, true))
		return NULL;
	if (!q->path && !open_file_of(req, q))
		return NULL;
	return q;
}

static void p_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct preq *q = preq_of_node(req, P_GETATTR, ino, fi);
	if (!q)
		return;
	if (!q->p->ops.getattr && ino == FURING_ROOT_ID) {
		q->st.st_mode = S_IFDIR | 0755;
		q->st.st_nlink = 2;
		preq_finish_node(req, q, 0);
		return;
	}
	preq_run_getattr(req, q, q->path);
}

static void p_setattr(struct furing_req *req, uint64_t ino, const struct furing_setattr *attr,
		      const struct furing_file *fi)
{
	struct preq *q = preq_of_node(req, P_SETATTR, ino, fi);
	if (!q)
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->setattr ? o->setattr(req, q->path, attr, q->pf ? &q->pf->fi : NULL) : -ENOSYS);
}

static void p_mknod(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct preq *q = preq_new(req, P_MKNOD);
	if (!q || !preq_child_path(req, q, parent, name, &q->path, &q->node))
		return;
	q->name = name;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->mknod ? o->mknod(req, q->path, mode, rdev) : -ENOSYS);
}

static void p_mkdir(struct furing_req *req, uint64_t parent, const char *name, mode_t mode)
{
	struct preq *q = preq_new(req, P_MKDIR);
	if (!q || !preq_child_path(req, q, parent, name, &q->path, &q->node))
		return;
	q->name = name;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->mkdir ? o->mkdir(req, q->path, mode) : -ENOSYS);
}

static void remove_name(struct furing_req *req, uint64_t parent, const char *name, int op)
{
	struct preq *q = preq_new(req, op);
	if (!q || !preq_child_path(req, q, parent, name, &q->path, &q->node))
		return;
	q->name = name;
	const struct furing_path_ops *o = &q->p->ops;
	int (*fn)(struct furing_req *, const char *) = op == P_UNLINK ? o->unlink : o->rmdir;
	preq_result(req, q, fn ? fn(req, q->path) : -ENOSYS);
}

static void p_unlink(struct furing_req *req, uint64_t parent, const char *name)
{
	remove_name(req, parent, name, P_UNLINK);
}

static void p_rmdir(struct furing_req *req, uint64_t parent, const char *name)
{
	remove_name(req, parent, name, P_RMDIR);
}

static void p_rename(struct furing_req *req, uint64_t parent, const char *name, uint64_t newparent,
		     const char *newname, unsigned int flags)
{
	struct preq *q = preq_new(req, P_RENAME);
	if (!q || !preq_child_path(req, q, parent, name, &q->path, &q->node))
		return;
	struct pnode *nd;
	q->name = name;
	q->off = flags;
	/* child_path frees q on failure; the first path must not leak then. */
	char *first = q->path;
	q->path = NULL;
	if (!preq_child_path(req, q, newparent, newname, &q->path2, &nd)) {
		free(first);
		return;
	}
	q->path = first;
	q->newdir = nd;
	q->newname = newname;
	if (flags & ~(unsigned int)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		preq_finish_node(req, q, -EINVAL);
		return;
	}
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->rename ? o->rename(req, q->path, q->path2, flags) : -ENOSYS);
}

static void p_statfs(struct furing_req *req, uint64_t ino)
{
	struct preq *q = preq_new(req, P_STATFS);
	if (!q || !preq_path(req, q, ino, false))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	if (!o->statfs) {
		q->sv.f_namemax = 255;
		q->sv.f_bsize = 4096;
		preq_finish_node(req, q, 0);
		return;
	}
	preq_result(req, q, o->statfs(req, q->path, &q->sv));
}

static int p_init(void *fs, struct furing_conn *conn)
{
	struct furing_path *p = fs;
	/* An open(O_TRUNC) arrives as open + setattr(size 0): one place truncates. */
	conn->want &= ~FURING_CAP_ATOMIC_O_TRUNC;
	/* The lowlevel table always has readdirplus; the kernel is asked for
	 * it only when the filesystem can give attributes with its names. */
	if (!p->ops.readdirplus)
		conn->want &= ~(FURING_CAP_READDIRPLUS | FURING_CAP_READDIRPLUS_AUTO);
	return p->ops.init ? p->ops.init(p->fs, conn) : 0;
}

static void p_destroy(void *fs)
{
	struct furing_path *p = fs;
	if (p->ops.destroy)
		p->ops.destroy(p->fs);
}

const struct furing_ops path_lowlevel = {
	.init = p_init,
	.destroy = p_destroy,
	.lookup = p_lookup,
	.forget = p_forget,
	.getattr = p_getattr,
	.setattr = p_setattr,
	.mknod = p_mknod,
	.mkdir = p_mkdir,
	.unlink = p_unlink,
	.rmdir = p_rmdir,
	.rename = p_rename,
	.statfs = p_statfs,
	.open = path_open,
	.create = path_create,
	.read = path_read,
	.write = path_write,
	.flush = path_flush,
	.fsync = path_fsync,
	.release = path_release,
	.opendir = path_opendir,
	.readdir = path_readdir,
	.readdirplus = path_readdirplus,
	.releasedir = path_releasedir,
	.symlink = path_symlink,
	.link = path_link,
	.readlink = path_readlink,
	.access = path_access,
	.setxattr = path_setxattr,
	.getxattr = path_getxattr,
	.listxattr = path_listxattr,
	.removexattr = path_removexattr,
	.fallocate = path_fallocate,
	.lseek = path_lseek,
	.copy_file_range = path_copy_file_range,
	.fsyncdir = path_fsyncdir,
};
