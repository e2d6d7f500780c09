/* Where the exported file's bytes live: the contract between the export
 * (export.c: one FUSE file, its size rules, its attributes) and a backend.
 *
 * Three implementations, none knowing the others:
 *   backend_file.c  a raw image file or a block device, I/O on the worker's
 *                   io_uring (or inline copies on tmpfs);
 *   backend_nbd.c   a disk a network block device server offers: libnbd
 *                   connects, the data moves on the worker's io_uring;
 *   backend_rbd.c   a Ceph RBD image, librbd's asynchronous API, its
 *                   completions reaching the worker's io_uring by eventfd.
 *
 * THREADS AND REQUESTS. Every data-path call (io, sync, fallocate, seek)
 * runs on the worker that received the request and must not block it. It
 * finishes exactly once, on that same worker, either by calling @done or
 * (seek) by answering the request itself; possibly before it returns (an
 * inline copy, a refusal), possibly later from a completion. Until then the
 * request's buffers stay valid.
 *
 * SCRATCH. The request scratch (FURING_REQ_SCRATCH_SIZE bytes) is shared:
 * the export's own state lives in its first BACKEND_SCRATCH_OFFSET bytes,
 * the backend may use the rest for the calls that end in @done. A call
 * that answers the request itself (seek) owns the whole scratch.
 *
 * RESULTS. @done gets what a system call would return: bytes moved (io; a
 * count below @len is a partial transfer the export continues, 0 on a read
 * means the end), 0 (sync, fallocate), or a negative errno. Errors the
 * application should see as I/O errors are -EIO; a backend that loses its
 * storage answers -EIO and never leaves a request unanswered.
 *
 * WORKERS. worker_start runs on each worker thread before it serves (it may
 * arm worker events and set the worker's data pointer, which then belongs to
 * the backend), worker_stop when it stopped serving. max_workers says how
 * many workers the backend can feed (an NBD server without multi-conn gets
 * one connection, so one worker); the tool sizes the session to it.
 *
 * SIZE. The export owns the size (it changes with truncate and growable
 * writes); `resizable` says whether the storage can change size at all
 * (a regular image file can, a device or an NBD disk cannot). */
#ifndef FURING_EXPORT_BACKEND_H
#define FURING_EXPORT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <furing/furing.h>

#define BACKEND_SCRATCH_OFFSET 32
#define BACKEND_SCRATCH_SIZE (FURING_REQ_SCRATCH_SIZE - BACKEND_SCRATCH_OFFSET)

static inline void *backend_scratch(struct furing_req *req)
{
	return (char *)furing_req_scratch(req) + BACKEND_SCRATCH_OFFSET;
}

struct backend;

struct backend_ops {
	/* Reads @len bytes at @off into @buf, or writes them from @buf. */
	void (*io)(struct backend *b, struct furing_req *req, bool write, void *buf, uint32_t len, uint64_t off,
		   furing_io_done done);
	/* Zero-copy (Linux 7.3; NULL where the backend cannot): the same with
	 * the caller's pages the kernel lent to @req (furing_req_zero_copy),
	 * from byte @at of them; @page_cache: never O_DIRECT (their alignment
	 * was refused). */
	void (*io_zc)(struct backend *b, struct furing_req *req, bool write, uint32_t at, uint32_t len, uint64_t off,
		      bool page_cache, furing_io_done done);
	/* Makes every write acknowledged so far durable. */
	void (*sync)(struct backend *b, struct furing_req *req, bool datasync, furing_io_done done);
	/* @mode is one the export accepts: 0 or FALLOC_FL_KEEP_SIZE (allocate),
	 * FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (deallocate, reads as
	 * zeros), FALLOC_FL_ZERO_RANGE [| KEEP_SIZE] (zeros, stays allocated).
	 * A range that would grow the storage only reaches a resizable one. */
	void (*fallocate)(struct backend *b, struct furing_req *req, int mode, uint64_t off, uint64_t len,
			  furing_io_done done);
	/* SEEK_DATA or SEEK_HOLE from @off < @size: answers @req itself with
	 * furing_reply_lseek (at most @size) or an error (ENXIO: no data after
	 * @off). */
	void (*seek)(struct backend *b, struct furing_req *req, uint64_t off, int whence, uint64_t size);

	/* Metadata, rare, answered at once (return 0 or a positive errno). */
	/* Fills times, st_blocks, st_blksize, st_dev; the export sets the rest. */
	int (*stat)(struct backend *b, struct stat *st);
	int (*statfs)(struct backend *b, struct statvfs *st);
	/* Only called on a resizable backend. */
	int (*truncate)(struct backend *b, uint64_t size);
	/* ts[0] atime, ts[1] mtime, UTIME_NOW / UTIME_OMIT as for futimens. */
	int (*set_times)(struct backend *b, const struct timespec ts[2]);

	/* Optional: a read-only file descriptor of the storage that the kernel
	 * may read itself (FUSE passthrough), owned by the backend; -1 when the
	 * storage is not a local file. */
	int (*passthrough_fd)(struct backend *b);

	/* Optional: true while the storage cannot be reached (an NBD server
	 * lost; every request fails with EIO until it is back). From any
	 * thread, cheap: the daemon asks every second. */
	bool (*unreachable)(struct backend *b);

	/* Optional. See WORKERS above. */
	int (*worker_start)(struct backend *b, struct furing_worker *w);
	void (*worker_stop)(struct backend *b, struct furing_worker *w);

	/* After the session ended (no worker runs): makes acknowledged writes
	 * durable and frees everything. Returns 0, or -1 after logging one
	 * line (export_opts.log) when that failed (acknowledged writes may be
	 * lost). */
	int (*close)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	uint64_t size;            /* at open */
	bool resizable;           /* truncate/grow possible (a regular image file) */
	unsigned int max_workers; /* 0: any number */
	const char *describe;     /* for the "serving" line, e.g. "2 NBD connections"; may be NULL */
	const char *not_local;    /* no passthrough_fd: why (one phrase); NULL says NBD */
};

#endif
