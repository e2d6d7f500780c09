/* libfuring: a FUSE server engine with two transports, legacy /dev/fuse and
 * FUSE-over-io_uring, behind one interface.
 *
 * A filesystem fills in a struct furing_ops and hands it to a session. Each
 * request reaches one callback together with a struct furing_req handle; the
 * callback answers exactly once with one of the furing_reply_*() calls, either
 * before it returns or later, from the completion of I/O it submitted with
 * furing_req_pread() and friends on the worker's own io_uring. Until the reply
 * the handle, its argument pointers and its data buffer stay valid; after the
 * reply none of them may be touched.
 *
 * Threads: a session runs N worker threads; a request's callbacks, its I/O
 * completions and its reply all run on the worker that received it, so a
 * filesystem needs no locking for per-request state. Callbacks must not block
 * for long: a blocked callback stalls every request of its worker. */
#ifndef FURING_FURING_H
#define FURING_FURING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct furing_req;
struct furing_session;

/* What a request came with, for permission checks and logging. */
struct furing_ctx {
	uint32_t uid, gid, pid;
};

/* SETATTR: which fields to change (FURING_SET_*) and their new values. */
#define FURING_SET_MODE (1u << 0)
#define FURING_SET_UID (1u << 1)
#define FURING_SET_GID (1u << 2)
#define FURING_SET_SIZE (1u << 3)
#define FURING_SET_ATIME (1u << 4)
#define FURING_SET_MTIME (1u << 5)
#define FURING_SET_ATIME_NOW (1u << 7)
#define FURING_SET_MTIME_NOW (1u << 8)
#define FURING_SET_CTIME (1u << 10)

struct furing_setattr {
	uint32_t valid; /* FURING_SET_* */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t size;
	struct timespec atime, mtime, ctime;
	uint64_t fh; /* the open file's handle, or 0 when set by path */
	bool has_fh;
};

/* Open results a filesystem may ask for (furing_reply_open flags). */
#define FURING_OPEN_DIRECT_IO (1u << 0)       /* bypass the kernel page cache */
#define FURING_OPEN_KEEP_CACHE (1u << 1)      /* keep cached pages across opens */
#define FURING_OPEN_PARALLEL_WRITES (1u << 6) /* direct writes need no inode lock */

/* What the engine negotiated with the kernel, given to ops->init. */
struct furing_conn_info {
	uint32_t proto_major, proto_minor;
	uint32_t max_write;      /* largest WRITE payload the kernel will send */
	uint32_t max_read;       /* largest READ the kernel will ask for */
	bool over_io_uring;      /* requests will arrive through ring queues */
	unsigned int nr_workers; /* worker threads serving the session */
};

/* The operations a filesystem implements. NULL entries answer -ENOSYS
 * (FORGET: nothing). Node ids are the kernel's: 1 is the root. */
struct furing_ops {
	void (*init)(void *fs, const struct furing_conn_info *info);
	void (*destroy)(void *fs);

	void (*lookup)(struct furing_req *req, uint64_t parent, const char *name);
	void (*forget)(void *fs, uint64_t ino, uint64_t nlookup);
	void (*getattr)(struct furing_req *req, uint64_t ino, const uint64_t *fh);
	void (*setattr)(struct furing_req *req, uint64_t ino, const struct furing_setattr *attr);

	void (*open)(struct furing_req *req, uint64_t ino, int flags);
	void (*release)(struct furing_req *req, uint64_t ino, uint64_t fh, int flags);
	void (*flush)(struct furing_req *req, uint64_t ino, uint64_t fh);
	void (*fsync)(struct furing_req *req, uint64_t ino, uint64_t fh, bool datasync);

	/* READ: put at most @size bytes into furing_req_buf(req) and answer with
	 * furing_reply_buf(req, n). */
	void (*read)(struct furing_req *req, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size);
	/* WRITE: @data (@size bytes) stays valid until the reply. */
	void (*write)(struct furing_req *req, uint64_t ino, uint64_t fh, uint64_t off, const void *data,
		      uint32_t size);
	void (*fallocate)(struct furing_req *req, uint64_t ino, uint64_t fh, int mode, uint64_t off,
			  uint64_t len);
	void (*lseek)(struct furing_req *req, uint64_t ino, uint64_t fh, uint64_t off, int whence);
	void (*statfs)(struct furing_req *req, uint64_t ino);
};

/* ---- answering a request: call exactly one, exactly once ---- */

/* Error answer; @err is a positive errno (0 means success with no data). */
void furing_reply_err(struct furing_req *req, int err);
/* Success with no data (FLUSH, FSYNC, RELEASE, FALLOCATE...). */
void furing_reply_ok(struct furing_req *req);
void furing_reply_attr(struct furing_req *req, const struct stat *st, double timeout_s);
void furing_reply_entry(struct furing_req *req, uint64_t ino, const struct stat *st, double timeout_s);
void furing_reply_open(struct furing_req *req, uint64_t fh, uint32_t open_flags);
void furing_reply_write(struct furing_req *req, uint32_t count);
void furing_reply_lseek(struct furing_req *req, uint64_t off);
void furing_reply_statfs(struct furing_req *req, const struct statvfs *st);
/* Data answer from the request's own buffer (see furing_req_buf). */
void furing_reply_buf(struct furing_req *req, size_t len);
/* Data answer copied from elsewhere (len <= furing_req_buf_size). */
void furing_reply_data(struct furing_req *req, const void *data, size_t len);

/* ---- what a handler may ask of its request ---- */

void *furing_req_fs(const struct furing_req *req); /* the session's fs pointer */
const struct furing_ctx *furing_req_ctx(const struct furing_req *req);
/* The buffer a data answer is sent from: the ring entry's payload buffer or
 * the /dev/fuse channel's page-aligned buffer. Land READ data here to avoid a
 * copy. Page-aligned, furing_req_buf_size() bytes. */
void *furing_req_buf(struct furing_req *req);
size_t furing_req_buf_size(const struct furing_req *req);
/* 64 bytes of scratch space for the filesystem, 16-byte aligned, live until
 * the reply. */
void *furing_req_scratch(struct furing_req *req);
#define FURING_REQ_SCRATCH_SIZE 64

/* ---- asynchronous I/O on the worker's io_uring ----
 * One operation at a time per request: submit, and @done runs on the same
 * worker with the result (bytes, or -errno), where it may submit the next one
 * or reply. The submission is sent with the worker's next batch. */
typedef void (*furing_io_done)(struct furing_req *req, int res);

void furing_req_pread(struct furing_req *req, int fd, void *buf, uint32_t len, uint64_t off,
		      furing_io_done done);
void furing_req_pwrite(struct furing_req *req, int fd, const void *buf, uint32_t len, uint64_t off,
		       furing_io_done done);
void furing_req_fsync(struct furing_req *req, int fd, bool datasync, furing_io_done done);
void furing_req_fallocate(struct furing_req *req, int fd, int mode, uint64_t off, uint64_t len,
			  furing_io_done done);

/* ---- sessions ---- */

enum furing_io_uring_mode {
	FURING_IO_URING_AUTO = 0, /* ring when the kernel offers it, else /dev/fuse with a note */
	FURING_IO_URING_ON,       /* ring or refuse to start */
	FURING_IO_URING_OFF,      /* always /dev/fuse */
};

enum furing_pin {
	FURING_PIN_OFF = 0, /* the scheduler places workers */
	FURING_PIN_ON,      /* ring: each worker on the CPUs of its queues; /dev/fuse: worker i on CPU i */
};

struct furing_config {
	const char *fsname;          /* first field of /proc/mounts; default "furing" */
	const char *subtype;         /* mount type "fuse.<subtype>"; default "furing" */
	mode_t root_mode;            /* S_IFREG or S_IFDIR with permissions */
	bool allow_other;            /* let other users use the mount */
	bool read_only;              /* mount MS_RDONLY */
	unsigned int threads;        /* worker threads; 0 = online CPUs */
	enum furing_io_uring_mode io_uring;
	unsigned int queue_depth;    /* ring entries per queue; 0 = default */
	uint32_t payload_size;       /* ring entry payload bytes; 0 = max_write */
	uint32_t max_write;          /* 0 = 1 MiB */
	uint16_t max_background;     /* 0 = default (enough for deep async DIO) */
	enum furing_pin pin;         /* bind workers to CPUs (default off: bench/README.md) */
	bool debug;                  /* one line per request on stderr */
	bool direct_io_allow_mmap;   /* ask for FUSE_DIRECT_IO_ALLOW_MMAP */
};

/* Creates a session; nothing is mounted yet. Returns NULL and fills @err
 * (one line, no newline) on failure. */
struct furing_session *furing_session_new(const struct furing_ops *ops, void *fs,
					  const struct furing_config *cfg, char *err, size_t errlen);
/* Mounts, negotiates FUSE_INIT and starts the workers; on return requests are
 * being served. Returns 0, or -1 with @err filled. */
int furing_session_start(struct furing_session *s, const char *mountpoint, char *err, size_t errlen);
/* Waits until the filesystem is unmounted (by anyone) or SIGINT/SIGTERM
 * arrives, then drains, unmounts and joins the workers. SIGUSR1 prints the
 * counters. Returns 0 on a clean stop, 1 on a fatal error (reported on stderr). */
int furing_session_wait(struct furing_session *s);
/* One "key=value ..." line of the counters (requests per transport, queue and
 * opcode, errors, bytes). */
void furing_session_stats_line(struct furing_session *s, char *buf, size_t len);
void furing_session_destroy(struct furing_session *s);

/* Asks a running session to stop, as SIGTERM does; safe from any thread. */
void furing_session_stop(struct furing_session *s);

#ifdef __cplusplus
}
#endif
#endif
