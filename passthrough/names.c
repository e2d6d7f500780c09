/* Names in directories: LOOKUP and FORGET, the creating operations that
 * answer with an entry (MKNOD, MKDIR, SYMLINK, LINK), and UNLINK, RMDIR and
 * RENAME. Each is one call on the worker's ring (mknodat excepted: no
 * io_uring operation) followed, for the creating ones, by a lookup of the
 * new name. Creating calls run as the caller (ident.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "pt.h"
#include "ws.h"

struct name_state {
	struct pt_inode *parent; /* references held until the answer */
	struct pt_inode *other;  /* LINK: the node linked; RENAME: the new parent */
	const char *name;
};

static const struct furing_ctx *who(struct furing_req *req)
{
	return pt_fs_of(req)->ident ? furing_req_ctx(req) : NULL;
}

static void release_state(struct furing_req *req)
{
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	struct pt_fs *fs = pt_fs_of(req);

	pt_put(fs, st->parent);
	pt_put(fs, st->other);
	st->parent = st->other = NULL;
}

/* Takes @parent (and @other) for a request on @name; answers and returns
 * false when one is unknown or the name is not a plain component. */
static bool begin(struct furing_req *req, uint64_t parent, uint64_t other, const char *name)
{
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	struct pt_fs *fs = pt_fs_of(req);

	memset(st, 0, sizeof(*st));
	st->name = name;
	if (!pt_name_ok(name)) {
		furing_reply_err(req, EINVAL);
		return false;
	}
	st->parent = pt_get(fs, parent);
	if (other)
		st->other = pt_get(fs, other);
	if (!st->parent || (other && !st->other)) {
		release_state(req);
		furing_reply_err(req, ESTALE); /* the kernel named a node it had forgotten */
		return false;
	}
	return true;
}

/* ---- LOOKUP, and the entry answer of every creating operation ---- */

static void entry_done(struct furing_req *req, int res, struct pt_inode *in, const struct statx *stx)
{
	struct pt_fs *fs = pt_fs_of(req);

	release_state(req);
	if (res < 0) {
		furing_reply_err(req, -res);
		return;
	}
	struct furing_entry e;
	pt_entry_of(fs, in, stx, &e);
	pt_put(fs, in); /* the lookup count keeps it; the reference was ours */
	furing_reply_entry(req, &e);
}

static void lookup_done(struct furing_req *req, int res, struct pt_inode *in, const struct statx *stx)
{
	struct pt_fs *fs = pt_fs_of(req);

	if (res == -ENOENT && fs->negative_cache) {
		/* A negative entry: the kernel remembers the name is missing. */
		struct furing_entry e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->timeout;
		release_state(req);
		furing_reply_entry(req, &e);
		return;
	}
	entry_done(req, res, in, stx);
}

void pt_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	if (!begin(req, parent, 0, name))
		return;
	pt_lookup_name(req, PT_SCRATCH(req, struct name_state)->parent, name, lookup_done);
}

void pt_forget_one(void *fs, uint64_t ino, uint64_t nlookup)
{
	pt_forget(fs, ino, nlookup);
}

void pt_forget_multi(void *fs, size_t count, const struct furing_forget *forgets)
{
	for (size_t i = 0; i < count; i++)
		pt_forget(fs, forgets[i].ino, forgets[i].nlookup);
}

/* ---- MKNOD, MKDIR, SYMLINK: the call, then a lookup of the name ---- */

static void created(struct furing_req *req, int res)
{
	struct name_state *st = PT_SCRATCH(req, struct name_state);

	if (res < 0) {
		release_state(req);
		furing_reply_err(req, -res);
		return;
	}
	pt_lookup_name(req, st->parent, st->name, entry_done);
}

void pt_mknod(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (!begin(req, parent, 0, name))
		return;
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	be_mknodat(req, who(req), st->parent->fd, name, mode, rdev, created);
}

void pt_mkdir(struct furing_req *req, uint64_t parent, const char *name, mode_t mode)
{
	if (!begin(req, parent, 0, name))
		return;
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	be_mkdirat(req, who(req), st->parent->fd, name, mode & 07777, created);
}

void pt_symlink(struct furing_req *req, const char *target, uint64_t parent, const char *name)
{
	if (!begin(req, parent, 0, name))
		return;
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	be_symlinkat(req, who(req), target, st->parent->fd, name, created);
}

/* ---- LINK: a new name for a node we hold ---- */

static void link_statted(struct furing_req *req, int res)
{
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_ws *ws = pt_ws(req);

	if (res < 0) {
		release_state(req);
		furing_reply_err(req, -res);
		return;
	}
	struct furing_entry e;
	pt_lookup_again(fs, st->other);
	pt_entry_of(fs, st->other, &ws->stx, &e);
	release_state(req);
	furing_reply_entry(req, &e);
}

static void linked(struct furing_req *req, int res)
{
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	struct pt_ws *ws = pt_ws(req);

	if (res < 0) {
		release_state(req);
		furing_reply_err(req, -res);
		return;
	}
	be_statx(req, st->other->fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &ws->stx,
		 link_statted);
}

void pt_link(struct furing_req *req, uint64_t ino, uint64_t newparent, const char *newname)
{
	if (!begin(req, newparent, ino, newname))
		return;
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	struct pt_ws *ws = pt_ws(req);
	if (!ws) {
		release_state(req);
		furing_reply_err(req, ENOMEM);
		return;
	}
	be_linkat(req, pt_fd_path(ws->path, st->other->fd), st->parent->fd, newname, linked);
}

/* ---- UNLINK, RMDIR, RENAME ---- */

static void name_done(struct furing_req *req, int res)
{
	release_state(req);
	pt_reply_res(req, res);
}

void pt_unlink(struct furing_req *req, uint64_t parent, const char *name)
{
	if (!begin(req, parent, 0, name))
		return;
	be_unlinkat(req, PT_SCRATCH(req, struct name_state)->parent->fd, name, 0, name_done);
}

void pt_rmdir(struct furing_req *req, uint64_t parent, const char *name)
{
	if (!begin(req, parent, 0, name))
		return;
	be_unlinkat(req, PT_SCRATCH(req, struct name_state)->parent->fd, name, AT_REMOVEDIR, name_done);
}

void pt_rename(struct furing_req *req, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
	       unsigned int flags)
{
	if (!pt_name_ok(newname)) {
		furing_reply_err(req, EINVAL);
		return;
	}
	if (!begin(req, parent, newparent, name))
		return;
	struct name_state *st = PT_SCRATCH(req, struct name_state);
	/* RENAME_WHITEOUT leaves a new (whiteout) inode behind: the caller's. */
	be_renameat2(req, (flags & RENAME_WHITEOUT) ? who(req) : NULL, st->parent->fd, name, st->other->fd, newname,
		     flags, name_done);
}
