/* Open files: OPEN, CREATE and TMPFILE (openat2 on the ring, the node
 * reopened through its /proc/self/fd path), RELEASE, FLUSH, FSYNC,
 * FALLOCATE (ring), LSEEK (inline) and FLOCK (inline, never waiting), and
 * how an open file is answered in each cache mode, kernel passthrough
 * included. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "pt.h"
#include "ws.h"

/* The open(2) flags SOURCE's open gets: access mode and the flags that
 * change how I/O behaves. Creation flags are the operation's own; O_NOFOLLOW
 * would refuse the /proc magic link we open through; the kernel's internal
 * bits (FMODE_EXEC for an exec) are not open flags at all. */
#define PASSED_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME | O_TRUNC)

static uint64_t backend_flags(const struct pt_fs *fs, int flags)
{
	flags &= PASSED_FLAGS;
	if (fs->writeback) {
		/* The writeback cache reads pages to fill partial writes, even
		 * of a write-only file, and places appended data itself. */
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return (uint64_t)(flags | O_CLOEXEC);
}

/* ---- kernel passthrough: one backing id per node ---- */

static int backing_get(struct furing_req *req, struct pt_inode *in)
{
	int id;

	pthread_mutex_lock(&in->backing_lock);
	if (in->backing_users == 0) {
		/* The node's O_PATH handle is enough: the kernel opens the
		 * backing file itself, with each FUSE file's own flags. */
		id = furing_backing_open(furing_req_session(req), in->fd);
		if (id < 0) {
			pthread_mutex_unlock(&in->backing_lock);
			return id;
		}
		in->backing_id = id;
	}
	in->backing_users++;
	id = in->backing_id;
	pthread_mutex_unlock(&in->backing_lock);
	return id;
}

static void backing_put(struct furing_session *s, struct pt_inode *in)
{
	pthread_mutex_lock(&in->backing_lock);
	if (--in->backing_users == 0) {
		furing_backing_close(s, in->backing_id);
		in->backing_id = -1;
	}
	pthread_mutex_unlock(&in->backing_lock);
}

/* How the kernel should treat the open file (FURING_OPEN_*). */
static uint32_t open_flags(const struct pt_fs *fs, const struct pt_inode *in, int flags)
{
	uint32_t o = 0;

	if (fs->o.cache == PT_CACHE_NONE || (flags & O_DIRECT))
		o |= FURING_OPEN_DIRECT_IO | FURING_OPEN_PARALLEL_WRITES;
	else if (fs->o.cache == PT_CACHE_ALWAYS)
		o |= FURING_OPEN_KEEP_CACHE;
	/* No FLUSH at close where it would do nothing: for a reader, or on a
	 * filesystem whose close has nothing to do (a writer's close on NFS
	 * reports delayed errors: those keep it). With the writeback cache the
	 * kernel flushes anyway, to write dirty pages back. */
	if ((flags & O_ACCMODE) == O_RDONLY || in->local)
		o |= FURING_OPEN_NOFLUSH;
	return o;
}

/* A new open file for @fd on @in (whose reference it takes over). */
static struct pt_file *file_new(struct furing_req *req, struct pt_inode *in, int fd, int flags, struct furing_open *o)
{
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->h.fd = fd;
	f->inode = in;
	pt_handle_add(fs, &f->h);
	f->inline_io = fs->inline_all_io || (fs->inline_mem_io && in->mem);
	memset(o, 0, sizeof(*o));
	o->fh = (uint64_t)(uintptr_t)f;
	o->flags = open_flags(fs, in, flags);
	if (fs->passthrough) {
		int id = backing_get(req, in);
		if (id > 0) {
			/* Reads, writes and mmap go to SOURCE's file in the
			 * kernel; no FUSE page cache (KEEP_CACHE is refused with
			 * passthrough). */
			o->flags = FURING_OPEN_PASSTHROUGH | (o->flags & FURING_OPEN_NOFLUSH);
			o->backing_id = id;
			f->passthrough = true;
		} else {
			/* Served by us instead; direct I/O, because the kernel
			 * refuses a cached open of a node that has passthrough
			 * opens. */
			o->flags = FURING_OPEN_DIRECT_IO | FURING_OPEN_PARALLEL_WRITES | (o->flags & FURING_OPEN_NOFLUSH);
			if (!atomic_exchange(&fs->warned_backing, true))
				furing_session_log(furing_req_session(req), FURING_LOG_WARNING,
						   "kernel passthrough: cannot register a backing file (%s); "
						   "such files are served by furing",
						   strerror(-id));
		}
	}
	/* Zero-copy where the library can grant it (Linux 7.3 zero-copy
	 * queues; dropped otherwise): not for files served inline, whose
	 * point is a copy without the ring, nor O_DIRECT ones, whose fd
	 * would refuse the caller's alignment of the lent pages. */
	if (!f->passthrough && !f->inline_io && !(flags & O_DIRECT))
		o->flags |= FURING_OPEN_ZERO_COPY;
	return f;
}

static void file_free(struct furing_req *req, struct pt_file *f)
{
	struct pt_fs *fs = pt_fs_of(req);

	pt_handle_del(fs, &f->h);
	if (f->passthrough)
		backing_put(furing_req_session(req), f->inode);
	pt_put(fs, f->inode);
	free(f);
}

/* ---- OPEN ---- */

struct open_state {
	struct pt_inode *in; /* OPEN: the node; CREATE/TMPFILE: the parent */
	const char *name;    /* CREATE: the new name */
	int fd;              /* CREATE/TMPFILE: the open file, until the lookup */
	int flags;           /* the caller's open flags */
	bool kill;           /* O_TRUNC by a caller without CAP_FSETID: clear setuid/setgid */
};

/* An O_TRUNC open truncates like a write: HANDLE_KILLPRIV_V2 makes the
 * setuid/setgid bits ours to clear. */
static int open_kill(const struct open_state *st, int fd)
{
	return st->kill && (st->flags & O_TRUNC) ? pt_kill_suidgid(fd) : 0;
}

static void opened(struct furing_req *req, int res)
{
	struct open_state *st = PT_SCRATCH(req, struct open_state);
	struct furing_open o;

	if (res >= 0) {
		int ret = open_kill(st, res);
		if (ret < 0) {
			close(res);
			res = ret;
		}
	}
	if (res < 0) {
		pt_put(pt_fs_of(req), st->in);
		furing_reply_err(req, -res);
		return;
	}
	if (!file_new(req, st->in, res, st->flags, &o)) {
		close(res);
		pt_put(pt_fs_of(req), st->in);
		furing_reply_err(req, ENOMEM);
		return;
	}
	furing_reply_open(req, &o);
}

void pt_open_file(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct open_state *st = PT_SCRATCH(req, struct open_state);
	struct pt_fs *fs = pt_fs_of(req);
	struct pt_ws *ws = pt_ws(req);

	memset(st, 0, sizeof(*st));
	st->flags = fi->flags;
	st->kill = fi->req_flags & FURING_FILE_KILL_SUIDGID;
	st->in = pt_get(fs, ino);
	if (!st->in || !ws) {
		pt_put(fs, st->in);
		furing_reply_err(req, st->in ? ENOMEM : ESTALE);
		return;
	}
	memset(&ws->how, 0, sizeof(ws->how));
	ws->how.flags = backend_flags(fs, fi->flags);
	/* A node is reached through its handle: reopen it by its magic link. */
	be_openat2(req, NULL, AT_FDCWD, pt_fd_path(ws->path, st->in->fd), &ws->how, opened);
}

/* ---- CREATE, TMPFILE: the create (as the caller), a lookup of what was
 * created, then the open file ---- */

static const struct furing_ctx *who(struct furing_req *req)
{
	return pt_fs_of(req)->ident ? furing_req_ctx(req) : NULL;
}

static void create_found(struct furing_req *req, int res, struct pt_inode *in, const struct statx *stx)
{
	struct open_state *st = PT_SCRATCH(req, struct open_state);
	struct pt_fs *fs = pt_fs_of(req);
	struct furing_entry e;
	struct furing_open o;

	pt_put(fs, st->in);
	if (res < 0) {
		close(st->fd);
		furing_reply_err(req, -res);
		return;
	}
	pt_entry_of(fs, in, stx, &e);
	if (!file_new(req, in, st->fd, st->flags, &o)) {
		close(st->fd);
		pt_forget(fs, in->nodeid, 1); /* the kernel will not learn of it */
		pt_put(fs, in);
		furing_reply_err(req, ENOMEM);
		return;
	}
	furing_reply_create(req, &e, &o);
}

static void create_opened(struct furing_req *req, int res)
{
	struct open_state *st = PT_SCRATCH(req, struct open_state);
	struct pt_ws *ws = pt_ws(req);

	if (res < 0) {
		pt_put(pt_fs_of(req), st->in);
		furing_reply_err(req, -res);
		return;
	}
	st->fd = res;
	res = open_kill(st, st->fd);
	if (res < 0) {
		close(st->fd);
		pt_put(pt_fs_of(req), st->in);
		furing_reply_err(req, -res);
		return;
	}
	if (st->name) {
		pt_lookup_name(req, st->in, st->name, create_found);
		return;
	}
	/* TMPFILE: the unnamed file has no name to look up; its handle is
	 * opened through the open file's magic link. */
	pt_lookup_at(req, AT_FDCWD, pt_fd_path(ws->path, st->fd), true, create_found);
}

static bool create_begin(struct furing_req *req, uint64_t parent, const char *name, const struct furing_file *fi)
{
	struct open_state *st = PT_SCRATCH(req, struct open_state);
	struct pt_fs *fs = pt_fs_of(req);

	memset(st, 0, sizeof(*st));
	st->fd = -1;
	st->flags = fi->flags;
	st->kill = fi->req_flags & FURING_FILE_KILL_SUIDGID;
	st->name = name;
	if (name && !pt_name_ok(name)) {
		furing_reply_err(req, EINVAL);
		return false;
	}
	st->in = pt_get(fs, parent);
	if (!st->in || !pt_ws(req)) {
		pt_put(fs, st->in);
		furing_reply_err(req, st->in ? ENOMEM : ESTALE);
		return false;
	}
	return true;
}

void pt_create(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, const struct furing_file *fi)
{
	struct open_state *st = PT_SCRATCH(req, struct open_state);
	struct pt_ws *ws;

	if (!create_begin(req, parent, name, fi))
		return;
	ws = pt_ws(req);
	memset(&ws->how, 0, sizeof(ws->how));
	ws->how.flags = backend_flags(pt_fs_of(req), fi->flags) | O_CREAT | (uint64_t)(fi->flags & O_EXCL);
	ws->how.mode = mode & 07777;
	be_openat2(req, who(req), st->in->fd, name, &ws->how, create_opened);
}

void pt_tmpfile(struct furing_req *req, uint64_t parent, mode_t mode, const struct furing_file *fi)
{
	struct open_state *st = PT_SCRATCH(req, struct open_state);
	struct pt_ws *ws;

	if (!create_begin(req, parent, NULL, fi))
		return;
	ws = pt_ws(req);
	memset(&ws->how, 0, sizeof(ws->how));
	ws->how.flags = backend_flags(pt_fs_of(req), fi->flags) | O_TMPFILE;
	ws->how.mode = mode & 07777;
	be_openat2(req, who(req), st->in->fd, ".", &ws->how, create_opened);
}

/* ---- RELEASE, FLUSH, FSYNC, FALLOCATE, LSEEK ---- */

static struct pt_file *file_of(const struct furing_file *fi)
{
	return (struct pt_file *)(uintptr_t)fi->fh;
}

struct release_state {
	struct pt_file *f;
};

static void released(struct furing_req *req, int res)
{
	struct release_state *st = PT_SCRATCH(req, struct release_state);

	/* A close error says nothing the caller could act on (its close(2)
	 * has returned long ago): the file is gone either way. */
	file_free(req, st->f);
	furing_reply_err(req, 0);
}

void pt_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct release_state *st = PT_SCRATCH(req, struct release_state);

	st->f = file_of(fi);
	/* Closing drops a flock(2) lock of the file too (FLOCK_UNLOCK). */
	be_close(req, st->f->h.fd, released);
}

/* close(dup(fd)): what SOURCE's filesystem does at a close (NFS writes
 * back and reports errors), without closing our file; nothing where close
 * does nothing (the writeback cache still sends FLUSH for those). */
void pt_flush(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct pt_file *f = file_of(fi);

	if (f->inode->local) {
		furing_reply_err(req, 0);
		return;
	}
	int fd = dup(f->h.fd);

	if (fd < 0) {
		furing_reply_err(req, errno);
		return;
	}
	be_close(req, fd, pt_reply_res);
}

void pt_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	be_fsync(req, file_of(fi)->h.fd, datasync, pt_reply_res);
}

void pt_fallocate(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
		  const struct furing_file *fi)
{
	be_fallocate(req, file_of(fi)->h.fd, mode, off, len, pt_reply_res);
}

/* SEEK_DATA/SEEK_HOLE on SOURCE's file. Not under the writeback cache:
 * the kernel sends LSEEK without writing its dirty pages back first (Linux
 * 6.18's fuse_lseek), so SOURCE may not yet hold data, or even the size,
 * the caller has written, and SEEK_DATA would fail ENXIO on a file just
 * written. ENOSYS makes the kernel stop asking (for the whole connection)
 * and answer from its own size: all data up to the end, the hole at the
 * end, which POSIX allows and which counts the cached writes. */
void pt_lseek(struct furing_req *req, uint64_t ino, uint64_t off, int whence, const struct furing_file *fi)
{
	if (pt_fs_of(req)->writeback) {
		furing_reply_err(req, ENOSYS);
		return;
	}
	off_t r = lseek(file_of(fi)->h.fd, (off_t)off, whence);

	if (r < 0)
		furing_reply_err(req, errno);
	else
		furing_reply_lseek(req, (uint64_t)r);
}

/* ---- FLOCK: flock(2) on our file, which is one per FUSE open file as
 * flock locks are. Always LOCK_NB: a lock that must wait is tried again
 * from a worker timer (1 ms, doubling to 64 ms) until it is granted or the
 * caller is interrupted, so a waiting lock never holds the worker. ---- */

#define FLOCK_RETRY_MIN_NS 1000000ull
#define FLOCK_RETRY_MAX_NS 64000000ull

struct flock_state {
	struct furing_event ev;
	struct furing_req *req;
	struct pt_file *f;
	uint64_t delay_ns;
	int op;
};

static void flock_try(struct flock_state *st);

static void flock_timer(struct furing_event *ev, int res)
{
	flock_try((struct flock_state *)(void *)ev);
}

static void flock_try(struct flock_state *st)
{
	struct furing_req *req = st->req;

	if (flock(st->f->h.fd, st->op | LOCK_NB) == 0) {
		furing_reply_err(req, 0);
		return;
	}
	int err = errno;
	if (err != EWOULDBLOCK || (st->op & LOCK_NB) || (st->op & LOCK_UN)) {
		furing_reply_err(req, err);
		return;
	}
	if (furing_req_interrupted(req)) {
		furing_reply_err(req, EINTR);
		return;
	}
	st->ev.fn = flock_timer;
	if (furing_worker_timeout(furing_req_worker(req), &st->ev, st->delay_ns) < 0) {
		/* No io_uring, no timers: waiting here would hold a blocking
		 * worker that the lock's holder may need to release it. */
		furing_reply_err(req, ENOLCK);
		return;
	}
	st->delay_ns = st->delay_ns * 2 > FLOCK_RETRY_MAX_NS ? FLOCK_RETRY_MAX_NS : st->delay_ns * 2;
}

void pt_flock(struct furing_req *req, uint64_t ino, const struct furing_file *fi, int op)
{
	struct flock_state *st = PT_SCRATCH(req, struct flock_state);

	memset(st, 0, sizeof(*st));
	st->req = req;
	st->f = file_of(fi);
	st->op = op;
	st->delay_ns = FLOCK_RETRY_MIN_NS;
	flock_try(st);
}
