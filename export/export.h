/* furing export: a disk served as one regular file: a raw image or block
 * device, or any disk an NBD server offers (an NBD URI, or an image in a
 * format qemu-nbd reads, served through a private qemu-nbd). A user of the
 * public libfuring API only; where the bytes live is a backend (backend.h). */
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

enum export_kpt {
	EXPORT_KPT_AUTO = 0, /* read-only exports of an image file, when root and the kernel allow it */
	EXPORT_KPT_ON,       /* the same, but refuse to start without it */
	EXPORT_KPT_OFF,
};

/* Where the export's messages go while no session of it runs (before the
 * start, after furing_session_destroy, while qemu-nbd stops); during a
 * session they go to the session's log (furing_config.log). @fn NULL:
 * nowhere. The tool gives furing_log_stderr, as for its session. */
struct export_log {
	furing_log_fn fn;
	void *data;
};

struct export_opts {
	const char *image;   /* a path, or an NBD URI (export_is_nbd_uri) */
	const char *format;  /* NULL or "raw": the file itself; else qemu-nbd --format */
	bool writable;
	bool growable;       /* writes past the end and truncate-up grow the image */
	bool backend_direct; /* O_DIRECT on the image */
	bool writethrough;   /* every write durable before it is acknowledged */
	enum export_cache cache;
	enum export_io backend_io;
	unsigned int workers;     /* worker threads the session will have (NBD: connections to open) */
	unsigned int nbd_timeout_s; /* NBD: an unanswered request resets its connection after this; 0: never */
	enum export_kpt kernel_passthrough;
	struct export_log log;
};

#define EXPORT_NBD_TIMEOUT_DEFAULT 30

struct export;

/* nbd://, nbds://, nbd+unix://, ... : what libnbd connects to. */
bool export_is_nbd_uri(const char *image);

/* Opens and checks the image, or connects to the NBD server (starting
 * qemu-nbd first for a --format); NULL with @err (one line) on failure. */
struct export *export_open(const struct export_opts *o, char *err, size_t errlen);
/* After the session ended: acknowledged writes made durable, everything
 * stopped and freed. Returns 0, or -1 after logging (o->log) why that failed. */
int export_close(struct export *e);
/* How many worker threads the backend can feed (0: any). */
unsigned int export_max_workers(const struct export *e);
/* A few words for the "serving" line ("2 NBD connections"), or NULL. */
const char *export_describe(const struct export *e);
/* Why kernel passthrough cannot serve this export (one phrase), or NULL
 * when it may: checked before mounting. */
const char *export_passthrough_refused(const struct export *e);
/* After the start: whether reads (and a writable export's writes) go
 * through the kernel (the kernel granted it), for the "serving" line. */
bool export_passthrough_active(const struct export *e, const struct furing_session *s);
/* After the session: the image file's size when writes through kernel
 * passthrough went past the export's end and extended it (the kernel does
 * not hold them to the size), else 0. */
uint64_t export_image_grew(const struct export *e);
/* The root mode of the mount: S_IFREG plus permissions. */
mode_t export_root_mode(const struct export *e);
uint64_t export_size(const struct export *e);
/* While serving, from any thread: the backend cannot reach its storage
 * now (an NBD server lost, a --format's qemu-nbd gone), so requests fail
 * with EIO. Always false for an image file. */
bool export_backend_unreachable(const struct export *e);
/* Whether export_backend_unreachable can ever say true (a backend over a
 * connection: NBD): what a watcher of it must poll for. */
bool export_backend_can_fail(const struct export *e);

extern const struct furing_ops export_ops;

#endif
