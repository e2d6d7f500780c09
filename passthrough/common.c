/* What the operations share: the per-request workspace, SOURCE's
 * attributes in the kernel's terms, and looking a name up (LOOKUP itself,
 * and every creating operation after its call). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pt.h"
#include "ws.h"

void *pt_workspace(struct furing_req *req, size_t size)
{
	uintptr_t p = (uintptr_t)furing_req_buf(req);
	uintptr_t a = (p + 63) & ~(uintptr_t)63;
	size_t have = furing_req_buf_size(req);

	if (have < (a - p) + size)
		return NULL;
	return (void *)a;
}

struct pt_ws *pt_ws(struct furing_req *req)
{
	return pt_workspace(req, sizeof(struct pt_ws));
}

void pt_handle_add(struct pt_fs *fs, struct pt_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->next = fs->handles.next;
	h->prev = &fs->handles;
	h->next->prev = h;
	fs->handles.next = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

void pt_handle_del(struct pt_fs *fs, struct pt_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
}

/* After the session: nothing runs any more. Node references go with the
 * table, backing ids with the connection. */
void pt_handles_free_all(struct pt_fs *fs)
{
	while (fs->handles.next != &fs->handles) {
		struct pt_handle *h = fs->handles.next;
		pt_handle_del(fs, h);
		close(h->fd);
		free(h->buf);
		free(h);
	}
}

void pt_reply_res(struct furing_req *req, int res)
{
	furing_reply_err(req, res < 0 ? -res : 0);
}

int pt_kill_suidgid(int fd)
{
	struct stat st;
	char path[PT_FD_PATH_MAX];

	if (fstat(fd, &st) < 0)
		return -errno;
	mode_t mode = st.st_mode & 07777;
	if (mode & S_ISUID)
		mode &= ~(mode_t)S_ISUID;
	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		mode &= ~(mode_t)S_ISGID;
	if (mode == (st.st_mode & 07777))
		return 0;
	/* By path: @fd may be an O_PATH handle, which fchmod refuses. */
	return chmod(pt_fd_path(path, fd), mode) < 0 ? -errno : 0;
}

void pt_stat_from_statx(const struct pt_fs *fs, const struct pt_inode *in, const struct statx *stx, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
	st->st_ino = in ? (ino_t)pt_shown_ino(fs, in) : (ino_t)stx->stx_ino;
	st->st_mode = stx->stx_mode;
	st->st_nlink = stx->stx_nlink;
	st->st_uid = stx->stx_uid;
	st->st_gid = stx->stx_gid;
	st->st_rdev = makedev(stx->stx_rdev_major, stx->stx_rdev_minor);
	st->st_size = (off_t)stx->stx_size;
	st->st_blksize = (blksize_t)stx->stx_blksize;
	st->st_blocks = (blkcnt_t)stx->stx_blocks;
	st->st_atim = (struct timespec){stx->stx_atime.tv_sec, stx->stx_atime.tv_nsec};
	st->st_mtim = (struct timespec){stx->stx_mtime.tv_sec, stx->stx_mtime.tv_nsec};
	st->st_ctim = (struct timespec){stx->stx_ctime.tv_sec, stx->stx_ctime.tv_nsec};
}

void pt_entry_of(const struct pt_fs *fs, const struct pt_inode *in, const struct statx *stx, struct furing_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->nodeid;
	e->generation = in->generation;
	pt_stat_from_statx(fs, in, stx, &e->attr);
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
}

/* ---- looking a name up: openat2(O_PATH) on the parent, statx on what it
 * opened (so the attributes are of the very inode the handle holds), then
 * the table. The workspace holds the state; the caller's stays in the
 * request's scratch. ---- */

static void lookup_statted(struct furing_req *req, int res)
{
	struct pt_ws *ws = pt_ws(req);
	struct pt_fs *fs = pt_fs_of(req);

	if (res < 0) {
		close(ws->lk_fd);
		ws->lk_then(req, res, NULL, NULL);
		return;
	}
	struct pt_inode *in = pt_found(fs, ws->lk_fd, &ws->stx, true);
	if (!in) {
		ws->lk_then(req, -ENOMEM, NULL, NULL);
		return;
	}
	ws->lk_then(req, 0, in, &ws->stx);
}

static void lookup_opened(struct furing_req *req, int res)
{
	struct pt_ws *ws = pt_ws(req);

	if (res < 0) {
		ws->lk_then(req, res, NULL, NULL);
		return;
	}
	ws->lk_fd = res;
	be_statx(req, res, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &ws->stx, lookup_statted);
}

void pt_lookup_at(struct furing_req *req, int dirfd, const char *path, bool follow, pt_lookup_then then)
{
	struct pt_ws *ws = pt_ws(req);

	if (!ws) {
		then(req, -ENOMEM, NULL, NULL);
		return;
	}
	ws->lk_then = then;
	ws->lk_fd = -1;
	memset(&ws->how, 0, sizeof(ws->how));
	/* O_NOFOLLOW: a symlink is a node of its own. A /proc/self/fd path
	 * (follow) must be followed: it is a magic link to the node. */
	ws->how.flags = O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
	be_openat2(req, NULL, dirfd, path, &ws->how, lookup_opened);
}

void pt_lookup_name(struct furing_req *req, struct pt_inode *parent, const char *name, pt_lookup_then then)
{
	if (!pt_name_ok(name)) {
		then(req, -EINVAL, NULL, NULL);
		return;
	}
	pt_lookup_at(req, parent->fd, name, false, then);
}
