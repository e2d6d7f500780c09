/* Attributes: GETATTR and STATX (statx on the ring, on the node's O_PATH
 * handle), SETATTR (chmod, chown and utimensat inline: io_uring has no
 * operation for them; an open file's truncate on the ring), STATFS and
 * READLINK (inline, see backend.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "pt.h"
#include "ws.h"

struct attr_state {
	struct pt_inode *in; /* reference held until the answer */
	const struct furing_setattr *a;
	struct pt_file *f;
	bool statx;          /* answer STATX rather than GETATTR */
};

static bool take_node(struct furing_req *req, uint64_t ino, struct attr_state *st)
{
	memset(st, 0, sizeof(*st));
	st->in = pt_get(pt_fs_of(req), ino);
	if (!st->in) {
		furing_reply_err(req, ESTALE);
		return false;
	}
	if (!pt_ws(req)) {
		pt_put(pt_fs_of(req), st->in);
		furing_reply_err(req, ENOMEM);
		return false;
	}
	return true;
}

static void attr_statted(struct furing_req *req, int res)
{
	struct attr_state *st = PT_SCRATCH(req, struct attr_state);
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_ws *ws = pt_ws(req);

	if (res < 0) {
		pt_put(fs, st->in);
		furing_reply_err(req, -res);
		return;
	}
	if (st->statx) {
		ws->stx.stx_ino = pt_shown_ino(fs, st->in);
		pt_put(fs, st->in);
		furing_reply_statx(req, &ws->stx, fs->timeout);
		return;
	}
	struct stat s;
	pt_stat_from_statx(fs, st->in, &ws->stx, &s);
	pt_put(fs, st->in);
	furing_reply_attr(req, &s, fs->timeout);
}

static void stat_node(struct furing_req *req)
{
	struct attr_state *st = PT_SCRATCH(req, struct attr_state);

	be_statx(req, st->in->fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &pt_ws(req)->stx,
		 attr_statted);
}

/* The node's handle, not the open file's: the kernel only names an open
 * file for regular files, and the inode is the same. */
void pt_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct attr_state *st = PT_SCRATCH(req, struct attr_state);

	if (!take_node(req, ino, st))
		return;
	stat_node(req);
}

void pt_statx(struct furing_req *req, uint64_t ino, int flags, uint32_t mask, const struct furing_file *fi)
{
	struct attr_state *st = PT_SCRATCH(req, struct attr_state);

	if (!take_node(req, ino, st))
		return;
	st->statx = true;
	be_statx(req, st->in->fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | (flags & AT_STATX_SYNC_TYPE), mask,
		 &pt_ws(req)->stx, attr_statted);
}

/* ---- SETATTR: mode, owner, size, times, in that order; then the new
 * attributes. The kernel has checked the caller may (default_permissions). */

static void setattr_finish(struct furing_req *req, int res)
{
	struct attr_state *st = PT_SCRATCH(req, struct attr_state);
	const struct furing_setattr *a = st->a;

	/* A truncate by a caller without CAP_FSETID (HANDLE_KILLPRIV_V2; a
	 * chown clears the bits itself). */
	if (res >= 0 && (a->valid & FURING_SET_KILL_SUIDGID) && (a->valid & FURING_SET_SIZE))
		res = pt_kill_suidgid(st->in->fd);
	struct timespec ts[2];
	if (res >= 0 && furing_setattr_times(a, ts) && utimensat(st->in->fd, "", ts, AT_EMPTY_PATH) < 0)
		res = -errno;
	if (res < 0) {
		pt_put(pt_fs_of(req), st->in);
		furing_reply_err(req, -res);
		return;
	}
	stat_node(req);
}

void pt_setattr(struct furing_req *req, uint64_t ino, const struct furing_setattr *a, const struct furing_file *fi)
{
	struct attr_state *st = PT_SCRATCH(req, struct attr_state);
	struct pt_ws *ws;
	int res = 0;

	if (!take_node(req, ino, st))
		return;
	ws = pt_ws(req);
	st->a = a;
	st->f = fi && st->in->type == S_IFREG ? (struct pt_file *)(uintptr_t)fi->fh : NULL;
	if (a->valid & FURING_SET_MODE) {
		/* chmod follows the /proc magic link to the node itself. */
		if (chmod(pt_fd_path(ws->path, st->in->fd), a->mode & 07777) < 0)
			res = -errno;
	}
	if (res == 0 && (a->valid & (FURING_SET_UID | FURING_SET_GID))) {
		uid_t uid = (a->valid & FURING_SET_UID) ? a->uid : (uid_t)-1;
		gid_t gid = (a->valid & FURING_SET_GID) ? a->gid : (gid_t)-1;
		if (fchownat(st->in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			res = -errno;
	}
	if (res == 0 && (a->valid & FURING_SET_SIZE)) {
		if (st->f) {
			be_ftruncate(req, st->f->h.fd, a->size, setattr_finish);
			return;
		}
		if (truncate(pt_fd_path(ws->path, st->in->fd), (off_t)a->size) < 0)
			res = -errno;
	}
	setattr_finish(req, res);
}

/* ---- STATFS, READLINK ---- */

void pt_statfs(struct furing_req *req, uint64_t ino)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_get(fs, ino);
	struct statvfs sv;

	if (!in)
		in = fs->root; /* statfs names the node the caller started from; any will do */
	int ret = fstatvfs(in->fd, &sv);
	int err = errno;
	pt_put(fs, in);
	if (ret < 0)
		furing_reply_err(req, err);
	else
		furing_reply_statfs(req, &sv);
}

void pt_readlink(struct furing_req *req, uint64_t ino)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_inode *in = pt_get(fs, ino);
	char *buf = pt_workspace(req, PATH_MAX);

	if (!in || !buf) {
		pt_put(fs, in);
		furing_reply_err(req, in ? ENOMEM : ESTALE);
		return;
	}
	ssize_t n = readlinkat(in->fd, "", buf, PATH_MAX);
	int err = errno;
	pt_put(fs, in);
	if (n < 0)
		furing_reply_err(req, err);
	else
		furing_reply_data(req, buf, (size_t)n);
}
