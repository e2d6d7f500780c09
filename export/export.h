/* furing export: a raw disk image or block device served as one regular file.
 * A user of the public libfuring API only. */
#ifndef FURING_EXPORT_H
#define FURING_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <furing/furing.h>

enum export_cache {
	EXPORT_CACHE_NONE = 0, /* FOPEN_DIRECT_IO: every application I/O reaches us */
	EXPORT_CACHE_KERNEL,   /* the kernel page cache on the exported file (mmap works) */
};

enum export_io {
	EXPORT_IO_AUTO = 0, /* inline on a memory-backed image (tmpfs, ramfs), else the ring */
	EXPORT_IO_RING,     /* always asynchronous on the worker's io_uring */
	EXPORT_IO_INLINE,   /* pread/pwrite in the worker (fsync/fallocate stay on the ring) */
};

struct export_opts {
	const char *image;
	bool writable;
	bool growable;       /* writes past the end and truncate-up grow the image */
	bool backend_direct; /* O_DIRECT on the image */
	bool writethrough;   /* every write durable before it is acknowledged */
	enum export_cache cache;
	enum export_io backend_io;
};

struct export;

/* Opens and checks the image; NULL with @err (one line) on failure. */
struct export *export_open(const struct export_opts *o, char *err, size_t errlen);
void export_close(struct export *e);
/* The root mode of the mount: S_IFREG plus permissions. */
mode_t export_root_mode(const struct export *e);
uint64_t export_size(const struct export *e);

extern const struct furing_ops export_ops;

#endif
