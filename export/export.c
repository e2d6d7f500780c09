/* The image export: one regular file (node 1) whose bytes are the image's.
 *
 * A READ or WRITE goes to the backend as I/O on the worker's io_uring, into
 * or out of the request's own buffer (the ring entry's payload, or the
 * /dev/fuse slot's page-aligned buffer), and the answer is sent from the
 * completion; partial transfers are continued from there. Metadata calls
 * (GETATTR, SETATTR, LSEEK, STATFS, OPEN with O_TRUNC) are rare and answered
 * at once with ordinary syscalls.
 *
 * Size rules: a fixed-size image answers writes that cross its end with a
 * short count and writes that start at or past it with ENOSPC; growing it by
 * truncate or fallocate fails with EFBIG. With --growable the image grows.
 * Shrinking needs only --writable. */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <linux/magic.h>
#include <unistd.h>

#define ATTR_TIMEOUT_S 1.0
/* Inline copies only up to this size: a large copy is better done by an
 * io-wq thread on another CPU while the worker serves the next request. */
#define INLINE_IO_MAX (64 * 1024)

struct export {
	struct export_opts o;
	int fd;          /* the image; O_DIRECT with --backend-direct */
	int fd_unaligned; /* for I/O O_DIRECT cannot take: the same image through the page cache */
	uint32_t dio_off_align, dio_mem_align;
	bool blockdev;
	bool inline_io; /* the image lives in memory (tmpfs): copy inline, see backend_io */
	_Atomic uint64_t size;
	uint32_t open_flags; /* FURING_OPEN_* for every open */
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
	const unsigned char *src;
	unsigned char *dst;
};
_Static_assert(sizeof(struct transfer) <= FURING_REQ_SCRATCH_SIZE, "transfer fits the request scratch");

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

/* With --backend-direct, I/O whose offset, length or buffer is not aligned
 * as O_DIRECT requires is bounced through the page cache of a second,
 * buffered fd. The kernel keeps the two coherent (a direct read writes back
 * dirty cached pages of its range first, a direct write invalidates them),
 * and it does the read-modify-write of partial blocks under its own locks,
 * so concurrent unaligned writes to one block cannot lose each other. */
static int io_fd(const struct export *e, uint64_t off, uint32_t len, const void *buf)
{
	if (e->fd_unaligned < 0)
		return e->fd;
	if ((off | len) & (e->dio_off_align - 1) || (uintptr_t)buf & (e->dio_mem_align - 1))
		return e->fd_unaligned;
	return e->fd;
}

/* Reads and writes go to the worker's io_uring, except on a memory-backed
 * image (tmpfs, ramfs) with --backend-io=auto|inline: there the I/O is a
 * memcpy that cannot wait for a device, but the kernel cannot do it without
 * blocking semantics (shmem has no FMODE_NOWAIT), so io_uring would hand
 * every read to an io-wq thread and pay two context switches for a 4 KiB
 * copy. bench/README.md has the numbers. */
static void backend_io(struct furing_req *req, struct export *e, bool write, void *buf, uint32_t len, uint64_t off,
		       furing_io_done done)
{
	int fd = io_fd(e, off, len, buf);

	if (e->inline_io && len <= INLINE_IO_MAX) {
		ssize_t n = write ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
		done(req, n < 0 ? -errno : (int)n);
	} else if (write) {
		furing_req_pwrite(req, fd, buf, len, off, done);
	} else {
		furing_req_pread(req, fd, buf, len, off, done);
	}
}

/* ---- READ ---- */

static void read_step(struct furing_req *req, int res)
{
	struct export *e = fs_of(req);
	struct transfer *t = furing_req_scratch(req);

	if (res < 0) {
		furing_reply_err(req, -res);
		return;
	}
	t->done += (uint32_t)res;
	if (res == 0 || t->done == t->len) { /* 0: the image ended early (shrunk meanwhile) */
		furing_reply_buf(req, t->done);
		return;
	}
	uint64_t off = t->off + t->done;
	uint32_t len = t->len - t->done;
	backend_io(req, e, false, t->dst + t->done, len, off, read_step);
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
	*t = (struct transfer){.off = off, .len = (uint32_t)(end - off < size ? end - off : size), .dst = furing_req_buf(req)};
	backend_io(req, e, false, t->dst, t->len, off, read_step);
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
		uint64_t off = t->off + t->done;
		uint32_t len = t->len - t->done;
		backend_io(req, e, true, (void *)(t->src + t->done), len, off, write_step);
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
	*t = (struct transfer){.off = off, .len = len, .src = data};
	backend_io(req, e, true, (void *)data, len, off, write_step);
}

/* ---- FSYNC, FALLOCATE ---- */

static void reply_result(struct furing_req *req, int res)
{
	furing_reply_err(req, res < 0 ? -res : 0);
}

static void export_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	furing_req_fsync(req, fs_of(req)->fd, datasync, reply_result);
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
	if (grows && (!e->o.growable || e->blockdev)) {
		furing_reply_err(req, EFBIG);
		return;
	}
	*t = (struct transfer){.off = off + len, .done = grows}; /* off: the end, for the size */
	furing_req_fallocate(req, e->fd, mode, off, len, fallocate_done);
}

/* ---- metadata ---- */

static int fill_stat(struct export *e, struct stat *st)
{
	if (fstat(e->fd, st) < 0)
		return errno;
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
	if (e->blockdev) {
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
		st->st_blksize = 4096;
	}
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
	if (e->blockdev)
		return size > cur ? EFBIG : EPERM; /* a device cannot change size */
	if (size > cur && !e->o.growable)
		return EFBIG;
	if (ftruncate(e->fd, (off_t)size) < 0)
		return errno;
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
	if (!err && (a->valid & (FURING_SET_ATIME | FURING_SET_MTIME | FURING_SET_ATIME_NOW | FURING_SET_MTIME_NOW))) {
		struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
		if (a->valid & FURING_SET_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (a->valid & FURING_SET_ATIME)
			ts[0] = a->atime;
		if (a->valid & FURING_SET_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (a->valid & FURING_SET_MTIME)
			ts[1] = a->mtime;
		if (futimens(e->fd, ts) < 0)
			err = errno;
	}
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

static void export_open_file(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct export *e = fs_of(req);
	int flags = fi->flags;

	if ((flags & O_ACCMODE) != O_RDONLY && !e->o.writable) {
		furing_reply_err(req, EROFS);
		return;
	}
	/* FUSE_ATOMIC_O_TRUNC is negotiated, so truncation is ours to do. */
	if ((flags & O_TRUNC) && !e->blockdev) {
		int err = resize(e, 0);
		if (err) {
			furing_reply_err(req, err);
			return;
		}
	}
	struct furing_open o = {.fh = 0, .flags = e->open_flags};
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
	if (e->blockdev) { /* a device is all data */
		furing_reply_lseek(req, whence == SEEK_DATA ? off : size);
		return;
	}
	off_t r = lseek(e->fd, (off_t)off, whence);
	if (r < 0) {
		furing_reply_err(req, errno);
		return;
	}
	furing_reply_lseek(req, (uint64_t)r > size ? size : (uint64_t)r);
}

static void export_statfs(struct furing_req *req, uint64_t ino)
{
	struct statvfs st;

	if (fstatvfs(fs_of(req)->fd, &st) < 0)
		furing_reply_err(req, errno);
	else
		furing_reply_statfs(req, &st);
}

static void export_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	furing_reply_err(req, ENOTDIR); /* the root is a file */
}

const struct furing_ops export_ops = {
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
};

/* ---- setup ---- */

/* O_DIRECT's alignment for the image: statx(STATX_DIOALIGN) where the kernel
 * reports it (6.1+), else the device's logical block size, else 4096. glibc
 * 2.36's struct statx predates the fields, so they are read at their uapi
 * offsets (0x98 and 0x9c). */
static void dio_alignment(struct export *e)
{
	struct statx sx;
	uint32_t mem = 0, off = 0;
	_Static_assert(sizeof(struct statx) >= 0xa0, "struct statx holds the DIOALIGN fields");

	if (statx(e->fd, "", AT_EMPTY_PATH, 0x2000 /* STATX_DIOALIGN */, &sx) == 0 && (sx.stx_mask & 0x2000)) {
		memcpy(&mem, (char *)&sx + 0x98, sizeof(mem));
		memcpy(&off, (char *)&sx + 0x9c, sizeof(off));
	}
	int lbs = 0;
	if (!off && e->blockdev && ioctl(e->fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
		off = (uint32_t)lbs;
	e->dio_off_align = off && !(off & (off - 1)) ? off : 4096;
	e->dio_mem_align = mem && !(mem & (mem - 1)) ? mem : e->dio_off_align;
}

struct export *export_open(const struct export_opts *o, char *err, size_t errlen)
{
	struct stat st;
	struct export *e;

	if (stat(o->image, &st) < 0) {
		snprintf(err, errlen, "image %s: %s", o->image, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "image %s is not a regular file or a block device", o->image);
		return NULL;
	}
	if (S_ISBLK(st.st_mode) && o->growable) {
		snprintf(err, errlen, "image %s is a block device: it cannot be --growable", o->image);
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->o = *o;
	e->blockdev = S_ISBLK(st.st_mode);
	int flags = (o->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	if (o->backend_direct)
		flags |= O_DIRECT;
	if (o->writethrough)
		flags |= O_DSYNC; /* each write is durable when it completes */
	e->fd_unaligned = -1;
	e->fd = open(o->image, flags);
	if (e->fd < 0 && o->backend_direct && errno == EINVAL) {
		snprintf(err, errlen, "image %s: its filesystem does not support O_DIRECT (--backend-direct)", o->image);
		free(e);
		return NULL;
	}
	if (e->fd < 0) {
		snprintf(err, errlen, "cannot open image %s: %s", o->image, strerror(errno));
		free(e);
		return NULL;
	}
	if (o->backend_direct) {
		e->fd_unaligned = open(o->image, flags & ~O_DIRECT);
		if (e->fd_unaligned < 0) {
			snprintf(err, errlen, "cannot open image %s: %s", o->image, strerror(errno));
			close(e->fd);
			free(e);
			return NULL;
		}
		dio_alignment(e);
	}
	uint64_t size = (uint64_t)st.st_size;
	if (e->blockdev && ioctl(e->fd, BLKGETSIZE64, &size) < 0) {
		snprintf(err, errlen, "cannot read the size of %s: %s", o->image, strerror(errno));
		close(e->fd);
		free(e);
		return NULL;
	}
	atomic_store(&e->size, size);
	struct statfs sfs;
	bool in_memory = !e->blockdev && fstatfs(e->fd, &sfs) == 0 &&
			 (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
	e->inline_io = o->backend_io == EXPORT_IO_INLINE || (o->backend_io == EXPORT_IO_AUTO && in_memory);
	pthread_mutex_init(&e->meta_lock, NULL);
	e->mode = o->writable ? 0644 : 0444;
	e->uid = getuid();
	e->gid = getgid();
	if (o->cache == EXPORT_CACHE_KERNEL)
		e->open_flags = FURING_OPEN_KEEP_CACHE;
	else
		e->open_flags = FURING_OPEN_DIRECT_IO | FURING_OPEN_PARALLEL_WRITES;
	return e;
}

void export_close(struct export *e)
{
	if (!e)
		return;
	close(e->fd);
	if (e->fd_unaligned >= 0)
		close(e->fd_unaligned);
	pthread_mutex_destroy(&e->meta_lock);
	free(e);
}

mode_t export_root_mode(const struct export *e)
{
	return S_IFREG | e->mode;
}

uint64_t export_size(const struct export *e)
{
	return atomic_load(&e->size);
}
