/* Directories: OPENDIR and RELEASEDIR (openat2 and close on the ring),
 * READDIR and READDIRPLUS, FSYNCDIR.
 *
 * Listings come from getdents64 (inline: io_uring has no operation for it;
 * a directory's pages are usually cached) into a buffer per open directory;
 * the cookies are SOURCE's own d_off values, so a READDIR at any offset the
 * kernel was given resumes with lseek. READDIRPLUS also looks every entry
 * up: for a batch of entries that fit the answer, an openat2(O_PATH) and a
 * statx each go on the ring at once (as worker events), and the answer is
 * built when the last one completes. */
#include <dirent.h>
#include <errno.h>
#include <liburing.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pt.h"
#include "ws.h"

#define DIRBUF_SIZE (32 * 1024)
#define PLUS_MAX 64 /* lookups in flight for one READDIRPLUS */

struct pt_dir {
	struct pt_handle h;     /* first: h.fd is the open directory, h.buf its buffer */
	struct pt_inode *inode; /* a reference is held */
	char *buf;              /* getdents64 output */
	size_t len, pos;        /* filled, consumed */
	uint64_t next;          /* the cookie after the last entry answered */
	bool eof;
};

static struct pt_dir *dir_of(const struct furing_file *fi)
{
	return (struct pt_dir *)(uintptr_t)fi->fh;
}

/* ---- OPENDIR, RELEASEDIR, FSYNCDIR ---- */

struct opendir_state {
	struct pt_inode *in;
};

static void dir_opened(struct furing_req *req, int res)
{
	struct opendir_state *st = PT_SCRATCH(req, struct opendir_state);
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_dir *d = NULL;

	if (res >= 0) {
		d = calloc(1, sizeof(*d));
		if (d)
			d->buf = malloc(DIRBUF_SIZE);
		if (!d || !d->buf) {
			free(d);
			d = NULL;
			close(res);
			res = -ENOMEM;
		}
	}
	if (res < 0) {
		pt_put(fs, st->in);
		furing_reply_err(req, -res);
		return;
	}
	d->h.fd = res;
	d->h.buf = d->buf;
	d->inode = st->in;
	pt_handle_add(fs, &d->h);
	struct furing_open o = {.fh = (uint64_t)(uintptr_t)d};
	if (fs->o.cache == PT_CACHE_ALWAYS)
		o.flags = FURING_OPEN_CACHE_DIR | FURING_OPEN_KEEP_CACHE;
	furing_reply_open(req, &o);
}

void pt_opendir(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct opendir_state *st = PT_SCRATCH(req, struct opendir_state);
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_ws *ws = pt_ws(req);

	st->in = pt_get(fs, ino);
	if (!st->in || !ws) {
		pt_put(fs, st->in);
		furing_reply_err(req, st->in ? ENOMEM : ESTALE);
		return;
	}
	memset(&ws->how, 0, sizeof(ws->how));
	ws->how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	be_openat2(req, NULL, st->in->fd, ".", &ws->how, dir_opened);
}

struct releasedir_state {
	struct pt_dir *d;
};

static void dir_closed(struct furing_req *req, int res)
{
	struct releasedir_state *st = PT_SCRATCH(req, struct releasedir_state);

	pt_handle_del(pt_fs_of(req), &st->d->h);
	pt_put(pt_fs_of(req), st->d->inode);
	free(st->d->buf);
	free(st->d);
	furing_reply_err(req, 0);
}

void pt_releasedir(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct releasedir_state *st = PT_SCRATCH(req, struct releasedir_state);

	st->d = dir_of(fi);
	be_close(req, st->d->h.fd, dir_closed);
}

void pt_fsyncdir(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	be_fsync(req, dir_of(fi)->h.fd, datasync, pt_reply_res);
}

/* ---- the listing ---- */

/* Positions the handle at cookie @off (0: the start). */
static int dir_seek(struct pt_dir *d, uint64_t off)
{
	if (off == d->next)
		return 0;
	if (lseek(d->h.fd, (off_t)off, SEEK_SET) < 0)
		return -errno;
	d->len = d->pos = 0;
	d->eof = false;
	d->next = off;
	return 0;
}

/* Makes entries available: 1 when there are some, 0 at the end, -errno. */
static int dir_fill(struct pt_dir *d)
{
	if (d->pos < d->len)
		return 1;
	if (d->eof)
		return 0;
	long n = syscall(SYS_getdents64, d->h.fd, d->buf, DIRBUF_SIZE);
	if (n < 0)
		return -errno;
	d->len = (size_t)n;
	d->pos = 0;
	d->eof = n == 0;
	return n > 0;
}

static const struct dirent64 *dir_entry(const struct pt_dir *d, size_t pos)
{
	return (const struct dirent64 *)(const void *)(d->buf + pos);
}

static void type_stat(struct stat *st, uint64_t ino, unsigned char type)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)ino;
	st->st_mode = DTTOIF(type);
}

void pt_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi)
{
	struct pt_dir *d = dir_of(fi);
	struct furing_dirbuf db;
	int ret = dir_seek(d, off);

	furing_dirbuf_init(&db, req, size, false);
	while (ret == 0 && (ret = dir_fill(d)) > 0) {
		const struct dirent64 *de = dir_entry(d, d->pos);
		struct stat st;
		type_stat(&st, de->d_ino, de->d_type);
		if (!furing_dirbuf_add(&db, de->d_name, &st, (uint64_t)de->d_off))
			break;
		d->pos += de->d_reclen;
		d->next = (uint64_t)de->d_off;
		ret = 0;
	}
	if (ret < 0 && db.used == 0) {
		furing_reply_err(req, -ret);
		return;
	}
	furing_reply_dirbuf(req, &db);
}

/* ---- READDIRPLUS ---- */

struct plus_batch;

struct plus_item {
	struct furing_event ev;
	struct plus_batch *b;
	const char *name; /* in the handle's buffer, which is not refilled during the batch */
	uint64_t d_off;
	uint64_t d_ino;
	size_t pos_after; /* the handle's position once this entry is answered */
	unsigned char d_type;
	bool dot;         /* "." or "..": listed, never looked up */
	bool opened;
	int fd;
	int res;
	struct open_how how;
	struct statx stx;
};

struct plus_batch {
	struct furing_req *req;
	struct pt_dir *d;
	uint32_t size;
	unsigned int n, pending;
	struct plus_item items[];
};

static void plus_finish(struct plus_batch *b);

static void item_done(struct plus_item *it)
{
	if (--it->b->pending == 0)
		plus_finish(it->b);
}

static void item_statted(struct plus_item *it, int res)
{
	it->res = res;
	if (res < 0) {
		close(it->fd);
		it->fd = -1;
	}
	item_done(it);
}

static void item_event(struct furing_event *ev, int res);

static void item_opened(struct plus_item *it, int res)
{
	if (res < 0) {
		it->res = res;
		item_done(it);
		return;
	}
	it->fd = res;
	it->opened = true;
	/* statx of a held handle: inline where backend.c makes it inline. */
	const struct pt_fs *fs = pt_fs_of(it->b->req);
	struct io_uring_sqe *sqe = fs->inline_calls || fs->inline_names
					   ? NULL
					   : furing_worker_sqe(furing_req_worker(it->b->req), &it->ev);
	if (!sqe) {
		item_statted(it, statx(it->fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &it->stx) < 0
					 ? -errno
					 : 0);
		return;
	}
	io_uring_prep_statx(sqe, it->fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &it->stx);
}

static void item_event(struct furing_event *ev, int res)
{
	struct plus_item *it = (struct plus_item *)(void *)((char *)ev - offsetof(struct plus_item, ev));

	if (!it->opened)
		item_opened(it, res);
	else
		item_statted(it, res);
}

static void item_start(struct plus_item *it)
{
	struct io_uring_sqe *sqe =
		pt_fs_of(it->b->req)->inline_calls ? NULL : furing_worker_sqe(furing_req_worker(it->b->req), &it->ev);

	memset(&it->how, 0, sizeof(it->how));
	it->how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
	if (!sqe) {
		long fd = syscall(SYS_openat2, it->b->d->h.fd, it->name, &it->how, sizeof(it->how));
		item_opened(it, fd < 0 ? -errno : (int)fd);
		return;
	}
	io_uring_prep_openat2(sqe, it->b->d->h.fd, it->name, &it->how);
}

/* Every lookup has completed: the answer, in the listing's order. An entry
 * counts as a lookup only once it is in the answer. */
static void plus_finish(struct plus_batch *b)
{
	struct furing_req *req = b->req;
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_dir *d = b->d;
	struct furing_dirbuf db;
	bool full = false;

	furing_dirbuf_init(&db, req, b->size, true);
	for (unsigned int i = 0; i < b->n; i++) {
		struct plus_item *it = &b->items[i];
		bool ok = true;
		if (full) {
			if (it->fd >= 0)
				close(it->fd);
			continue;
		}
		if (it->dot || (it->res < 0 && it->res != -ENOENT)) {
			/* A dot entry, or one we could not look up: its name only. */
			struct stat st;
			type_stat(&st, it->d_ino, it->d_type);
			ok = furing_dirbuf_add(&db, it->name, &st, it->d_off);
		} else if (it->res >= 0) {
			struct pt_inode *in = pt_found(fs, it->fd, &it->stx, false);
			it->fd = -1;
			if (in) {
				struct furing_entry e;
				pt_entry_of(fs, in, &it->stx, &e);
				ok = furing_dirbuf_add_plus(&db, it->name, &e, it->d_off);
				if (!ok)
					pt_forget(fs, in->nodeid, 1);
			}
		} /* else: gone since getdents (ENOENT): left out */
		if (!ok) {
			full = true;
			continue;
		}
		d->pos = it->pos_after;
		d->next = it->d_off;
	}
	furing_reply_dirbuf(req, &db);
}

void pt_readdirplus(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi)
{
	struct pt_dir *d = dir_of(fi);
	size_t area = ((size_t)size + 63) & ~(size_t)63;
	/* The request's buffer: the answer, a shadow listing (to see what
	 * fits before looking anything up), then the batch. */
	char *ws = pt_workspace(req, 2 * area + sizeof(struct plus_batch) + sizeof(struct plus_item));
	int ret = dir_seek(d, off);

	if (!ws) {
		furing_reply_err(req, ENOMEM);
		return;
	}
	if (ret < 0) {
		furing_reply_err(req, -ret);
		return;
	}
	size_t room = furing_req_buf_size(req) - (size_t)(ws - (char *)furing_req_buf(req)) - 2 * area -
		      sizeof(struct plus_batch);
	unsigned int max = room / sizeof(struct plus_item) < PLUS_MAX ? (unsigned int)(room / sizeof(struct plus_item))
								       : PLUS_MAX;
	struct plus_batch *b = (struct plus_batch *)(void *)(ws + 2 * area);
	struct furing_dirbuf shadow;
	struct furing_entry probe;

	memset(b, 0, sizeof(*b));
	b->req = req;
	b->d = d;
	b->size = size;
	furing_dirbuf_init_buf(&shadow, ws + area, size, true);
	memset(&probe, 0, sizeof(probe));
	probe.ino = 1;
	size_t cur = d->pos;
	while (b->n < max) {
		if (cur >= d->len) {
			if (b->n > 0)
				break; /* refilling would move the names of the batch */
			ret = dir_fill(d);
			if (ret <= 0)
				break;
			cur = d->pos;
		}
		const struct dirent64 *de = dir_entry(d, cur);
		if (!furing_dirbuf_add_plus(&shadow, de->d_name, &probe, (uint64_t)de->d_off))
			break; /* the answer is full */
		struct plus_item *it = &b->items[b->n++];
		memset(it, 0, offsetof(struct plus_item, how));
		it->ev.fn = item_event;
		it->b = b;
		it->name = de->d_name;
		it->d_off = (uint64_t)de->d_off;
		it->d_ino = de->d_ino;
		it->d_type = de->d_type;
		it->pos_after = cur + de->d_reclen;
		it->fd = -1;
		it->dot = de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2]));
		cur += de->d_reclen;
	}
	if (ret < 0 && b->n == 0) {
		furing_reply_err(req, -ret);
		return;
	}
	/* One count more than the lookups, dropped after all are submitted:
	 * lookups that complete at once cannot finish the batch early. */
	b->pending = 1;
	for (unsigned int i = 0; i < b->n; i++)
		if (!b->items[i].dot)
			b->pending++;
	for (unsigned int i = 0; i < b->n; i++)
		if (!b->items[i].dot)
			item_start(&b->items[i]);
	if (--b->pending == 0)
		plus_finish(b);
}
