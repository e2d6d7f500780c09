/* libfuring: a FUSE server library built around FUSE-over-io_uring, with the
 * legacy /dev/fuse transport behind the same interface.
 *
 * A filesystem fills in a struct furing_ops and hands it to a session. Each
 * request the kernel sends reaches one operation together with a struct
 * furing_req handle; the operation answers exactly once with one of the
 * furing_reply_*() calls, either before it returns or later, from the
 * completion of I/O it submitted on the worker's own io_uring
 * (furing_req_pread(), furing_req_sqe(), ...). Until the answer, the handle,
 * the argument pointers it came with and its data buffer stay valid; after
 * the answer none of them may be touched.
 *
 * THREADS. A session runs N worker threads, each with one io_uring. A
 * request's operation, the completions of the I/O it submits and its answer
 * all run on the worker that received it, so per-request state needs no
 * locking; state shared between requests (an inode table, say) is touched by
 * every worker and needs the filesystem's own locking. Operations must not
 * block: a blocked operation stalls every request of its worker. Long work
 * goes on the ring (furing_req_sqe) or to a thread of the filesystem's own,
 * which may then answer from that thread (furing_reply_* are safe from any
 * thread for a request that has not been answered yet, see "answering from
 * another thread" below).
 *
 * ERRORS, one convention everywhere:
 *   - furing_reply_err() takes a positive errno (ENOENT), as the FUSE
 *     protocol's readers expect to write it;
 *   - completions (furing_io_done, furing_event_fn) receive what the system
 *     call would have returned, or a negative errno (io_uring's convention);
 *   - library calls that can fail return 0 (or a non-negative count or id)
 *     on success and a negative errno on failure; the ones that take
 *     (char *err, size_t errlen) also write a one-line reason there, naming
 *     the library call or configuration field at fault.
 *
 * A LIBRARY IS A GUEST. libfuring installs no signal handler, changes no
 * signal mask of the application's threads and never forks (unless
 * furing_session_handle_signals() or furing_main() is called), prints
 * nothing (messages go to furing_config.log, and are dropped without one;
 * furing_log_stderr prints them; furing_main reports its failure on
 * stderr) and reads no environment variable (but PATH, to find fusermount3
 * when not root, as execvp would).
 *
 * VERSIONING. Structs passed in (furing_ops, furing_config) are sized by the
 * caller (the *_size arguments): fields are only ever added at their end, so
 * a program built against an older header keeps working with a newer
 * library. Zero-initialise them; zero means "the default" throughout. */
#ifndef FURING_FURING_H
#define FURING_FURING_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FURING_VERSION_MAJOR 0
#define FURING_VERSION_MINOR 3
#define FURING_VERSION_PATCH 0
/* e.g. 0x000200 for 0.2.0: compare with #if FURING_VERSION_NUMBER >= ... */
#define FURING_VERSION_NUMBER ((FURING_VERSION_MAJOR << 16) | (FURING_VERSION_MINOR << 8) | FURING_VERSION_PATCH)

/* The library's version, "MAJOR.MINOR.PATCH", which may differ from the
 * header the program was built with. */
const char *furing_version(void);

struct furing_req;
struct furing_session;
struct furing_worker;
struct io_uring_sqe;
struct statx;
struct flock;

/* ===================================================================== */
/* What arrives with a request                                            */
/* ===================================================================== */

/* The caller of the system call that caused the request. */
struct furing_ctx {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	/* The caller's umask, for creating operations (mknod, mkdir, create,
	 * tmpfile) when FURING_CAP_DONT_MASK was granted; else the kernel has
	 * already applied it to the mode and this is 0. */
	mode_t umask;
};

/* An open file or directory, as the kernel describes it in a request.
 * `fh` is whatever the filesystem answered to open/create/opendir. */
struct furing_file {
	uint64_t fh;
	int flags;           /* open(2) flags: open, create, tmpfile, opendir, release, releasedir */
	uint32_t req_flags;  /* FURING_FILE_* */
	uint64_t lock_owner; /* flush, release, locks; and read/write/setattr with FURING_FILE_LOCK_OWNER */
};

#define FURING_FILE_KILL_SUIDGID (1u << 0) /* open/create/write: clear setuid/setgid (HANDLE_KILLPRIV_V2) */
#define FURING_FILE_WRITE_CACHE (1u << 1)  /* write: from the kernel's writeback cache (fh may be any handle) */
#define FURING_FILE_LOCK_OWNER (1u << 2)   /* lock_owner is valid */
#define FURING_FILE_FLUSH (1u << 3)        /* release: also flush (the kernel sent no FLUSH) */
#define FURING_FILE_FLOCK_UNLOCK (1u << 4) /* release: drop the flock(2) locks of lock_owner */

/* SETATTR: which fields to change (FURING_SET_*, equal to the kernel's
 * FATTR_* bits) and their new values. */
#define FURING_SET_MODE (1u << 0)
#define FURING_SET_UID (1u << 1)
#define FURING_SET_GID (1u << 2)
#define FURING_SET_SIZE (1u << 3)
#define FURING_SET_ATIME (1u << 4)
#define FURING_SET_MTIME (1u << 5)
#define FURING_SET_ATIME_NOW (1u << 7)
#define FURING_SET_MTIME_NOW (1u << 8)
#define FURING_SET_CTIME (1u << 10)
#define FURING_SET_KILL_SUIDGID (1u << 11) /* clear setuid/setgid as a write would */

struct furing_setattr {
	uint32_t valid; /* FURING_SET_* */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t size;
	struct timespec atime, mtime, ctime;
};

/* The times a SETATTR sets, as utimensat(2) and futimens(2) take them:
 * fills @ts[0] (access) and @ts[1] (modification) with the new time,
 * UTIME_NOW for FURING_SET_*TIME_NOW, or UTIME_OMIT for a time that stays.
 * Returns false, with both UTIME_OMIT, when @a changes neither time. */
bool furing_setattr_times(const struct furing_setattr *a, struct timespec ts[2]);

/* BATCH_FORGET entries (layout of the kernel's fuse_forget_one). */
struct furing_forget {
	uint64_t ino;
	uint64_t nlookup;
};

/* ===================================================================== */
/* FUSE_INIT: what the kernel offers, what the filesystem asks for         */
/* ===================================================================== */

/* Capabilities (FURING_CAP_*): the kernel's FUSE_INIT flag bits, the 32 high
 * bits being its "flags2" word. The library checks at build time that every
 * one equals the kernel's. Only the ones a filesystem decides are listed;
 * the engine sets the transport's own (INIT_EXT, MAX_PAGES, BIG_WRITES,
 * OVER_IO_URING) itself. */
#define FURING_CAP_ASYNC_READ (1ull << 0)         /* several READs of one file at once */
#define FURING_CAP_POSIX_LOCKS (1ull << 1)        /* getlk/setlk reach the filesystem */
#define FURING_CAP_ATOMIC_O_TRUNC (1ull << 3)     /* open(O_TRUNC) truncates in the filesystem's open */
#define FURING_CAP_EXPORT_SUPPORT (1ull << 4)     /* lookups of "." and ".." (NFS export) */
#define FURING_CAP_DONT_MASK (1ull << 6)          /* the kernel leaves the umask to the filesystem */
#define FURING_CAP_FLOCK_LOCKS (1ull << 10)       /* flock(2) reaches the filesystem */
#define FURING_CAP_IOCTL_DIR (1ull << 11)         /* ioctl on directories */
#define FURING_CAP_AUTO_INVAL_DATA (1ull << 12)   /* drop cached data when mtime/size change */
#define FURING_CAP_READDIRPLUS (1ull << 13)       /* readdirplus instead of readdir */
#define FURING_CAP_READDIRPLUS_AUTO (1ull << 14)  /* ... only when the kernel thinks it pays */
#define FURING_CAP_ASYNC_DIO (1ull << 15)         /* one O_DIRECT aio may become several requests at once */
#define FURING_CAP_WRITEBACK_CACHE (1ull << 16)   /* buffered writes are cached and written back */
#define FURING_CAP_NO_OPEN_SUPPORT (1ull << 17)   /* ENOSYS from open: the kernel stops sending it */
#define FURING_CAP_PARALLEL_DIROPS (1ull << 18)   /* lookups and readdirs of a directory in parallel */
#define FURING_CAP_HANDLE_KILLPRIV (1ull << 19)   /* the filesystem clears suid/sgid on write/chown/truncate */
#define FURING_CAP_POSIX_ACL (1ull << 20)         /* the kernel enforces system.posix_acl_* xattrs */
#define FURING_CAP_CACHE_SYMLINKS (1ull << 23)    /* readlink answers are cached */
#define FURING_CAP_NO_OPENDIR_SUPPORT (1ull << 24) /* ENOSYS from opendir: the kernel stops sending it */
#define FURING_CAP_EXPLICIT_INVAL_DATA (1ull << 25) /* cached data is only dropped by notifications */
#define FURING_CAP_HANDLE_KILLPRIV_V2 (1ull << 28) /* like HANDLE_KILLPRIV, with FURING_FILE_KILL_SUIDGID */
#define FURING_CAP_SETXATTR_EXT (1ull << 29)      /* setxattr carries flags (ACL kill-sgid) */
#define FURING_CAP_SECURITY_CTX (1ull << 32)      /* creating requests carry a security context (ignored) */
#define FURING_CAP_CREATE_SUPP_GROUP (1ull << 34) /* creating requests carry a supplementary group (ignored) */
#define FURING_CAP_EXPIRE_ONLY (1ull << 35)       /* kernel only: furing_notify_inval_entry may expire only */
#define FURING_CAP_DIRECT_IO_ALLOW_MMAP (1ull << 36) /* mmap of FURING_OPEN_DIRECT_IO files */
#define FURING_CAP_PASSTHROUGH (1ull << 37)       /* kernel passthrough to backing files (needs CAP_SYS_ADMIN) */
#define FURING_CAP_NO_EXPORT_SUPPORT (1ull << 38) /* refuse NFS export of this mount */
#define FURING_CAP_OVER_IO_URING (1ull << 41)     /* read-only in init: set by the engine from furing_config.io_uring */

struct furing_conn {
	/* Read-only in init(): */
	uint32_t proto_major, proto_minor; /* the kernel's protocol version */
	uint64_t capable;                  /* FURING_CAP_* the kernel offers */
	bool over_io_uring;                /* requests will come through ring queues */
	unsigned int nr_workers;           /* worker threads */

	/* init() may change these; they start at the library's defaults: */
	uint64_t want;                 /* FURING_CAP_* to ask for; starts at FURING_CAP_DEFAULTS & capable,
	                                  plus what the operations table implies (see below) */
	uint32_t max_write;            /* largest WRITE; may only be lowered */
	uint32_t max_readahead;        /* starts at the kernel's */
	uint16_t max_background;       /* concurrent background requests (async DIO, readahead, writeback) */
	uint16_t congestion_threshold; /* 0 = 3/4 of max_background */
	uint32_t time_gran;            /* timestamp granularity in ns (1 = ns; 1000000000 = s) */
	uint32_t max_stack_depth;      /* with FURING_CAP_PASSTHROUGH: 1 (backing files are not FUSE)
	                                  or 2 (they may be on one FUSE level) */

	/* Filled in by the engine after init() returned, and readable through
	 * furing_session_conn() for the rest of the session: */
	uint64_t granted; /* what the answer asked for: want & capable, plus the engine's own */
};

/* Asked for by default when offered. The operations table adds:
 * POSIX_LOCKS (getlk and setlk set), FLOCK_LOCKS (flock set), READDIRPLUS
 * and READDIRPLUS_AUTO (readdirplus set), IOCTL_DIR (ioctl set),
 * SETXATTR_EXT (setxattr set), NO_OPEN_SUPPORT (open NULL),
 * NO_OPENDIR_SUPPORT (opendir NULL). */
#define FURING_CAP_DEFAULTS                                                                                       \
	(FURING_CAP_ASYNC_READ | FURING_CAP_ATOMIC_O_TRUNC | FURING_CAP_AUTO_INVAL_DATA | FURING_CAP_ASYNC_DIO | \
	 FURING_CAP_PARALLEL_DIROPS)

/* ===================================================================== */
/* The operations                                                         */
/* ===================================================================== */

/* Arguments: names, WRITE data and xattr values point into the request's
 * buffers and stay valid until the answer, like the struct furing_file,
 * furing_setattr and flock pointers (they live in the request). */

/* Node ids ("ino") are the filesystem's own 64-bit names for inodes, handed
 * to the kernel in entry answers; 1 (FURING_ROOT_ID) is the root. Every
 * entry answer with a non-zero ino (lookup, mknod, mkdir, symlink, link,
 * create, tmpfile, and each readdirplus entry other than "." and "..") adds
 * one to that node's lookup count; forget takes counts away, and a node may
 * be forgotten when its count reaches zero.
 *
 * A NULL operation answers ENOSYS. For most operations the kernel then
 * stops sending them for the rest of the mount (flush, fsync, fsyncdir,
 * xattrs, access, create (it falls back to mknod + open), interrupt, poll,
 * fallocate, lseek, copy_file_range, statx, tmpfile, syncfs; open and
 * opendir through NO_OPEN_SUPPORT / NO_OPENDIR_SUPPORT). Exceptions: a NULL
 * release or releasedir answers success, a NULL forget ignores the count.
 *
 * Operations without a struct furing_req get no answer; the others must
 * answer with the reply call named in their comment, or furing_reply_err. */
#define FURING_ROOT_ID 1

struct furing_ops {
	/* Before the INIT answer: choose capabilities and limits in @conn.
	 * Runs on the thread that called furing_session_start(). Returning a
	 * negative errno refuses the mount (start fails with that error). */
	int (*init)(void *fs, struct furing_conn *conn);
	/* After the session stopped serving, only if init ran (or there is no
	 * init); on the thread that called furing_session_destroy(). */
	void (*destroy)(void *fs);

	/* ---- names and inodes ---- */
	void (*lookup)(struct furing_req *req, uint64_t parent, const char *name); /* reply_entry */
	void (*forget)(void *fs, uint64_t ino, uint64_t nlookup);                  /* no answer */
	/* BATCH_FORGET; when NULL, forget is called once per entry. */
	void (*forget_multi)(void *fs, size_t count, const struct furing_forget *forgets); /* no answer */
	/* @fi: the open file the caller named (fstat), or NULL. */
	void (*getattr)(struct furing_req *req, uint64_t ino, const struct furing_file *fi); /* reply_attr */
	/* @fi: the open file (ftruncate, futimens), or NULL. */
	void (*setattr)(struct furing_req *req, uint64_t ino, const struct furing_setattr *attr,
			const struct furing_file *fi); /* reply_attr */
	void (*readlink)(struct furing_req *req, uint64_t ino); /* reply_readlink */
	void (*mknod)(struct furing_req *req, uint64_t parent, const char *name, mode_t mode,
		      dev_t rdev); /* reply_entry */
	/* @mode carries S_IFDIR. */
	void (*mkdir)(struct furing_req *req, uint64_t parent, const char *name, mode_t mode); /* reply_entry */
	void (*unlink)(struct furing_req *req, uint64_t parent, const char *name);            /* reply_err(0) */
	void (*rmdir)(struct furing_req *req, uint64_t parent, const char *name);             /* reply_err(0) */
	void (*symlink)(struct furing_req *req, const char *target, uint64_t parent,
			const char *name); /* reply_entry */
	/* @flags: 0 or RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT. */
	void (*rename)(struct furing_req *req, uint64_t parent, const char *name, uint64_t newparent,
		       const char *newname, unsigned int flags); /* reply_err(0) */
	void (*link)(struct furing_req *req, uint64_t ino, uint64_t newparent,
		     const char *newname); /* reply_entry */
	void (*access)(struct furing_req *req, uint64_t ino, int mask); /* reply_err(0) */
	void (*statfs)(struct furing_req *req, uint64_t ino);           /* reply_statfs */
	/* statx(2) with a mask; @fi may be NULL. */
	void (*statx)(struct furing_req *req, uint64_t ino, int flags, uint32_t mask,
		      const struct furing_file *fi); /* reply_statx */

	/* ---- files ---- */
	/* @fi->flags: the open(2) flags. Answer with the handle (furing_open.fh)
	 * that later requests on this open file carry in furing_file.fh. */
	void (*open)(struct furing_req *req, uint64_t ino, const struct furing_file *fi); /* reply_open */
	void (*create)(struct furing_req *req, uint64_t parent, const char *name, mode_t mode,
		       const struct furing_file *fi); /* reply_create */
	/* O_TMPFILE: an unnamed file in @parent. */
	void (*tmpfile)(struct furing_req *req, uint64_t parent, mode_t mode,
			const struct furing_file *fi); /* reply_create */
	/* Put at most @size bytes at furing_req_buf(req) and answer with
	 * furing_reply_buf(req, n); n < size means end of file (or a short
	 * read with FURING_OPEN_DIRECT_IO). */
	void (*read)(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
		     const struct furing_file *fi); /* reply_buf / reply_data / reply_iov */
	/* @data: @size bytes, valid until the answer. */
	void (*write)(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
		      const struct furing_file *fi); /* reply_write */
	void (*flush)(struct furing_req *req, uint64_t ino, const struct furing_file *fi); /* reply_err(0) */
	void (*release)(struct furing_req *req, uint64_t ino, const struct furing_file *fi); /* reply_err(0) */
	void (*fsync)(struct furing_req *req, uint64_t ino, bool datasync,
		      const struct furing_file *fi); /* reply_err(0) */
	/* @mode: 0 or FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE. */
	void (*fallocate)(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
			  const struct furing_file *fi); /* reply_err(0) */
	/* Only SEEK_DATA and SEEK_HOLE reach the filesystem. */
	void (*lseek)(struct furing_req *req, uint64_t ino, uint64_t off, int whence,
		      const struct furing_file *fi); /* reply_lseek */
	/* Both protocol forms (the 32-bit and the 64-bit count) arrive here. */
	void (*copy_file_range)(struct furing_req *req, uint64_t ino_in, uint64_t off_in,
				const struct furing_file *fi_in, uint64_t ino_out, uint64_t off_out,
				const struct furing_file *fi_out, uint64_t len, uint64_t flags); /* reply_copy */

	/* ---- directories ---- */
	void (*opendir)(struct furing_req *req, uint64_t ino, const struct furing_file *fi); /* reply_open */
	/* Fill a struct furing_dirbuf over furing_req_buf(req) of at most
	 * @size bytes with the entries after cookie @off, and answer with
	 * furing_reply_dirbuf(); an empty answer means the end. */
	void (*readdir)(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			const struct furing_file *fi); /* reply_dirbuf */
	void (*readdirplus)(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			    const struct furing_file *fi); /* reply_dirbuf */
	void (*releasedir)(struct furing_req *req, uint64_t ino, const struct furing_file *fi); /* reply_err(0) */
	void (*fsyncdir)(struct furing_req *req, uint64_t ino, bool datasync,
			 const struct furing_file *fi); /* reply_err(0) */

	/* ---- extended attributes ---- */
	/* @flags: 0, XATTR_CREATE or XATTR_REPLACE; @xflags: FURING_SETXATTR_ACL_KILL_SGID. */
	void (*setxattr)(struct furing_req *req, uint64_t ino, const char *name, const void *value, size_t size,
			 int flags, uint32_t xflags); /* reply_err(0) */
	/* @size 0: answer the value's length with furing_reply_xattr_size();
	 * else the value (reply_data) or ERANGE when it is longer than @size. */
	void (*getxattr)(struct furing_req *req, uint64_t ino, const char *name,
			 size_t size); /* reply_xattr_size / reply_data */
	/* The names, each NUL-terminated, back to back; @size as for getxattr. */
	void (*listxattr)(struct furing_req *req, uint64_t ino, size_t size); /* reply_xattr_size / reply_data */
	void (*removexattr)(struct furing_req *req, uint64_t ino, const char *name); /* reply_err(0) */

	/* ---- locks ---- */
	/* POSIX record locks (fcntl F_GETLK/F_SETLK/F_SETLKW, and OFD locks):
	 * @lock in struct flock terms (l_len 0 = to the end, l_pid = owner's
	 * pid). setlk with @sleep may wait; an interrupted wait answers EINTR
	 * (see furing_req_interrupted). */
	void (*getlk)(struct furing_req *req, uint64_t ino, const struct furing_file *fi,
		      const struct flock *lock); /* reply_lock */
	void (*setlk)(struct furing_req *req, uint64_t ino, const struct furing_file *fi, const struct flock *lock,
		      bool sleep); /* reply_err(0) */
	/* flock(2): @op is LOCK_SH, LOCK_EX or LOCK_UN, possibly | LOCK_NB. */
	void (*flock)(struct furing_req *req, uint64_t ino, const struct furing_file *fi,
		      int op); /* reply_err(0) */

	/* ---- the rest ---- */
	/* INTERRUPT: the kernel would like the request with this unique (see
	 * furing_req_unique) to end early. It runs on whichever worker read the
	 * interrupt, which need not be the one serving that request; the engine
	 * also records it for furing_req_interrupted(). No answer. */
	void (*interrupt)(void *fs, uint64_t unique);
	/* @kh: the poll handle for furing_notify_poll() when @schedule_notify. */
	void (*poll)(struct furing_req *req, uint64_t ino, const struct furing_file *fi, uint64_t kh,
		     bool schedule_notify, uint32_t events); /* reply_poll */
	/* Restricted ioctl: @in_buf holds @in_size bytes (_IOW), at most
	 * @out_size bytes may be answered (_IOR). @flags: FURING_IOCTL_*. */
	void (*ioctl)(struct furing_req *req, uint64_t ino, unsigned int cmd, uint64_t arg,
		      const struct furing_file *fi, unsigned int flags, const void *in_buf, size_t in_size,
		      size_t out_size); /* reply_ioctl */
	void (*syncfs)(struct furing_req *req, uint64_t ino); /* reply_err(0) */
	/* The kernel's answer to furing_notify_retrieve(): @size bytes of the
	 * cached data of @ino at @off, valid during the call. No answer. */
	void (*retrieve_reply)(struct furing_req *req, void *cookie, uint64_t ino, uint64_t off, const void *data,
			       size_t size);

	/* ---- per worker ---- */
	/* On each worker thread after its io_uring exists and before it serves
	 * its first request: the place to arm worker events (furing_worker_poll)
	 * and set furing_worker_set_data(). A negative errno fails the start. */
	int (*worker_start)(void *fs, struct furing_worker *w);
	/* On each worker thread when it stopped serving, before its ring is
	 * closed. Events still armed never complete: free them here. */
	void (*worker_stop)(void *fs, struct furing_worker *w);
};

#define FURING_SETXATTR_ACL_KILL_SGID (1u << 0)
#define FURING_IOCTL_COMPAT (1u << 0) /* a 32-bit caller on a 64-bit kernel */
#define FURING_IOCTL_DIR (1u << 4)    /* on a directory */

/* ===================================================================== */
/* Answering a request: exactly one call, exactly once                   */
/* ===================================================================== */

/* Answering from another thread: every furing_reply_* call may be made
 * from any thread, once, and at any moment after the operation was called,
 * also while the operation is still running on its worker (a reply that
 * races the operation's return).
 *
 * THE RULE: the reply call ends the filesystem's hold on the request. From
 * the moment any thread enters furing_reply_* (or a furing_dirbuf answer),
 * nobody may touch the handle, its arguments (names, data, furing_file,
 * ...), its buffer, its scratch or its furing_req_data, not even the
 * operation that is still running: an operation that hands its request to
 * another thread (or to a completion that may run at once, see
 * furing_req_pread) must do so as its last use of it. Copy what is needed
 * afterwards first, and take furing_req_data before the reply. Returning
 * from the operation afterwards is always safe: the library takes the
 * request's slot back only on the worker, once the operation has returned,
 * so a handle is never reused for a new request while its operation runs.
 *
 * When the kernel sees such an answer: on /dev/fuse at once (it is written
 * from the replying thread); over io_uring once the worker is back in its
 * loop (it sends the commit), i.e. not before the operation returned. On
 * the blocking fallback (no io_uring, furing_session_has_io_uring false)
 * a worker serves one request at a time: it waits for a pending answer
 * before it reads the next request. */

/* An error (positive errno), or success with nothing more (@err 0). */
void furing_reply_err(struct furing_req *req, int err);

/* lookup, mknod, mkdir, symlink, link: a node and its attributes.
 * ino 0 is a negative entry: the name does not exist, and the kernel may
 * remember that for entry_timeout (ENOENT with no caching otherwise). */
struct furing_entry {
	uint64_t ino;
	uint64_t generation; /* (ino, generation) is unique for the filesystem's life */
	struct stat attr;    /* attr.st_ino is replaced by ino */
	double attr_timeout; /* seconds the kernel may cache attr */
	double entry_timeout; /* seconds the kernel may cache the name */
};
void furing_reply_entry(struct furing_req *req, const struct furing_entry *e);
void furing_reply_attr(struct furing_req *req, const struct stat *st, double timeout_s);
void furing_reply_readlink(struct furing_req *req, const char *target);

/* Open answers (FURING_OPEN_*, equal to the kernel's FOPEN_* bits). */
#define FURING_OPEN_DIRECT_IO (1u << 0)       /* bypass the page cache for this open file */
#define FURING_OPEN_KEEP_CACHE (1u << 1)      /* keep cached data from earlier opens */
#define FURING_OPEN_NONSEEKABLE (1u << 2)     /* a stream: the offset means nothing */
#define FURING_OPEN_CACHE_DIR (1u << 3)       /* opendir: the kernel may cache the entries */
#define FURING_OPEN_STREAM (1u << 4)          /* no file position at all */
#define FURING_OPEN_NOFLUSH (1u << 5)         /* no FLUSH on close */
#define FURING_OPEN_PARALLEL_WRITES (1u << 6) /* direct writes of one file need no inode lock */
#define FURING_OPEN_PASSTHROUGH (1u << 7)     /* reads and writes go to backing_id's file in the kernel */
/* Zero-copy (Linux 7.3, furing_session_zero_copy() true): the kernel lends
 * the caller's pages of this open file's READs and WRITEs to the server's
 * io_uring instead of copying them. Such a request has
 * furing_req_zero_copy() true: its data is not mapped (a READ's
 * furing_req_buf and a WRITE's data are NULL) and moves only with
 * furing_req_zc_pread / furing_req_zc_pwrite. Ask for it only in a
 * filesystem that handles those requests; the library drops the flag when
 * the session has no zero-copy queue, and a request that reaches a queue
 * without zero-copy comes with its data as usual. */
#define FURING_OPEN_ZERO_COPY (1u << 8)

struct furing_open {
	uint64_t fh;         /* the handle later requests carry in furing_file.fh */
	uint32_t flags;      /* FURING_OPEN_* */
	int32_t backing_id;  /* with FURING_OPEN_PASSTHROUGH: from furing_backing_open() */
};
/* open, opendir. */
void furing_reply_open(struct furing_req *req, const struct furing_open *o);
/* create, tmpfile: the new node and its open file. */
void furing_reply_create(struct furing_req *req, const struct furing_entry *e, const struct furing_open *o);

void furing_reply_write(struct furing_req *req, uint32_t count);
/* copy_file_range: bytes copied (clamped to 4 GiB - 1 for the 32-bit form). */
void furing_reply_copy(struct furing_req *req, uint64_t count);
void furing_reply_lseek(struct furing_req *req, uint64_t off);
void furing_reply_statfs(struct furing_req *req, const struct statvfs *st);
void furing_reply_statx(struct furing_req *req, const struct statx *stx, double timeout_s);
/* getxattr/listxattr with size 0: how long the answer would be. */
void furing_reply_xattr_size(struct furing_req *req, size_t size);
void furing_reply_lock(struct furing_req *req, const struct flock *lock);
void furing_reply_poll(struct furing_req *req, uint32_t revents);
/* ioctl: the call's result and the _IOR data (at most out_size bytes). */
void furing_reply_ioctl(struct furing_req *req, int result, const void *buf, size_t size);

/* Data answers. From the request's own buffer, where READ data should land
 * (no copy on either transport): */
void furing_reply_buf(struct furing_req *req, size_t len);
/* Copied from elsewhere (len <= furing_req_buf_size): */
void furing_reply_data(struct furing_req *req, const void *data, size_t len);
/* Gathered from up to FURING_REPLY_IOV_MAX buffers, in order (total <=
 * furing_req_buf_size); more buffers answer EIO. */
#define FURING_REPLY_IOV_MAX 16
void furing_reply_iov(struct furing_req *req, const struct iovec *iov, int count);

/* ---- directory listings ----
 * A builder over a buffer (normally furing_req_buf(req), limited to the
 * size the kernel asked for). Each entry carries the cookie of the NEXT
 * entry: a later readdir with off = that cookie continues after it. */
struct furing_dirbuf {
	char *buf;
	size_t size; /* capacity */
	size_t used; /* bytes filled */
	bool plus;   /* readdirplus entries */
};
/* Starts an empty listing for @req's readdir (@plus false) or readdirplus
 * (@plus true): the request's buffer, at most @size bytes. */
void furing_dirbuf_init(struct furing_dirbuf *d, struct furing_req *req, uint32_t size, bool plus);
/* Same over any buffer (for caching a listing, or unit tests). */
void furing_dirbuf_init_buf(struct furing_dirbuf *d, void *buf, size_t size, bool plus);
/* Adds one entry of a readdir listing: name, inode number and type
 * (from st->st_ino and the S_IFMT bits of st->st_mode). Returns false,
 * adding nothing, when it does not fit: the listing is full. */
bool furing_dirbuf_add(struct furing_dirbuf *d, const char *name, const struct stat *st, uint64_t next_off);
/* Adds one entry with its full attributes: in a readdirplus listing this
 * counts as a lookup of e->ino when it returns true (unless e->ino is 0,
 * where the kernel only lists the name, or the name is "." or ".."); in a
 * readdir listing it is furing_dirbuf_add with e->attr. */
bool furing_dirbuf_add_plus(struct furing_dirbuf *d, const char *name, const struct furing_entry *e,
			    uint64_t next_off);
/* Answers with the listing (which must be over the request's buffer, or
 * is copied). */
void furing_reply_dirbuf(struct furing_req *req, const struct furing_dirbuf *d);

/* ===================================================================== */
/* Asking about a request                                                 */
/* ===================================================================== */

void *furing_req_fs(const struct furing_req *req); /* the session's fs pointer */
const struct furing_ctx *furing_req_ctx(const struct furing_req *req);
struct furing_session *furing_req_session(const struct furing_req *req);
struct furing_worker *furing_req_worker(const struct furing_req *req);
/* The kernel's id of the request (what an INTERRUPT names). */
uint64_t furing_req_unique(const struct furing_req *req);
/* True once the kernel has interrupted this request (a signal reached the
 * caller); the filesystem may answer EINTR instead of finishing. */
bool furing_req_interrupted(const struct furing_req *req);
/* The buffer data answers are sent from: part of the ring entry's payload,
 * or of the /dev/fuse slot's buffer. READ data that lands here costs no
 * copy. For a request without names or data (READ, READDIR, READDIRPLUS,
 * COPY_FILE_RANGE, GETATTR, ...) it is page-aligned, so O_DIRECT I/O may
 * go through it, and at least max_write bytes; for a request with names or
 * data (LOOKUP, WRITE, SETXATTR, ...) it starts past them, 64-byte aligned,
 * so that filling it never overwrites an argument. */
void *furing_req_buf(struct furing_req *req);
size_t furing_req_buf_size(const struct furing_req *req);
/* 64 bytes of scratch for the filesystem, 16-byte aligned, until the answer. */
void *furing_req_scratch(struct furing_req *req);
#define FURING_REQ_SCRATCH_SIZE 64
/* Per-request data of any size: a pointer the filesystem attaches to the
 * request (state that does not fit the scratch, such as a furing_event
 * timer plus its own fields), found again with furing_req_data() from the
 * request's completions (furing_io_done) or another thread. Every request
 * arrives with NULL. The library never reads, copies or frees what it
 * points at: the memory is the filesystem's, and so is freeing it. Like the
 * handle, the pointer may only be used until the answer: read it before
 * answering, and free the memory after the answer (or before, once nothing
 * needs it). */
void furing_req_set_data(struct furing_req *req, void *data);
void *furing_req_data(const struct furing_req *req);

/* ===================================================================== */
/* I/O on the worker's io_uring, on behalf of a request                   */
/* ===================================================================== */

/* One operation at a time per request: submit, and @done runs later on the
 * same worker with the result (bytes, or -errno), where it may submit the
 * next one or answer. Submissions go out with the worker's next batch.
 * These four also work when the system has no io_uring (the engine's
 * blocking fallback): the call then runs at once and @done is called before
 * the function returns. */
typedef void (*furing_io_done)(struct furing_req *req, int res);

void furing_req_pread(struct furing_req *req, int fd, void *buf, uint32_t len, uint64_t off,
		      furing_io_done done);
void furing_req_pwrite(struct furing_req *req, int fd, const void *buf, uint32_t len, uint64_t off,
		       furing_io_done done);
void furing_req_fsync(struct furing_req *req, int fd, bool datasync, furing_io_done done);
void furing_req_fallocate(struct furing_req *req, int fd, int mode, uint64_t off, uint64_t len,
			  furing_io_done done);

/* Any operation io_uring offers (openat2, statx, mkdirat, renameat,
 * getxattr, ...): an SQE to fill with liburing's io_uring_prep_*() helpers;
 * its completion calls @done(req, cqe->res). Do not change the SQE's
 * user_data; IOSQE_IO_LINK chains are not supported. Returns NULL when the
 * session has no io_uring (furing_session_has_io_uring() is false). Memory
 * the SQE points at must stay valid until @done runs (the request's scratch
 * space and buffer do). */
struct io_uring_sqe *furing_req_sqe(struct furing_req *req, furing_io_done done);

/* Zero-copy READ and WRITE (FURING_OPEN_ZERO_COPY): true when this
 * request's data stays in the caller's pages, which the kernel registered
 * in the worker's io_uring buffer table for the life of the request. */
bool furing_req_zero_copy(const struct furing_req *req);
/* READ: @len bytes of @fd at @off into the request's pages at byte @at
 * (IORING_OP_READ_FIXED on the request's slot); answer with
 * furing_reply_buf(req, bytes). WRITE: @len bytes from the request's pages
 * at @at to @fd at @off (IORING_OP_WRITE_FIXED); answer with
 * furing_reply_write. @done as for furing_req_pread; -EINVAL for a request
 * that is not zero-copy or a range outside its data. */
void furing_req_zc_pread(struct furing_req *req, int fd, uint32_t at, uint32_t len, uint64_t off,
			 furing_io_done done);
void furing_req_zc_pwrite(struct furing_req *req, int fd, uint32_t at, uint32_t len, uint64_t off,
			  furing_io_done done);

/* ===================================================================== */
/* Worker events: I/O of the filesystem's own, not tied to a request       */
/* ===================================================================== */

/* Embed a struct furing_event in an object of yours, set fn, and arm it
 * with one of the calls below; fn(ev, res) then runs once on that worker.
 * An armed event must stay valid until fn has run (or until worker_stop,
 * after which no event completes). */
struct furing_event;
typedef void (*furing_event_fn)(struct furing_event *ev, int res);
struct furing_event {
	furing_event_fn fn;
	uint64_t engine_private[2]; /* the engine's (a timeout's time); do not touch */
};

unsigned int furing_worker_index(const struct furing_worker *w); /* 0 .. nr_workers-1 */
struct furing_session *furing_worker_session(const struct furing_worker *w);
void *furing_worker_data(const struct furing_worker *w);
void furing_worker_set_data(struct furing_worker *w, void *data);
/* One-shot poll of @fd for @events (POLLIN...): res = revents or -errno. */
int furing_worker_poll(struct furing_worker *w, struct furing_event *ev, int fd, uint32_t events);
/* Fires after @nsec nanoseconds: res = -ETIME (or -ECANCELED).
 * WITHOUT IO_URING (sysctl kernel.io_uring_disabled, so
 * furing_session_has_io_uring() is false) there are no worker timers: this
 * returns -EOPNOTSUPP at once, arms nothing and never calls ev->fn. A
 * filesystem that waits then does so on a thread of its own (a timerfd,
 * or a condition variable with a deadline) and answers from that thread;
 * while it waits, the blocking worker does not read another request (see
 * "answering from another thread"). Do not sleep in the operation: that
 * holds the worker as well, and with it whatever request would end the
 * wait. */
int furing_worker_timeout(struct furing_worker *w, struct furing_event *ev, uint64_t nsec);
/* Cancels an armed event: its fn runs with -ECANCELED (unless it had
 * already completed). */
int furing_worker_cancel(struct furing_worker *w, struct furing_event *ev);
/* Any io_uring operation, completing into @ev; NULL without io_uring. */
struct io_uring_sqe *furing_worker_sqe(struct furing_worker *w, struct furing_event *ev);
/* These return 0, or -EOPNOTSUPP without io_uring. They may only be called
 * on the worker's own thread (from its operations, completions, events or
 * worker_start). */

/* io_uring personalities: registers the credentials the calling thread has
 * at this moment (fsuid, fsgid, supplementary groups, capabilities) with the
 * worker's ring. An SQE given the id (sqe->personality = id, through
 * furing_req_sqe or furing_worker_sqe) runs with those credentials, whether
 * the kernel completes it at once or on one of its io-wq threads: the way to
 * create files as the caller of a request without blocking the worker. A
 * filesystem switches its own thread's credentials (per-thread system
 * calls), registers, and switches back; ids stay valid until unregistered
 * or the worker stops. Returns the id (> 0), -EOPNOTSUPP without io_uring,
 * or -errno. Worker thread only, like the calls above. */
int furing_worker_register_personality(struct furing_worker *w);
/* Drops a personality; SQEs already submitted with it keep their credentials. */
int furing_worker_unregister_personality(struct furing_worker *w, int id);

/* ===================================================================== */
/* Notifications from the filesystem to the kernel                        */
/* ===================================================================== */

/* From any thread while the session runs (between a successful start and
 * the end of wait). They return 0 or a negative errno: -ENOENT when the
 * kernel does not know the node (nothing to do), -ENOTCONN when the mount
 * is gone. They write to /dev/fuse and may wait for the kernel's inode
 * locks: calling inval_inode or store from an operation of a request on the
 * same node can deadlock; call them from elsewhere. */

/* Drops cached data of @ino in [off, off+len) (len 0: to the end; off < 0:
 * attributes only). */
int furing_notify_inval_inode(struct furing_session *s, uint64_t ino, int64_t off, int64_t len);
#define FURING_NOTIFY_EXPIRE_ONLY (1u << 0) /* mark stale instead of dropping (FURING_CAP_EXPIRE_ONLY) */
/* Drops the cached name @name in @parent. @flags: FURING_NOTIFY_EXPIRE_ONLY. */
int furing_notify_inval_entry(struct furing_session *s, uint64_t parent, const char *name, uint32_t flags);
/* The name @name in @parent, which pointed at @child, was deleted. */
int furing_notify_delete(struct furing_session *s, uint64_t parent, uint64_t child, const char *name);
/* Puts @size bytes of data into the kernel's cache of @ino at @off. */
int furing_notify_store(struct furing_session *s, uint64_t ino, uint64_t off, const void *data, size_t size);
/* Asks for @size bytes of the cached data of @ino at @off: they arrive in
 * ops->retrieve_reply with @cookie (with size 0 when nothing is cached). */
int furing_notify_retrieve(struct furing_session *s, uint64_t ino, uint64_t off, size_t size, void *cookie);
/* Wakes the pollers of poll handle @kh. */
int furing_notify_poll(struct furing_session *s, uint64_t kh);

/* ===================================================================== */
/* Kernel passthrough (FURING_CAP_PASSTHROUGH granted, CAP_SYS_ADMIN)     */
/* ===================================================================== */

/* Registers @fd (a file the filesystem opened) as a backing file: returns
 * its id (> 0) for furing_open.backing_id, or a negative errno (-EPERM
 * without CAP_SYS_ADMIN, -EOPNOTSUPP when passthrough was not granted). The
 * kernel keeps its own reference: @fd may be closed afterwards. */
int furing_backing_open(struct furing_session *s, int fd);
/* Drops a backing id once no open answer will use it any more (files
 * already opened with it keep working). */
int furing_backing_close(struct furing_session *s, int backing_id);

/* ===================================================================== */
/* Sessions                                                               */
/* ===================================================================== */

enum furing_io_uring_mode {
	FURING_IO_URING_AUTO = 0, /* ring when the kernel offers it, else /dev/fuse (logged once) */
	FURING_IO_URING_ON,       /* ring, or furing_session_start fails with the reason */
	FURING_IO_URING_OFF,      /* always /dev/fuse */
};

enum furing_pin {
	FURING_PIN_OFF = 0, /* the scheduler places workers */
	FURING_PIN_ON,      /* ring: each worker on the CPUs of its queues; /dev/fuse: worker i on CPU i */
	/* ring: a worker stays on its queues' CPUs while other workers serve
	 * other callers (callers on every CPU) and may run anywhere while it
	 * serves one caller alone (then it can spin on a CPU the caller does
	 * not need); decided every few milliseconds from what the workers
	 * serve (the caller's thread id of each request).
	 * /dev/fuse: as FURING_PIN_OFF. */
	FURING_PIN_AUTO,
};

/* Linux 7.3 FUSE-over-io_uring features (buffer pools, zero-copy). */
enum furing_feature {
	FURING_FEATURE_AUTO = 0, /* used when the kernel offers it (and, for zero-copy, furing has
	                            CAP_SYS_ADMIN); otherwise the serving line says why */
	FURING_FEATURE_ON,       /* used, or furing_session_start fails with the reason */
	FURING_FEATURE_OFF,      /* never */
};

enum furing_log_level {
	FURING_LOG_ERROR = 0, /* the session cannot go on */
	FURING_LOG_WARNING,   /* something did not work as asked; the session goes on */
	FURING_LOG_INFO,      /* start-up layout, counters on request */
	FURING_LOG_DEBUG,     /* one line per request (furing_config.debug) */
};
/* One message: one line, without a trailing newline. May be called from
 * any of the session's threads at once. */
typedef void (*furing_log_fn)(void *log_data, enum furing_log_level level, const char *msg);
/* A furing_log_fn for furing_config.log: every message it is given, as
 * "furing: <msg>" on stderr (@log_data unused). DEBUG messages come only
 * with furing_config.debug; to drop INFO (the start-up layout, counters),
 * wrap it in a callback of your own. */
void furing_log_stderr(void *log_data, enum furing_log_level level, const char *msg);

struct furing_config {
	/* The mount's source (first field of /proc/mounts); default "furing".
	 * 1 to 4095 bytes of any kind: a comma, backslash, '=' or newline stays
	 * part of the name (escaped for fusermount3), never becomes an option;
	 * an empty or longer name fails furing_session_new. Used until
	 * furing_session_start returns, like subtype and mount_options. */
	const char *fsname;
	const char *subtype;       /* mount type "fuse.<subtype>"; default "furing"; 1 to 255 bytes, as fsname */
	mode_t root_mode;          /* the root's type and permissions; default S_IFDIR | 0755 */
	bool allow_other;          /* let other users use the mount (fusermount3 needs user_allow_other) */
	bool read_only;            /* mount read-only */
	bool default_permissions;  /* the kernel checks permissions from the attributes */
	unsigned int threads;      /* worker threads; default: online CPUs */
	enum furing_io_uring_mode io_uring;
	unsigned int queue_depth;  /* ring entries per CPU queue, or requests in flight per worker
	                              on /dev/fuse; default 32 */
	uint32_t payload_size;     /* bytes per ring entry = the largest request; default max_write */
	uint32_t max_write;        /* default 1 MiB (capped by fs.fuse.max_pages_limit) */
	uint16_t max_background;   /* default: enough for every queue entry to be in flight */
	enum furing_pin pin;
	bool debug;                /* one FURING_LOG_DEBUG line per request */
	furing_log_fn log;         /* default NULL: messages are dropped; furing_log_stderr prints them */
	void *log_data;
	/* io_uring setup flags of the workers' rings, added to the required
	 * ones; 0 = IORING_SETUP_COOP_TASKRUN. (SINGLE_ISSUER and DEFER_TASKRUN
	 * are safe: each ring is only used by its own worker.) */
	unsigned int ring_setup_flags;
	/* Wait for completions with poll(2) on the ring fd instead of inside
	 * io_uring_enter: slower, but valgrind understands it (it does not
	 * treat a waiting io_uring_enter as blocking). */
	bool wait_with_poll;
	/* How long furing_session_start waits for the kernel's FUSE_INIT and
	 * for every worker to arm its queues; default 10000 ms. */
	unsigned int start_timeout_ms;
	/* Busy polling: before a worker sleeps it may spin for its next
	 * request, for at most busy_poll_us microseconds (default 50), and only
	 * while its recent waits were shorter than that, so an idle session
	 * uses no CPU. It saves the wake-up of a sleeping CPU on every request
	 * when requests come one at a time (see bench/README.md). */
	uint32_t busy_poll_us;
	bool busy_poll_off;
	/* More mount options, comma-separated, each checked against this
	 * allow-list (anything else fails furing_session_new with the reason):
	 *   noexec, noatime       the mount flags of the same names
	 *   nosuid, nodev         accepted; always on for a FUSE mount anyway
	 *   fsname=NAME, subtype=NAME   as the fields above (and win over them)
	 *   max_read=BYTES        largest READ, 4096 .. the payload size (the default)
	 *   context=CONTEXT       security context of every file (SELinux):
	 *                         root only (fusermount3 does not pass it), and
	 *                         the mount fails without a security module
	 * Values may not hold a comma or a backslash (there are no escapes
	 * here; fsname and subtype with those go in the fields above); a
	 * context only printable characters without '"'. blksize= is refused:
	 * the kernel takes it only for fuseblk mounts, which the library does
	 * not make. NULL or unset: none. */
	const char *mount_options;
	/* Buffer pools (Linux 7.3, FUSE_HAS_IO_URING_BUFPOOL): a queue's
	 * entries share one pool of payload buffers (ADD_QUEUE + ADD_BUFPOOL,
	 * header-only REGISTERs), registered with the worker's io_uring so the
	 * kernel does not pin pages per request. Needs one worker per queue at
	 * most (threads <= possible CPUs). */
	enum furing_feature buffer_pool;
	/* Bytes of pool per queue, in payload_size buffers (a request with data
	 * or an answer holds one while it is served); default: a quarter of
	 * queue_depth buffers, at least one. */
	uint64_t buffer_pool_size;
	/* Zero-copy (Linux 7.3, pool queues, CAP_SYS_ADMIN): see
	 * FURING_OPEN_ZERO_COPY. AUTO: on where the kernel offers it. */
	enum furing_feature zero_copy;
};

/* Creates a session; nothing is mounted yet. @ops_size and @cfg_size are
 * sizeof(struct furing_ops) and sizeof(struct furing_config) as the caller
 * knows them. Returns NULL with @err filled on failure. */
struct furing_session *furing_session_new(const struct furing_ops *ops, size_t ops_size,
					  const struct furing_config *cfg, size_t cfg_size, void *fs, char *err,
					  size_t errlen);

/* The most memory the request buffers of a session with @cfg can take:
 * bytes the workers map for requests and answers, each page becoming
 * memory only once a request uses it (so an idle session holds little of
 * it, and one under large requests all; a Linux 7.3 buffer pool is
 * pinned at once). Counts every possible CPU's queue (its entries, or its
 * pool when buffer_pool_size asks for more), whichever transport
 * start-up picks; 0 when @cfg is one
 * furing_session_new refuses. For a program that runs many sessions and
 * must bound their sum (furing daemon --max-buffer-memory). Since
 * FURING_0.3. */
uint64_t furing_config_buffer_bytes(const struct furing_config *cfg, size_t cfg_size);

/* Mounts at @mountpoint (mount(2) as root, fusermount3 otherwise),
 * negotiates FUSE_INIT (calling ops->init before answering), starts the
 * workers and returns once every worker has armed its /dev/fuse reads and
 * ring entries, i.e. requests are being served. On failure everything is
 * undone (threads joined, mount removed) and a negative errno is returned
 * with @err filled; the session may then only be destroyed. */
int furing_session_start(struct furing_session *s, const char *mountpoint, char *err, size_t errlen);

/* A mount left behind by a dead server. A FUSE server killed with SIGKILL
 * (or crashed) leaves its mount with a dead connection: every access to
 * the mountpoint fails with ENOTCONN, and furing_session_start there fails
 * (EBUSY, "something is already mounted there"). */
struct furing_dead_mount {
	char mountpoint[PATH_MAX]; /* absolute, as /proc/self/mountinfo has it */
	char fstype[64];           /* "fuse.furing", "fuse.sshfs", "fuse", ... */
	long user_id;              /* who mounted it (its user_id= option), or -1 */
};

/* Looks at the topmost mount at @mountpoint without hanging on it (a plain
 * stat(2) would, on a stopped server's mount): through
 * /proc/self/mountinfo (only the directory part of @mountpoint is
 * resolved) and a probe from a child process that waits up to @timeout_ms
 * (0: 2000) for the filesystem to answer. A FUSE mount of type
 * "fuse.<@subtype>" (NULL: "furing", furing_config.subtype's default)
 * whose server is gone is lazily unmounted (umount2 as root, fusermount3
 * -u -z otherwise), as the user would by hand before starting again.
 * Mounts stack: call again until it returns 0. Prints nothing. Returns,
 * with @m describing the mount for any value but 0:
 *   1           a dead mount was removed
 *   0           none at @mountpoint: nothing mounted, not FUSE, a server
 *               that answers, or @mountpoint cannot be looked up
 *               (furing_session_start then says why)
 *   -ENOTCONN   a dead FUSE mount of another type: left alone
 *   -ETIMEDOUT  a FUSE mount that does not answer in time (a stopped
 *               server?); the probing child may linger until it answers
 *   other       the unmount failed: umount2's -errno as root, -EINVAL when
 *               fusermount3 failed */
int furing_clear_dead_mount(const char *mountpoint, const char *subtype, unsigned int timeout_ms,
			    struct furing_dead_mount *m);

/* Waits until the session ends: someone unmounted the filesystem, or
 * furing_session_stop() was called, or a fatal error happened. A stop
 * unmounts lazily, lets requests still in flight finish, aborts the
 * connection if a user still holds it after a second, and forces the
 * workers out three seconds later. Returns 0 on a clean end, or a negative
 * errno after a fatal error (whose message went to the log). */
int furing_session_wait(struct furing_session *s);

/* Asks a running session to stop. Safe from any thread and from a signal
 * handler; wakes furing_session_wait at once. */
void furing_session_stop(struct furing_session *s);

/* As furing_session_stop, without the grace period: the connection is
 * aborted right after the lazy unmount, so users still holding the file
 * get ECONNABORTED at once and requests not yet answered fail (answered
 * ones are done: an acknowledged write stays written). For a removal that
 * must not wait for the users (the daemon's export-del mode hard). Safe
 * from any thread and from a signal handler; may follow a stop. Since
 * FURING_0.3. */
void furing_session_abort(struct furing_session *s);

/* Frees everything; calls ops->destroy if init ran. */
void furing_session_destroy(struct furing_session *s);

/* The negotiated connection (valid after a successful start). */
const struct furing_conn *furing_session_conn(const struct furing_session *s);
/* False when io_uring is unavailable (sysctl kernel.io_uring_disabled) and
 * the workers serve /dev/fuse with blocking reads: furing_req_sqe and the
 * worker events are then unavailable. Valid after start. */
bool furing_session_has_io_uring(const struct furing_session *s);
/* Linux 7.3 (valid after start): queues set up with buffer pools, and with
 * zero-copy (FURING_OPEN_ZERO_COPY is honoured). */
bool furing_session_buffer_pool(const struct furing_session *s);
bool furing_session_zero_copy(const struct furing_session *s);
/* One "key=value ..." line of the counters (requests per transport, queue
 * and opcode, errors, bytes), without a label or newline. */
void furing_session_stats_line(struct furing_session *s, char *buf, size_t len);

/* The same counters as numbers, for a program that exports them (to a
 * monitoring system, say) rather than logs them. Every counter only grows
 * while the session lives. Added in 0.3 (FURING_0.3). */
struct furing_stats {
	uint64_t requests;          /* requests answered, both transports */
	uint64_t errors;            /* of them, answered with an error */
	uint64_t bytes_read;        /* data returned by READ */
	uint64_t bytes_written;     /* data taken by WRITE */
	uint64_t dev_requests;      /* of the requests, read from /dev/fuse */
	uint64_t ring_requests;     /* of the requests, served over io_uring */
	uint64_t busy_polls;        /* busy-poll rounds the workers spun */
	uint64_t busy_poll_hits;    /* of them, rounds that found work */
	uint64_t placement_changes; /* times a worker moved to another CPU */
	unsigned int nqueues;       /* the session's io_uring queues (0 over /dev/fuse) */
};

/* Fills @st (@st_size is sizeof(*st) as the caller was built: fields
 * added later stay untouched in an older caller's copy) and the requests
 * each io_uring queue served into @queue_requests[0 .. @max_queues - 1]
 * (queue q is the one of CPU q; @queue_requests may be NULL when
 * @max_queues is 0). Safe while the workers run, from any thread; the
 * counters of different fields may be a few requests apart. Returns the
 * number of queues (st->nqueues, which may exceed @max_queues: only that
 * many are filled), or -EINVAL when @s or @st is NULL. Valid after a
 * successful furing_session_start, until furing_session_destroy. */
int furing_session_stats(struct furing_session *s, struct furing_stats *st, size_t st_size, uint64_t *queue_requests,
			 unsigned int max_queues);

/* A message of the filesystem's own, through the session's log callback
 * (one line, printf format, no newline). Any thread. */
void furing_session_log(const struct furing_session *s, enum furing_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* For programs that want the usual daemon behaviour: SIGINT, SIGTERM and
 * SIGHUP stop the session, SIGUSR1 logs the counters (FURING_LOG_INFO,
 * "stats ..."). The previous handlers come back at furing_session_destroy.
 * One session per process at a time; returns 0, -EBUSY or -errno. */
int furing_session_handle_signals(struct furing_session *s);

/* ===================================================================== */
/* A program's main: the command line and the daemon                      */
/* ===================================================================== */

/* What furing_parse_cmdline found besides the configuration. Allocated by
 * the caller (sizeof passed as @cl_size), filled by the call; the strings
 * and the args array live in storage the library allocated, until
 * furing_cmdline_free. */
struct furing_cmdline {
	void *priv;             /* the library's storage; freed by furing_cmdline_free */
	const char *mountpoint; /* the last argument that is not an option; NULL when none */
	/* With FURING_CMDLINE_ARGS: the other arguments that are not options,
	 * in order, NULL-terminated (args[nargs] == NULL); else nargs is 0. */
	char **args;
	unsigned int nargs;
	bool foreground;        /* -f, or -d: furing_main should not daemonize */
	bool help;              /* -h or --help was given */
	bool version;           /* -V or --version was given */
	/* With FURING_CMDLINE_FS_OPTIONS: the -o items the library does not
	 * know, comma-separated in the order given ("cache=on,uid=5"), for the
	 * filesystem to parse (getsubopt(3)); NULL when there were none. */
	const char *fs_options;
};

/* Flags of furing_parse_cmdline: */
#define FURING_CMDLINE_ARGS (1u << 0)       /* arguments before the mountpoint (SOURCE MOUNTPOINT) */
#define FURING_CMDLINE_FS_OPTIONS (1u << 1) /* unknown -o items go to fs_options instead of failing */

/* Parses the usual FUSE command line, @argv[1] .. @argv[@argc - 1]:
 *   -h, --help        cl->help         -V, --version   cl->version
 *   -f                cl->foreground   -s              one worker (cfg->threads = 1)
 *   -d, -o debug      cfg->debug, cl->foreground, and cfg->log = furing_log_stderr
 *                     when the caller set no log
 *   -o OPT[,OPT...]   (repeatable; also -oOPT):
 *       allow_other, default_permissions, ro, rw     the cfg fields of those names
 *       io_uring=auto|on|off, threads=N (1..1024), queue_depth=N (1..4096)
 *       noexec, noatime, nosuid, nodev, fsname=NAME, subtype=NAME,
 *       max_read=BYTES, context=CONTEXT              added to cfg->mount_options
 *                     (after the caller's own, so that they win), checked as
 *                     furing_session_new checks them
 *   --                the rest are arguments, even if they start with '-'
 * Short flags combine (-fd, -fo ro). Fields of @cfg the command line does
 * not name keep the caller's values: set defaults (fsname, subtype, log)
 * before the call. Afterwards cfg->mount_options may point into @cl's
 * storage: use @cfg before furing_cmdline_free.
 *
 * Prints nothing and exits nothing: with --help or --version it only sets
 * cl->help / cl->version (and then a missing mountpoint is no error); the
 * caller prints its usage, furing_cmdline_help() and furing_version().
 * Touches no global state (no getopt, optind or environment).
 *
 * Returns 0, or a negative errno with a one-line reason in @err naming the
 * argument (an unknown option, a bad value, no mountpoint, an argument too
 * many without FURING_CMDLINE_ARGS); @cl then needs no furing_cmdline_free
 * (but it does no harm). @cfg_size as for furing_session_new. */
int furing_parse_cmdline(int argc, char *const argv[], unsigned int flags, struct furing_cmdline *cl,
			 size_t cl_size, struct furing_config *cfg, size_t cfg_size, char *err, size_t errlen);

/* Frees what furing_parse_cmdline allocated and zeroes cl->priv (twice is
 * harmless; a zeroed struct too). */
void furing_cmdline_free(struct furing_cmdline *cl);

/* The options furing_parse_cmdline knows, as lines for a program's --help
 * ("    -f   ...\n", four spaces in front of each); a static string. */
const char *furing_cmdline_help(void);

/* Flags of furing_main: */
#define FURING_MAIN_FOREGROUND (1u << 0) /* do not daemonize (cl->foreground) */

/* A whole FUSE server's life for a program's main(): creates the session
 * (@ops, @cfg, @fs as for furing_session_new), installs the daemon signal
 * handlers of furing_session_handle_signals (SIGINT, SIGTERM, SIGHUP stop
 * and unmount, SIGUSR1 logs the counters), mounts at @mountpoint, serves
 * until unmounted or stopped, and destroys the session.
 *
 * Without FURING_MAIN_FOREGROUND it daemonizes, after the session was
 * created (so a configuration error is reported by the calling process)
 * and before the start: the process forks; the parent waits until the
 * child serves and then exits with status 0 (_exit(2), without returning),
 * or prints the child's reason for failing to stderr and exits 1. The child
 * makes a new session (setsid(2)), mounts, and once it serves changes to
 * "/" and points stdin, stdout and stderr at /dev/null (the log callback's
 * output then goes there too); furing_main returns in the child alone.
 * Threads do not survive fork(2): a filesystem that runs threads of its own
 * starts them in ops->init (which runs in the child) when it daemonizes.
 *
 * Returns 0 after a clean end (unmounted, or a signal), 1 after a failure,
 * whose reason it printed to stderr as "<program>: <reason>" (or the log
 * got, for a fatal error while serving): a value for exit(). */
int furing_main(const char *mountpoint, unsigned int flags, const struct furing_ops *ops, size_t ops_size,
		const struct furing_config *cfg, size_t cfg_size, void *fs);

/* ===================================================================== */
/* The path API: operations on names, inodes kept by the library          */
/* ===================================================================== */

/* A filesystem written against paths (as with libfuse's fuse.h) fills in a
 * struct furing_path_ops instead of furing_ops. The library keeps the node
 * table: it gives the kernel node ids, turns each request's node into its
 * path ("/", "/dir/file"), counts lookups and forgets, moves names on
 * rename, and keeps a node that was unlinked or renamed over while open
 * until its last release: operations on such a file get path NULL and
 * find it by its handle (fi->fh). It runs on the same workers, with the same
 * rules (operations must not block; state shared between requests needs
 * the filesystem's own locking).
 *
 * Each operation returns 0 (or a byte count for read and write) or a
 * negative errno, having filled what it was handed (a struct stat, the
 * read buffer, fi->fh). To answer later instead (I/O on the ring with
 * furing_req_sqe, or another thread), it returns FURING_PATH_ASYNC and
 * calls furing_path_done(req, result) once, from any thread; until then
 * every pointer it was handed (path, buffers, the stat, fi) stays valid.
 * @req is the lowlevel request: furing_req_ctx, furing_req_scratch and
 * furing_req_sqe work on it, furing_path_fs gives the filesystem's pointer;
 * furing_req_set_data and furing_req_data belong to the library here.
 * A NULL operation answers ENOSYS (getattr of the root: a 0755 directory).
 * Attributes and names are cached by the kernel for one second, a missing
 * name not at all, unless furing_path_set_timeouts says otherwise. */
#define FURING_PATH_ASYNC INT_MIN

/* An open file or directory. open, create and opendir set fh (anything)
 * and open_flags (FURING_OPEN_*); the library keeps both until release. */
struct furing_path_file {
	uint64_t fh;
	int flags;           /* open(2) flags */
	uint32_t open_flags; /* FURING_OPEN_*: what the open answer asks for */
};

/* readdir's filler: adds @name (with @st's type and inode number, @st may
 * be NULL; readdirplus's: with all of @st) to the listing. @next_off 0 throughout a listing: the library
 * keeps the whole listing (readdir is then called once, with @off 0, per
 * opendir and rewind); non-zero: the offset readdir continues from, the
 * listing goes straight into the answer and the call returns 1 when it is
 * full (stop there). Returns 0, 1 (full) or -ENOMEM. */
typedef int (*furing_path_fill_fn)(void *dh, const char *name, const struct stat *st, uint64_t next_off);

struct furing_path_ops {
	/* As furing_ops.init and .destroy (@fs: the filesystem's pointer). */
	int (*init)(void *fs, struct furing_conn *conn);
	void (*destroy)(void *fs);
	/* @fi: the open file (fstat) or NULL. Also answers lookups. */
	int (*getattr)(struct furing_req *req, const char *path, struct stat *st, const struct furing_path_file *fi);
	/* Only the fields @a->valid names (FURING_SET_SIZE: truncate); the answer's
	 * attributes come from getattr afterwards. */
	int (*setattr)(struct furing_req *req, const char *path, const struct furing_setattr *a,
		       const struct furing_path_file *fi);
	int (*mknod)(struct furing_req *req, const char *path, mode_t mode, dev_t rdev);
	int (*mkdir)(struct furing_req *req, const char *path, mode_t mode);
	int (*unlink)(struct furing_req *req, const char *path);
	int (*rmdir)(struct furing_req *req, const char *path);
	/* @flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. */
	int (*rename)(struct furing_req *req, const char *from, const char *to, unsigned int flags);
	int (*statfs)(struct furing_req *req, const char *path, struct statvfs *st);
	/* NULL open: every open succeeds with fh 0. */
	int (*open)(struct furing_req *req, const char *path, struct furing_path_file *fi);
	/* Creates and opens; NULL: the kernel falls back to mknod and open. */
	int (*create)(struct furing_req *req, const char *path, mode_t mode, struct furing_path_file *fi);
	/* At most @size bytes into @buf (the request's buffer): the count, short at the end. */
	int (*read)(struct furing_req *req, const char *path, void *buf, uint32_t size, uint64_t off,
		    const struct furing_path_file *fi);
	/* The count written. */
	int (*write)(struct furing_req *req, const char *path, const void *buf, uint32_t size, uint64_t off,
		     const struct furing_path_file *fi);
	int (*flush)(struct furing_req *req, const char *path, const struct furing_path_file *fi);
	int (*fsync)(struct furing_req *req, const char *path, bool datasync, const struct furing_path_file *fi);
	/* The result is ignored: the file is closed either way. */
	int (*release)(struct furing_req *req, const char *path, const struct furing_path_file *fi);
	int (*opendir)(struct furing_req *req, const char *path, struct furing_path_file *fi);
	/* Every entry, "." and ".." included, through @fill(@dh, ...). */
	int (*readdir)(struct furing_req *req, const char *path, uint64_t off, furing_path_fill_fn fill, void *dh,
		       const struct furing_path_file *fi);
	int (*releasedir)(struct furing_req *req, const char *path, const struct furing_path_file *fi);
	/* Added in 0.2 after the above (an older @ops_size leaves them NULL). */
	/* A symbolic link @path holding @target. */
	int (*symlink)(struct furing_req *req, const char *target, const char *path);
	/* The target into @buf (@size bytes, NUL-terminated, cut short if longer), 0. */
	int (*readlink)(struct furing_req *req, const char *path, char *buf, size_t size);
	/* A hard link: the new name @to for @from (the library gives it a node of its own). */
	int (*link)(struct furing_req *req, const char *from, const char *to);
	/* access(2)'s check (@mask: R_OK...); NULL: every check succeeds (see default_permissions). */
	int (*access)(struct furing_req *req, const char *path, int mask);
	/* Extended attributes, as setxattr(2) and the others. getxattr and listxattr
	 * with @size 0 return the length the value (the list: each name
	 * NUL-terminated, back to back) needs; otherwise fill @buf and return the
	 * length, or -ERANGE when @size is too small. */
	int (*setxattr)(struct furing_req *req, const char *path, const char *name, const void *value, size_t size,
			int flags);
	int (*getxattr)(struct furing_req *req, const char *path, const char *name, void *buf, size_t size);
	int (*listxattr)(struct furing_req *req, const char *path, char *buf, size_t size);
	int (*removexattr)(struct furing_req *req, const char *path, const char *name);
	/* Added in 0.3 after the above. NULL: ENOSYS, and the kernel does
	 * without for the rest of the mount (fallocate then fails with
	 * EOPNOTSUPP; lseek finds data everywhere; copies go through the page
	 * cache; fsyncdir succeeds). */
	/* fallocate(2): @mode 0, or FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE. */
	int (*fallocate)(struct furing_req *req, const char *path, int mode, uint64_t off, uint64_t len,
			 const struct furing_path_file *fi);
	/* SEEK_DATA or SEEK_HOLE (@whence) from *@off: the answer into *@off, 0
	 * (-ENXIO: no data, or no hole, past it). Other whences never arrive. */
	int (*lseek)(struct furing_req *req, const char *path, uint64_t *off, int whence,
		     const struct furing_path_file *fi);
	/* copy_file_range(2) of at most @len bytes (the library caps one call
	 * near 2 GiB): the count copied, short at the end of @path_in. */
	int (*copy_file_range)(struct furing_req *req, const char *path_in, const struct furing_path_file *fi_in,
			       uint64_t off_in, const char *path_out, const struct furing_path_file *fi_out,
			       uint64_t off_out, size_t len, unsigned int flags);
	int (*fsyncdir)(struct furing_req *req, const char *path, bool datasync, const struct furing_path_file *fi);
	/* readdir with attributes (libfuse's FUSE_FILL_DIR_PLUS): the same
	 * call and filler, but each @st handed to @fill is the entry's whole
	 * attributes, as getattr would answer for that name (NULL: the name
	 * alone). The library then asks the kernel for READDIRPLUS
	 * (FURING_CAP_READDIRPLUS and _AUTO; init may drop them) and answers it
	 * with entries that count as lookups, so `ls -l` and a stat of each
	 * name take no LOOKUP. A separate operation rather than a flag of the
	 * filler, so that readdir and its filler keep their 0.2 meaning and the
	 * kernel is asked for attributes only by a filesystem that gives them.
	 * It serves READDIRPLUS, and also READDIR when readdir is NULL (set
	 * both when a plain listing is much cheaper); a buffered listing
	 * (next_off 0) keeps the attributes for the kernel's later offsets.
	 * Unset: readdir serves both. */
	int (*readdirplus)(struct furing_req *req, const char *path, uint64_t off, furing_path_fill_fn fill, void *dh,
			   const struct furing_path_file *fi);
};

struct furing_path;

/* A path filesystem over the lowlevel engine: @ops (@ops_size =
 * sizeof(struct furing_path_ops)) and the filesystem's pointer @fs. Hand
 * furing_path_lowlevel_ops() and the returned handle (as the fs pointer)
 * to furing_session_new or furing_main; free it with furing_path_destroy
 * after the session is destroyed. NULL on failure (ENOMEM, or an @ops_size
 * larger than the library knows: EINVAL), with errno set. */
struct furing_path *furing_path_new(const struct furing_path_ops *ops, size_t ops_size, void *fs);
/* The lowlevel table that serves a furing_path (sizeof(struct furing_ops) bytes). */
const struct furing_ops *furing_path_lowlevel_ops(void);
/* Frees the node table (NULL: nothing). */
void furing_path_destroy(struct furing_path *p);
/* How long the kernel may cache what the answers say, in seconds (0: not at
 * all): a name's node (@entry_s, default 1), attributes (@attr_s, default
 * 1), and that a name does not exist (@negative_s, default 0: a lookup
 * answers ENOENT; otherwise a negative entry). A filesystem whose files
 * change behind the kernel's back wants 0s. Call it before the session
 * starts. Returns 0, or -1 with errno EINVAL (@p NULL, a negative or NaN
 * time). */
int furing_path_set_timeouts(struct furing_path *p, double entry_s, double attr_s, double negative_s);
/* The filesystem's pointer given to furing_path_new, from a request. */
void *furing_path_fs(const struct furing_req *req);
/* The answer of an operation that returned FURING_PATH_ASYNC: what it would
 * have returned. Once, from any thread. */
void furing_path_done(struct furing_req *req, int result);

#ifdef __cplusplus
}
#endif
#endif
