/* Where the tool's filesystems (export/, passthrough/) do a backend read or
 * write: the one policy behind both --backend-io options.
 *
 * tmpfs and ramfs have no non-blocking read or write path (shmem has no
 * FMODE_NOWAIT), so io_uring hands every such call to an io-wq thread: two
 * context switches around a memcpy that cannot wait for a device. There
 * the worker copies small transfers itself; a large one stays on the ring,
 * where an io-wq thread copies on another CPU while the worker serves the
 * next request. bench/README.md has the numbers.
 *
 * On the public API only, like the filesystems that use it. */
#ifndef FURING_FSCOMMON_INLINE_IO_H
#define FURING_FSCOMMON_INLINE_IO_H

#include <stdbool.h>
#include <stdint.h>

#include <furing/furing.h>

/* Whether a filesystem of type @f_type (statfs) keeps its files in memory
 * (tmpfs, ramfs): where --backend-io=auto copies inline. */
bool inline_io_in_memory(long f_type);

/* Reads @len bytes at @off of @fd into @buf, or writes them from it: with
 * pread/pwrite in the worker when @inline_ok and the transfer is small,
 * else on the worker's io_uring. @done gets the result either way (bytes
 * or -errno), possibly before this returns. */
void inline_io_rw(struct furing_req *req, int fd, bool write, void *buf, uint32_t len, uint64_t off, bool inline_ok,
		  furing_io_done done);

#endif
