/* See inline_io.h. */
#include "inline_io.h"

#include <errno.h>
#include <linux/magic.h>
#include <unistd.h>

/* Inline copies only up to this size: a large copy is better done by an
 * io-wq thread on another CPU while the worker serves the next request. */
#define INLINE_IO_MAX (64 * 1024)

bool inline_io_in_memory(long f_type)
{
	return f_type == TMPFS_MAGIC || f_type == RAMFS_MAGIC;
}

void inline_io_rw(struct furing_req *req, int fd, bool write, void *buf, uint32_t len, uint64_t off, bool inline_ok,
		  furing_io_done done)
{
	if (inline_ok && len <= INLINE_IO_MAX) {
		ssize_t n = write ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
		done(req, n < 0 ? -errno : (int)n);
	} else if (write) {
		furing_req_pwrite(req, fd, buf, len, off, done);
	} else {
		furing_req_pread(req, fd, buf, len, off, done);
	}
}
