/* furing passthrough: a directory tree (SOURCE) mirrored at a mountpoint.
 * What the command line sees of it: the options, opening and closing the
 * filesystem, the operations table for the session, and what the
 * "serving" line reports. A user of the public libfuring API only; the
 * files of passthrough/ share the rest (pt.h, which includes this). */
#ifndef FURING_PASSTHROUGH_H
#define FURING_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <furing/furing.h>

enum pt_cache {
	PT_CACHE_AUTO = 0, /* 1 s entry/attr timeouts, page cache dropped at open when the file changed */
	PT_CACHE_NONE,     /* no caching: every access reaches SOURCE (FOPEN_DIRECT_IO) */
	PT_CACHE_ALWAYS,   /* 1 day timeouts, cache kept across opens, writeback cache */
};

enum pt_io {
	PT_IO_AUTO = 0, /* inline small reads/writes on a memory-backed SOURCE, else the ring */
	PT_IO_RING,     /* every read and write on the worker's io_uring */
	PT_IO_INLINE,   /* small reads and writes with pread/pwrite in the worker */
};

struct pt_opts {
	const char *source;
	enum pt_cache cache;
	bool kernel_passthrough;
	enum pt_io backend_io;
	bool no_xattr; /* --no-xattr: every xattr request answered ENOSYS */
};

struct pt_fs;

/* Opens SOURCE and checks it; NULL with @err (one line) on failure. */
struct pt_fs *pt_open(const struct pt_opts *o, char *err, size_t errlen);
/* After the session ended: every handle closed, everything freed. */
void pt_close(struct pt_fs *fs);
/* The realpath of SOURCE (the mount's fsname). */
const char *pt_source(const struct pt_fs *fs);
/* The mode of SOURCE's root (for furing_config.root_mode). */
mode_t pt_root_mode(const struct pt_fs *fs);
/* Why init refused the mount (one line), or "" (for cli_session_start). */
const char *pt_init_error(const struct pt_fs *fs);
/* After the start, what the kernel granted, for the "serving" line: the
 * writeback cache (--cache=always), kernel passthrough. */
bool pt_writeback_active(const struct pt_fs *fs);
bool pt_passthrough_active(const struct pt_fs *fs);
/* The inline calls and why, one per line, for --help and the log. */
extern const char pt_inline_calls[];

extern const struct furing_ops pt_ops;

#endif
