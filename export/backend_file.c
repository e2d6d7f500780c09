/* The file backend: a raw image file or a block device.
 *
 * Reads and writes go to the worker's io_uring, into or out of the request's
 * own buffer, or are copied inline on a memory-backed image (see file_io).
 * fsync and fallocate go to the ring; metadata calls are ordinary syscalls. */
#include "backend_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../fscommon/inline_io.h"

struct file_backend {
	struct backend b;
	int fd;           /* the image; O_DIRECT with --backend-direct */
	int fd_unaligned; /* for I/O O_DIRECT cannot take: the same image through the page cache */
	uint32_t dio_off_align, dio_mem_align;
	bool blockdev;
	bool inline_io; /* the image lives in memory (tmpfs): copy inline, see file_io */
	/* For kernel passthrough, opened on first use. It only names the image
	 * to the kernel, which opens it anew for every FUSE open with that
	 * opener's flags (writers included) and furing's credentials; so it is
	 * read-only and never O_DIRECT. */
	int fd_passthrough;
	char *path;
};

static struct file_backend *FB(struct backend *b)
{
	return (struct file_backend *)b;
}

/* With --backend-direct, I/O whose offset, length or buffer is not aligned
 * as O_DIRECT requires is bounced through the page cache of a second,
 * buffered fd. The kernel keeps the two coherent (a direct read writes back
 * dirty cached pages of its range first, a direct write invalidates them),
 * and it does the read-modify-write of partial blocks under its own locks,
 * so concurrent unaligned writes to one block cannot lose each other. */
static int io_fd(const struct file_backend *f, uint64_t off, uint32_t len, const void *buf)
{
	if (f->fd_unaligned < 0)
		return f->fd;
	if ((off | len) & (f->dio_off_align - 1) || (uintptr_t)buf & (f->dio_mem_align - 1))
		return f->fd_unaligned;
	return f->fd;
}

/* Reads and writes go to the worker's io_uring, except small ones on a
 * memory-backed image (tmpfs, ramfs) with --backend-io=auto|inline, which
 * the worker copies itself (fscommon/inline_io.h says why). */
static void file_io(struct backend *b, struct furing_req *req, bool write, void *buf, uint32_t len, uint64_t off,
		    furing_io_done done)
{
	struct file_backend *f = FB(b);

	inline_io_rw(req, io_fd(f, off, len, buf), write, buf, len, off, f->inline_io, done);
}

/* The pages are not ours to touch, so never inline: READ_FIXED /
 * WRITE_FIXED on the request's slot. Their memory alignment is the
 * caller's, unknown here; with --backend-direct, offset and length choose
 * the fd first, and a refusal of the caller's alignment (EINVAL) makes the
 * export retry with @page_cache. */
static void file_io_zc(struct backend *b, struct furing_req *req, bool write, uint32_t at, uint32_t len,
		       uint64_t off, bool page_cache, furing_io_done done)
{
	struct file_backend *f = FB(b);
	int fd = page_cache && f->fd_unaligned >= 0 ? f->fd_unaligned : io_fd(f, off, len, NULL);

	if (write)
		furing_req_zc_pwrite(req, fd, at, len, off, done);
	else
		furing_req_zc_pread(req, fd, at, len, off, done);
}

static void file_sync(struct backend *b, struct furing_req *req, bool datasync, furing_io_done done)
{
	furing_req_fsync(req, FB(b)->fd, datasync, done);
}

static void file_fallocate(struct backend *b, struct furing_req *req, int mode, uint64_t off, uint64_t len,
			   furing_io_done done)
{
	furing_req_fallocate(req, FB(b)->fd, mode, off, len, done);
}

static void file_seek(struct backend *b, struct furing_req *req, uint64_t off, int whence, uint64_t size)
{
	struct file_backend *f = FB(b);

	if (f->blockdev) { /* a device is all data */
		furing_reply_lseek(req, whence == SEEK_DATA ? off : size);
		return;
	}
	off_t r = lseek(f->fd, (off_t)off, whence);
	if (r < 0) {
		furing_reply_err(req, errno);
		return;
	}
	furing_reply_lseek(req, (uint64_t)r > size ? size : (uint64_t)r);
}

static int file_stat(struct backend *b, struct stat *st)
{
	struct file_backend *f = FB(b);

	if (fstat(f->fd, st) < 0)
		return errno;
	if (f->blockdev) {
		st->st_blocks = (blkcnt_t)((b->size + 511) / 512);
		st->st_blksize = 4096;
	}
	return 0;
}

static int file_statfs(struct backend *b, struct statvfs *st)
{
	return fstatvfs(FB(b)->fd, st) < 0 ? errno : 0;
}

static int file_truncate(struct backend *b, uint64_t size)
{
	return ftruncate(FB(b)->fd, (off_t)size) < 0 ? errno : 0;
}

static int file_set_times(struct backend *b, const struct timespec ts[2])
{
	return futimens(FB(b)->fd, ts) < 0 ? errno : 0;
}

/* The image furing opened at start, not whatever its path names now: a
 * file renamed or replaced since would otherwise take the kernel's reads
 * and writes while truncate, fsync and getattr go to the original. */
static int file_passthrough_fd(struct backend *b)
{
	struct file_backend *f = FB(b);

	if (f->fd_passthrough >= 0)
		return f->fd_passthrough;
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", f->fd);
	/* Without /proc this fails, and the export serves the I/O itself. */
	f->fd_passthrough = open(self, O_RDONLY | O_CLOEXEC);
	return f->fd_passthrough;
}

static int file_close(struct backend *b)
{
	struct file_backend *f = FB(b);

	close(f->fd);
	if (f->fd_unaligned >= 0)
		close(f->fd_unaligned);
	if (f->fd_passthrough >= 0)
		close(f->fd_passthrough);
	free(f->path);
	free(f);
	return 0;
}

static const struct backend_ops file_ops = {
	.io = file_io,
	.io_zc = file_io_zc,
	.sync = file_sync,
	.fallocate = file_fallocate,
	.seek = file_seek,
	.stat = file_stat,
	.statfs = file_statfs,
	.truncate = file_truncate,
	.set_times = file_set_times,
	.passthrough_fd = file_passthrough_fd,
	.close = file_close,
};

/* O_DIRECT's alignment for the image: statx(STATX_DIOALIGN) where the kernel
 * reports it (6.1+), else the device's logical block size, else 4096. glibc
 * 2.36's struct statx predates the fields, so they are read at their uapi
 * offsets (0x98 and 0x9c). */
static void dio_alignment(struct file_backend *f)
{
	struct statx sx;
	uint32_t mem = 0, off = 0;
	_Static_assert(sizeof(struct statx) >= 0xa0, "struct statx holds the DIOALIGN fields");

	if (statx(f->fd, "", AT_EMPTY_PATH, 0x2000 /* STATX_DIOALIGN */, &sx) == 0 && (sx.stx_mask & 0x2000)) {
		memcpy(&mem, (char *)&sx + 0x98, sizeof(mem));
		memcpy(&off, (char *)&sx + 0x9c, sizeof(off));
	}
	int lbs = 0;
	if (!off && f->blockdev && ioctl(f->fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
		off = (uint32_t)lbs;
	f->dio_off_align = off && !(off & (off - 1)) ? off : 4096;
	f->dio_mem_align = mem && !(mem & (mem - 1)) ? mem : f->dio_off_align;
}

/* Undoes a half-done open (@err is already written). */
static struct backend *fail(struct file_backend *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->fd_unaligned >= 0)
		close(f->fd_unaligned);
	free(f->path);
	free(f);
	return NULL;
}

struct backend *file_backend_open(const struct export_opts *o, char *err, size_t errlen)
{
	struct stat st;
	struct file_backend *f;

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
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->b.ops = &file_ops;
	f->blockdev = S_ISBLK(st.st_mode);
	f->b.resizable = !f->blockdev;
	int flags = (o->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	if (o->backend_direct)
		flags |= O_DIRECT;
	if (o->writethrough)
		flags |= O_DSYNC; /* each write is durable when it completes */
	f->fd_unaligned = -1;
	f->fd_passthrough = -1;
	f->path = strdup(o->image);
	if (!f->path) {
		snprintf(err, errlen, "out of memory");
		f->fd = -1;
		return fail(f);
	}
	f->fd = open(o->image, flags);
	if (f->fd < 0 && o->backend_direct && errno == EINVAL) {
		snprintf(err, errlen, "image %s: its filesystem does not support O_DIRECT (--backend-direct)", o->image);
		return fail(f);
	}
	if (f->fd < 0) {
		snprintf(err, errlen, "cannot open image %s: %s", o->image, strerror(errno));
		return fail(f);
	}
	if (o->backend_direct) {
		f->fd_unaligned = open(o->image, flags & ~O_DIRECT);
		if (f->fd_unaligned < 0) {
			snprintf(err, errlen, "cannot open image %s: %s", o->image, strerror(errno));
			return fail(f);
		}
		dio_alignment(f);
	}
	uint64_t size = (uint64_t)st.st_size;
	if (f->blockdev && ioctl(f->fd, BLKGETSIZE64, &size) < 0) {
		snprintf(err, errlen, "cannot read the size of %s: %s", o->image, strerror(errno));
		return fail(f);
	}
	f->b.size = size;
	struct statfs sfs;
	bool in_memory = !f->blockdev && fstatfs(f->fd, &sfs) == 0 && inline_io_in_memory((long)sfs.f_type);
	f->inline_io = o->backend_io == EXPORT_IO_INLINE || (o->backend_io == EXPORT_IO_AUTO && in_memory);
	return &f->b;
}
