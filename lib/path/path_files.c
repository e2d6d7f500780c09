/* The path API's operations on open files and directories: open, create,
 * read, write, flush, fsync, release, and directory listings. The open
 * answer's handle is a struct pfile, which holds the node (counted in its
 * opens, so that a file unlinked while open keeps its node until release)
 * and the filesystem's own furing_path_file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "path_priv.h"

static struct pfile *pfile_of(const struct furing_file *fi)
{
	return (struct pfile *)(uintptr_t)fi->fh;
}

bool preq_file_path(struct furing_req *req, struct preq *q, const struct furing_file *fi)
{
	struct ptable *t = &q->p->table;
	int enomem = 0;

	q->pf = pfile_of(fi);
	q->node = q->pf->node;
	table_lock(t);
	q->path = table_path(t, q->node, &enomem);
	table_unlock(t);
	if (enomem) {
		preq_reply_err(req, q, ENOMEM);
		return false;
	}
	return true;
}

static void open_common(struct furing_req *req, uint64_t ino, const struct furing_file *fi, int op)
{
	struct preq *q = preq_new(req, op);
	if (!q || !preq_path(req, q, ino, false))
		return;
	q->fi.flags = fi->flags;
	const struct furing_path_ops *o = &q->p->ops;
	int (*fn)(struct furing_req *, const char *, struct furing_path_file *) = op == P_OPEN ? o->open : o->opendir;
	preq_result(req, q, fn ? fn(req, q->path, &q->fi) : 0);
}

void path_open(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	open_common(req, ino, fi, P_OPEN);
}

void path_opendir(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	open_common(req, ino, fi, P_OPENDIR);
}

void path_create(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_CREATE);
	if (!q)
		return;
	if (!q->p->ops.create) {
		preq_reply_err(req, q, ENOSYS); /* the kernel falls back to mknod + open */
		return;
	}
	struct ptable *t = &q->p->table;
	int enomem = 0;
	table_lock(t);
	q->node = table_get(t, parent);
	if (q->node)
		q->path = table_path_of(t, q->node, name, &enomem);
	table_unlock(t);
	if (!q->path) {
		preq_reply_err(req, q, enomem ? ENOMEM : ENOENT);
		return;
	}
	q->name = name;
	q->fi.flags = fi->flags;
	preq_result(req, q, q->p->ops.create(req, q->path, mode, &q->fi));
}

void path_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_READ);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	if (size > furing_req_buf_size(req))
		size = (uint32_t)furing_req_buf_size(req);
	preq_result(req, q, o->read ? o->read(req, q->path, furing_req_buf(req), size, off, &q->pf->fi) : -ENOSYS);
}

void path_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
		const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_WRITE);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->write ? o->write(req, q->path, data, size, off, &q->pf->fi) : -ENOSYS);
}

void path_flush(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_FLUSH);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->flush ? o->flush(req, q->path, &q->pf->fi) : -ENOSYS);
}

void path_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	struct preq *q = preq_new(req, P_FSYNC);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	preq_result(req, q, o->fsync ? o->fsync(req, q->path, datasync, &q->pf->fi) : -ENOSYS);
}

static void release_common(struct furing_req *req, const struct furing_file *fi, int op)
{
	struct preq *q = preq_new(req, op);
	if (!q || !preq_file_path(req, q, fi))
		return;
	const struct furing_path_ops *o = &q->p->ops;
	int (*fn)(struct furing_req *, const char *, const struct furing_path_file *) =
		op == P_RELEASE ? o->release : o->releasedir;
	preq_result(req, q, fn ? fn(req, q->path, &q->pf->fi) : 0);
}

void path_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	release_common(req, fi, P_RELEASE);
}

void path_releasedir(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	release_common(req, fi, P_RELEASEDIR);
}

/* ---- listings ---- */

static void ents_clear(struct pfile *pf)
{
	for (size_t i = 0; i < pf->nents; i++)
		free(pf->ents[i].name);
	free(pf->ents);
	pf->ents = NULL;
	pf->nents = pf->cap = 0;
	pf->listed = false;
}

/* A name below the listed directory with its attributes: a readdirplus
 * entry, which the kernel takes as a lookup. The child's node is counted
 * before the entry is added (a forget may follow the answer at once) and
 * uncounted when it did not fit. "." and "..", a listing of a removed
 * directory and a table out of memory give the name alone (node id 0: the
 * kernel looks it up when it needs more). False: the listing is full. */
static bool add_plus(struct preq *q, const char *name, const struct stat *st, uint64_t next_off)
{
	struct ptable *t = &q->p->table;
	bool dots = name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
	struct pnode *n = !dots && q->path ? table_child_lookup(t, q->node, name) : NULL;

	if (!n)
		return furing_dirbuf_add(&q->d, name, st, next_off);
	struct furing_entry e = {.ino = n->id,
				 .attr = *st,
				 .attr_timeout = q->p->attr_timeout,
				 .entry_timeout = q->p->entry_timeout};
	if (furing_dirbuf_add_plus(&q->d, name, &e, next_off))
		return true;
	table_child_unlookup(t, n);
	return false;
}

/* One entry into the answer: with its attributes when the kernel asked for
 * them (READDIRPLUS) and the filesystem gave them (its readdirplus). */
static bool add_entry(struct preq *q, const char *name, const struct stat *st, bool attrs, uint64_t next_off)
{
	if (q->d.plus && attrs)
		return add_plus(q, name, st, next_off);
	return furing_dirbuf_add(&q->d, name, st, next_off);
}

static int fill(void *dh, const char *name, const struct stat *st, uint64_t next_off)
{
	struct preq *q = dh;
	struct stat s = {0};

	bool attrs = q->attrs && st;
	if (st)
		s = *st;
	/* Unknown: the kernel looks the name up for the real one. Attributes
	 * go as given, as a lookup's would (the entry's node id fills in). */
	if (!s.st_ino && !attrs)
		s.st_ino = UINT32_MAX;
	if (next_off) {
		q->direct = true;
		return add_entry(q, name, &s, attrs, next_off) ? 0 : 1;
	}
	struct pfile *pf = q->pf;
	if (pf->nents == pf->cap) {
		size_t cap = pf->cap ? pf->cap * 2 : 16;
		struct pdirent *e = realloc(pf->ents, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		pf->ents = e;
		pf->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	if (!attrs) /* the type and inode number are all a plain listing keeps */
		s = (struct stat){.st_ino = s.st_ino, .st_mode = s.st_mode & S_IFMT};
	pf->ents[pf->nents++] = (struct pdirent){.st = s, .attrs = attrs, .name = copy};
	return 0;
}

/* Entries from index @off of the buffered listing, as many as fit. */
static void answer_listing(struct furing_req *req, struct preq *q)
{
	struct pfile *pf = q->pf;
	for (uint64_t i = q->off; i < pf->nents; i++) {
		if (!add_entry(q, pf->ents[i].name, &pf->ents[i].st, pf->ents[i].attrs, i + 1))
			break;
	}
	furing_reply_dirbuf(req, &q->d);
}

/* READDIR and READDIRPLUS. The filesystem's readdirplus serves both when it
 * has one and the kernel asks for attributes, or when it has no readdir:
 * its listing (buffered, with the attributes) then answers later offsets
 * of either kind. */
static void listing(struct furing_req *req, uint64_t off, uint32_t size, const struct furing_file *fi, bool plus)
{
	struct preq *q = preq_new(req, P_READDIR);
	if (!q || !preq_file_path(req, q, fi))
		return;
	furing_dirbuf_init(&q->d, req, size, plus);
	q->off = off;
	struct pfile *pf = q->pf;
	/* A buffered listing serves every later offset; offset 0 (a rewind) lists afresh. */
	if (off && pf->listed) {
		answer_listing(req, q);
		preq_free(q);
		return;
	}
	ents_clear(pf);
	const struct furing_path_ops *o = &q->p->ops;
	q->attrs = o->readdirplus && (plus || !o->readdir);
	int (*fn)(struct furing_req *, const char *, uint64_t, furing_path_fill_fn, void *,
		  const struct furing_path_file *) = q->attrs ? o->readdirplus : o->readdir;
	preq_result(req, q, fn ? fn(req, q->path, off, fill, q, &pf->fi) : -ENOSYS);
}

void path_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi)
{
	listing(req, off, size, fi, false);
}

void path_readdirplus(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi)
{
	listing(req, off, size, fi, true);
}

static void forget_open(struct preq *q)
{
	struct ptable *t = &q->p->table;
	table_lock(t);
	q->node->opens--;
	if (q->node->file == q->pf)
		q->node->file = NULL;
	table_maybe_free(t, q->node);
	table_unlock(t);
	ents_clear(q->pf);
	free(q->pf);
}

/* An open, opendir or create the filesystem accepted: the node (a new
 * child for create) and its open file recorded, the kernel answered. */
static void answer_open(struct furing_req *req, struct preq *q)
{
	struct ptable *t = &q->p->table;
	struct pfile *pf = calloc(1, sizeof(*pf));
	struct furing_entry e = {.attr = q->st,
				 .attr_timeout = q->p->attr_timeout,
				 .entry_timeout = q->p->entry_timeout};
	struct pnode *n = NULL;
	if (pf) {
		table_lock(t);
		n = q->op == P_CREATE ? table_child_make(t, q->node, q->name) : q->node;
		if (n) {
			n->opens++;
			if (q->op == P_CREATE) {
				n->nlookup++;
				e.ino = n->id;
			}
		}
		table_unlock(t);
	}
	if (!n) {
		/* The filesystem's file stays open: it gets its release. */
		const struct furing_path_ops *o = &q->p->ops;
		int (*rel)(struct furing_req *, const char *, const struct furing_path_file *) =
			q->op == P_OPENDIR ? o->releasedir : o->release;
		if (rel)
			rel(req, q->path, &q->fi);
		free(pf);
		furing_reply_err(req, ENOMEM);
		return;
	}
	pf->node = n;
	pf->fi = q->fi;
	table_lock(t);
	n->file = pf;
	table_unlock(t);
	struct furing_open op = {.fh = (uint64_t)(uintptr_t)pf, .flags = q->fi.open_flags};
	if (q->op == P_CREATE)
		furing_reply_create(req, &e, &op);
	else
		furing_reply_open(req, &op);
}

void preq_finish_file(struct furing_req *req, struct preq *q, int res)
{
	if (q->op == P_RELEASE || q->op == P_RELEASEDIR) {
		forget_open(q);
		preq_reply_err(req, q, 0);
		return;
	}
	if (res < 0) {
		preq_reply_err(req, q, -res);
		return;
	}
	if (preq_finish_data(req, q, res))
		return;
	switch (q->op) {
	case P_CREATE:
		if (q->stage == 0) {
			/* The create's file is open now: getattr may use it. */
			q->stage = 1;
			const struct furing_path_ops *o = &q->p->ops;
			if (!o->getattr) {
				preq_finish_file(req, q, -ENOSYS);
				return;
			}
			preq_result(req, q, o->getattr(req, q->path, &q->st, &q->fi));
			return;
		}
		/* fall through */
	case P_OPEN:
	case P_OPENDIR:
		answer_open(req, q);
		break;
	case P_READ:
		furing_reply_buf(req, (size_t)res);
		break;
	case P_WRITE:
		furing_reply_write(req, (uint32_t)res);
		break;
	case P_READDIR:
		if (q->direct) {
			furing_reply_dirbuf(req, &q->d);
		} else {
			q->pf->listed = true;
			answer_listing(req, q);
		}
		break;
	default: /* flush, fsync */
		furing_reply_err(req, 0);
		break;
	}
	preq_free(q);
}
