/* The image export: one regular file (node 1) whose bytes are a backend's
 * (backend.h: a raw image file or block device, or an NBD server's disk).
 *
 * A READ or WRITE goes to the backend on the worker that received it, into
 * or out of the request's own buffer (the ring entry's payload, or the
 * /dev/fuse slot's page-aligned buffer), and the answer is sent from the
 * completion; partial transfers are continued from there. Metadata calls
 * (GETATTR, SETATTR, LSEEK, STATFS, OPEN with O_TRUNC) are rare and answered
 * at once, except LSEEK on an NBD disk, which asks the server.
 *
 * Size rules: a fixed-size image answers writes that cross its end with a
 * short count and writes that start at or past it with ENOSPC; growing it by
 * truncate or fallocate fails with EFBIG. With --growable the image grows.
 * Shrinking needs only --writable, and a resizable backend (a regular file;
 * a device or an NBD disk cannot change size). */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "backend.h"
#include "backend_file.h"
#include "backend_nbd.h"
#include "backend_rbd.h"
#include "qemu_nbd.h"
#include "rbd_spec.h"

#define ATTR_TIMEOUT_S 1.0

struct export {
	struct export_opts o;
	struct backend *be;
	struct qemu_nbd *qemu_nbd; /* the private qemu-nbd serving a --format image, or NULL */
	_Atomic uint64_t size;
	uint32_t open_flags; /* FURING_OPEN_* for every open */
	/* Kernel passthrough (--kernel-passthrough): asked for in init; the
	 * backing id is registered at the first open that uses it and kept for
	 * the session. */
	bool kpt_wanted;
	uint32_t kpt_stack_depth;
	pthread_mutex_t kpt_lock;
	int backing_id;  /* 0: not registered yet */
	bool kpt_failed; /* registering failed: reads go through us */
	pthread_mutex_t meta_lock; /* mode/uid/gid: changed only by SETATTR */
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/* What a READ or WRITE needs between its backend completions. */
struct transfer {
	uint64_t off;
	uint32_t len;
	uint32_t done;
	/* A WRITE's source, a READ's destination; NULL: zero-copy, the data
	 * is the caller's pages lent to the request (Linux 7.3). */
	union {
		const unsigned char *src;
		unsigned char *dst;
	};
	/* Zero-copy through the page cache: the lent pages' alignment is the
	 * caller's, unknown until an O_DIRECT backend refuses it. */
	bool zc_buffered;
};
_Static_assert(sizeof(struct transfer) <= BACKEND_SCRATCH_OFFSET, "transfer leaves the backend its scratch");

static struct export *fs_of(struct furing_req *req)
{
	return furing_req_fs(req);
}

static void grow_size_to(struct export *e, uint64_t end)
{
	uint64_t cur = atomic_load(&e->size);
	while (end > cur && !atomic_compare_exchange_weak(&e->size, &cur, end))
		;
}

static inline void backend_io(struct furing_req *req, struct export *e, bool write, void *buf, uint32_t len,
			      uint64_t off, furing_io_done done)
{
	e->be->ops->io(e->be, req, write, buf, len, off, done);
}

/* The rest of transfer @t from byte t->done on, from or into the request's
 * buffer or, zero-copy, the caller's pages. */
static void transfer_next(struct furing_req *req, struct export *e, bool write, const struct transfer *t,
			  furing_io_done done)
{
	uint64_t off = t->off + t->done;
	uint32_t len = t->len - t->done;

	if (!t->src)
		e->be->ops->io_zc(e->be, req, write, t->done, len, off, t->zc_buffered, done);
	else if (write)
		backend_io(req, e, true, (void *)(t->src + t->done), len, off, done);
	else
		backend_io(req, e, false, t->dst + t->done, len, off, done);
}

/* An O_DIRECT backend refuses lent pages that are not aligned as it needs
 * (EINVAL, nothing moved): the transfer is then retried once through the
 * page cache, as an unaligned buffer of ours would have gone at once. */
static bool zc_refused(struct transfer *t, int res)
{
	if (res != -EINVAL || t->zc_buffered || t->src)
		return false;
	t->zc_buffered = true;
	return true;
}

/* ---- READ ---- */

static void read_step(struct furing_req *req, int res)
{
	struct export *e = fs_of(req);
	struct transfer *t = furing_req_scratch(req);

	if (zc_refused(t, res)) {
		transfer_next(req, e, false, t, read_step);
		return;
	}
	if (res < 0) {
		furing_reply_err(req, -res);
		return;
	}
	t->done += (uint32_t)res;
	if (res == 0 || t->done == t->len) { /* 0: the image ended early (shrunk meanwhile) */
		furing_reply_buf(req, t->done);
		return;
	}
	transfer_next(req, e, false, t, read_step);
}

static void export_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			const struct furing_file *fi)
{
	struct export *e = fs_of(req);
	struct transfer *t = furing_req_scratch(req);
	uint64_t end = atomic_load(&e->size);

	if (off >= end || size == 0) {
		furing_reply_buf(req, 0);
		return;
	}
	*t = (struct transfer){.off = off, .len = (uint32_t)(end - off < size ? end - off : size)};
	if (!furing_req_zero_copy(req))
		t->dst = furing_req_buf(req);
	transfer_next(req, e, false, t, read_step);
}

/* ---- WRITE ---- */

/* Acknowledges the t->done bytes that reached the image. On a growable
 * export the size must cover them first, also when the write was cut short
 * (ENOSPC part-way): the kernel takes the count as written, so bytes past
 * the size would be acknowledged yet unreadable until a restart. */
static void write_ack(struct furing_req *req, struct export *e, const struct transfer *t)
{
	if (e->o.growable)
		grow_size_to(e, t->off + t->done);
	furing_reply_write(req, t->done);
}

static void write_step(struct furing_req *req, int res)
{
	struct export *e = fs_of(req);
	struct transfer *t = furing_req_scratch(req);

	if (zc_refused(t, res)) {
		transfer_next(req, e, true, t, write_step);
		return;
	}
	if (res < 0 || (res == 0 && t->done < t->len)) {
		/* Report what reached the image; a write that moved nothing fails. */
		if (t->done)
			write_ack(req, e, t);
		else
			furing_reply_err(req, res < 0 ? -res : EIO);
		return;
	}
	t->done += (uint32_t)res;
	if (t->done < t->len) {
		transfer_next(req, e, true, t, write_step);
		return;
	}
	write_ack(req, e, t);
}

static void export_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
			 const struct furing_file *fi)
{
	struct export *e = fs_of(req);
	struct transfer *t = furing_req_scratch(req);
	uint32_t len = size;

	if (!e->o.writable) {
		furing_reply_err(req, EROFS);
		return;
	}
	if (!e->o.growable) {
		uint64_t end = atomic_load(&e->size);
		if (off >= end) {
			furing_reply_err(req, size ? ENOSPC : 0);
			return;
		}
		if (end - off < len)
			len = (uint32_t)(end - off); /* short write at the end */
	}
	if (len == 0) {
		furing_reply_write(req, 0);
		return;
	}
	*t = (struct transfer){.off = off, .len = len, .src = furing_req_zero_copy(req) ? NULL : data};
	transfer_next(req, e, true, t, write_step);
}

/* ---- FSYNC, FALLOCATE ---- */

static void reply_result(struct furing_req *req, int res)
{
	furing_reply_err(req, res < 0 ? -res : 0);
}

static void export_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	struct export *e = fs_of(req);

	e->be->ops->sync(e->be, req, datasync, reply_result);
}

static void export_flush(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	/* close() needs nothing: writes already reached the image. */
	furing_reply_err(req, 0);
}

static void fallocate_done(struct furing_req *req, int res)
{
	struct transfer *t = furing_req_scratch(req);

	if (res >= 0 && t->done) /* done = 1: the call may have grown the image */
		grow_size_to(fs_of(req), t->off);
	furing_reply_err(req, res < 0 ? -res : 0);
}

static void export_fallocate(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
			     const struct furing_file *fi)
{
	struct export *e = fs_of(req);
	struct transfer *t = furing_req_scratch(req);
	bool grows = !(mode & FALLOC_FL_KEEP_SIZE) && off + len > atomic_load(&e->size);

	if (!e->o.writable) {
		furing_reply_err(req, EROFS);
		return;
	}
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		furing_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (len == 0 || off + len < off) {
		furing_reply_err(req, EINVAL);
		return;
	}
	if (grows && (!e->o.growable || !e->be->resizable)) {
		furing_reply_err(req, EFBIG);
		return;
	}
	*t = (struct transfer){.off = off + len, .done = grows}; /* off: the end, for the size */
	e->be->ops->fallocate(e->be, req, mode, off, len, fallocate_done);
}

/* ---- metadata ---- */

static int fill_stat(struct export *e, struct stat *st)
{
	int err = e->be->ops->stat(e->be, st);
	if (err)
		return err;
	uint64_t size = atomic_load(&e->size);
	pthread_mutex_lock(&e->meta_lock);
	st->st_mode = S_IFREG | (e->mode & 07777);
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	pthread_mutex_unlock(&e->meta_lock);
	st->st_ino = 1;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_rdev = 0;
	return 0;
}

static void export_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct stat st;
	int err = fill_stat(fs_of(req), &st);

	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_attr(req, &st, ATTR_TIMEOUT_S);
}

/* Size changes by SETATTR or O_TRUNC. Returns 0 or an errno. */
static int resize(struct export *e, uint64_t size)
{
	uint64_t cur = atomic_load(&e->size);

	if (!e->o.writable)
		return EROFS;
	if (size == cur)
		return 0;
	if (!e->be->resizable)
		return size > cur ? EFBIG : EPERM; /* a device or an NBD disk cannot change size */
	if (size > cur && !e->o.growable)
		return EFBIG;
	int err = e->be->ops->truncate(e->be, size);
	if (err)
		return err;
	atomic_store(&e->size, size);
	return 0;
}

static void export_setattr(struct furing_req *req, uint64_t ino, const struct furing_setattr *a,
			   const struct furing_file *fi)
{
	struct export *e = fs_of(req);
	int err = 0;

	if (a->valid & FURING_SET_SIZE)
		err = resize(e, a->size);
	struct timespec ts[2];
	if (!err && furing_setattr_times(a, ts))
		err = e->be->ops->set_times(e->be, ts);
	if (!err && (a->valid & (FURING_SET_MODE | FURING_SET_UID | FURING_SET_GID))) {
		/* Ownership and mode belong to the exported file, not the image:
		 * kept in memory, as QEMU's export does. The kernel has already
		 * checked the caller may change them (default_permissions). */
		pthread_mutex_lock(&e->meta_lock);
		if (a->valid & FURING_SET_MODE)
			e->mode = a->mode & 07777;
		if (a->valid & FURING_SET_UID)
			e->uid = a->uid;
		if (a->valid & FURING_SET_GID)
			e->gid = a->gid;
		pthread_mutex_unlock(&e->meta_lock);
	}
	if (err) {
		furing_reply_err(req, err);
		return;
	}
	export_getattr(req, ino, NULL);
}

/* The backing id for this open, or 0 when this open is served by us. Once
 * one open of the file goes through passthrough the kernel wants every open
 * to, so all of them get it: readers of a read-only export (writers were
 * refused before), and readers and writers of a writable one when
 * --kernel-passthrough=on asked for that. The kernel opens the image anew
 * for each with the opener's flags and furing's credentials. */
static int passthrough_id(struct export *e, struct furing_req *req)
{
	struct furing_session *s = furing_req_session(req);

	if (!e->kpt_wanted || !(furing_session_conn(s)->granted & FURING_CAP_PASSTHROUGH))
		return 0;
	pthread_mutex_lock(&e->kpt_lock);
	if (!e->backing_id && !e->kpt_failed) {
		int fd = e->be->ops->passthrough_fd(e->be);
		int id = fd < 0 ? -errno : furing_backing_open(s, fd);
		if (id > 0) {
			e->backing_id = id;
		} else {
			e->kpt_failed = true;
			furing_session_log(s, FURING_LOG_WARNING, "kernel passthrough failed (%s): %s go through furing",
					   strerror(-id), e->o.writable ? "reads and writes" : "reads");
		}
	}
	int id = e->backing_id;
	pthread_mutex_unlock(&e->kpt_lock);
	return id;
}

static void export_open_file(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct export *e = fs_of(req);
	int flags = fi->flags;

	if ((flags & O_ACCMODE) != O_RDONLY && !e->o.writable) {
		furing_reply_err(req, EROFS);
		return;
	}
	/* FUSE_ATOMIC_O_TRUNC is negotiated, so truncation is ours to do. */
	if ((flags & O_TRUNC) && e->be->resizable) {
		int err = resize(e, 0);
		if (err) {
			furing_reply_err(req, err);
			return;
		}
	}
	struct furing_open o = {.fh = 0, .flags = e->open_flags};
	int id = passthrough_id(e, req);
	if (id > 0) {
		/* The kernel reads (and writes) the image itself; READs and
		 * WRITEs never reach us. */
		o.flags = FURING_OPEN_PASSTHROUGH;
		o.backing_id = id;
	}
	furing_reply_open(req, &o);
}

static void export_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	furing_reply_err(req, 0);
}

static void export_lseek(struct furing_req *req, uint64_t ino, uint64_t off, int whence, const struct furing_file *fi)
{
	struct export *e = fs_of(req);
	uint64_t size = atomic_load(&e->size);

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		furing_reply_err(req, EINVAL);
		return;
	}
	if (off >= size) {
		furing_reply_err(req, ENXIO);
		return;
	}
	e->be->ops->seek(e->be, req, off, whence, size);
}

static void export_statfs(struct furing_req *req, uint64_t ino)
{
	struct export *e = fs_of(req);
	struct statvfs st;
	int err = e->be->ops->statfs(e->be, &st);

	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_statfs(req, &st);
}

static void export_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	furing_reply_err(req, ENOTDIR); /* the root is a file */
}

static int export_init(void *fs, struct furing_conn *conn)
{
	struct export *e = fs;

	if (e->kpt_wanted && (conn->capable & FURING_CAP_PASSTHROUGH)) {
		conn->want |= FURING_CAP_PASSTHROUGH;
		conn->max_stack_depth = e->kpt_stack_depth;
	}
	return 0;
}

static int export_worker_start(void *fs, struct furing_worker *w)
{
	struct export *e = fs;

	return e->be->ops->worker_start ? e->be->ops->worker_start(e->be, w) : 0;
}

static void export_worker_stop(void *fs, struct furing_worker *w)
{
	struct export *e = fs;

	if (e->be->ops->worker_stop)
		e->be->ops->worker_stop(e->be, w);
}

const struct furing_ops export_ops = {
	.init = export_init,
	.lookup = export_lookup,
	.getattr = export_getattr,
	.setattr = export_setattr,
	.open = export_open_file,
	.release = export_release,
	.flush = export_flush,
	.fsync = export_fsync,
	.read = export_read,
	.write = export_write,
	.fallocate = export_fallocate,
	.lseek = export_lseek,
	.statfs = export_statfs,
	.worker_start = export_worker_start,
	.worker_stop = export_worker_stop,
};

/* ---- setup ---- */

bool export_is_nbd_uri(const char *image)
{
	static const char *const schemes[] = {"nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://",
					      "nbds+vsock://"};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(image, schemes[i], strlen(schemes[i])))
			return true;
	return false;
}

/* The backend for @o: a Ceph RBD image for rbd:, an NBD server for a URI, a private qemu-nbd for an
 * image in another format than raw, else the file itself. */
static struct backend *open_backend(struct export *e, const struct export_opts *o, char *err, size_t errlen)
{
	if (rbd_spec_is_rbd(o->image))
		return rbd_backend_open(o, o->image, err, errlen);
	if (export_is_nbd_uri(o->image))
		return nbd_backend_open(o, o->image, err, errlen);
	if (!o->format || !strcmp(o->format, "raw"))
		return file_backend_open(o, err, errlen);
	/* Each worker may hold two connections (backend_nbd.c). */
	e->qemu_nbd = qemu_nbd_start(o->image, o->format, o->writable, o->backend_direct, 2 * o->workers, &o->log, err,
				     errlen);
	if (!e->qemu_nbd)
		return NULL;
	struct backend *be = nbd_backend_open(o, qemu_nbd_uri(e->qemu_nbd), err, errlen);
	if (!be) {
		qemu_nbd_explain(e->qemu_nbd, o->image, o->format, err, errlen);
		qemu_nbd_stop(e->qemu_nbd);
		e->qemu_nbd = NULL;
	}
	return be;
}

struct export *export_open(const struct export_opts *o, char *err, size_t errlen)
{
	struct export *e = calloc(1, sizeof(*e));

	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->o = *o;
	e->be = open_backend(e, o, err, errlen);
	if (!e->be) {
		free(e);
		return NULL;
	}
	atomic_store(&e->size, e->be->size);
	pthread_mutex_init(&e->meta_lock, NULL);
	e->mode = o->writable ? 0644 : 0444;
	e->uid = getuid();
	e->gid = getgid();
	if (o->cache == EXPORT_CACHE_KERNEL)
		e->open_flags = FURING_OPEN_KEEP_CACHE;
	else
		e->open_flags = FURING_OPEN_DIRECT_IO | FURING_OPEN_PARALLEL_WRITES;
	/* Asked for wherever the backend can take lent pages; the library
	 * grants it only on zero-copy queues (Linux 7.3). */
	if (e->be->ops->io_zc)
		e->open_flags |= FURING_OPEN_ZERO_COPY;
	pthread_mutex_init(&e->kpt_lock, NULL);
	e->kpt_wanted = !export_passthrough_refused(e);
	/* A backing file that is itself on a FUSE mount is one level deeper. */
	struct statfs sfs;
	e->kpt_stack_depth = statfs(o->image, &sfs) == 0 && sfs.f_type == FUSE_SUPER_MAGIC ? 2 : 1;
	return e;
}

const char *export_passthrough_refused(const struct export *e)
{
	if (e->o.kernel_passthrough == EXPORT_KPT_OFF)
		return "--kernel-passthrough=off";
	/* Writes through passthrough are the kernel's: it does not hold them to
	 * the export's size (a write past the end extends the image), nor to
	 * --writethrough. So a writable export uses it only when asked. */
	if (e->o.writable) {
		if (e->o.kernel_passthrough != EXPORT_KPT_ON)
			return "the export is writable (--kernel-passthrough=on takes its writes through the kernel too)";
		if (e->o.growable)
			return "--growable (the kernel's writes would change the image's size without furing)";
		if (e->o.writethrough)
			return "--writethrough (the kernel would not make each write durable before acknowledging it)";
	}
	if (!e->be->ops->passthrough_fd && e->be->not_local)
		return e->be->not_local;
	if (!e->be->ops->passthrough_fd)
		return "the disk is served over NBD (a network disk, or a --format image through qemu-nbd)";
	if (!e->be->resizable) /* the file backend's only fixed-size storage */
		return "the image is a block device (the kernel passes through to regular files only)";
	if (geteuid() != 0)
		return "it needs root (CAP_SYS_ADMIN to register the backing file)";
	return NULL;
}

bool export_passthrough_active(const struct export *e, const struct furing_session *s)
{
	return e->kpt_wanted && (furing_session_conn(s)->granted & FURING_CAP_PASSTHROUGH);
}

int export_close(struct export *e)
{
	if (!e)
		return 0;
	int ret = e->be->ops->close(e->be);
	if (e->qemu_nbd && qemu_nbd_stop(e->qemu_nbd) < 0)
		ret = -1;
	pthread_mutex_destroy(&e->meta_lock);
	pthread_mutex_destroy(&e->kpt_lock);
	free(e);
	return ret;
}

uint64_t export_image_grew(const struct export *e)
{
	struct stat st;

	/* backing_id > 0: the backend's passthrough descriptor is open */
	if (!e->o.writable || e->backing_id <= 0 || fstat(e->be->ops->passthrough_fd(e->be), &st) != 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	return (uint64_t)st.st_size > atomic_load(&e->size) ? (uint64_t)st.st_size : 0;
}

unsigned int export_max_workers(const struct export *e)
{
	return e->be->max_workers;
}

const char *export_describe(const struct export *e)
{
	return e->be->describe;
}

mode_t export_root_mode(const struct export *e)
{
	return S_IFREG | e->mode;
}

uint64_t export_size(const struct export *e)
{
	return atomic_load(&e->size);
}

bool export_backend_unreachable(const struct export *e)
{
	return e->be->ops->unreachable && e->be->ops->unreachable(e->be);
}

bool export_backend_can_fail(const struct export *e)
{
	return e->be->ops->unreachable != NULL;
}
