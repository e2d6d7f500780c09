/* furing passthrough: a directory tree (SOURCE) mirrored at a mountpoint.
 * A user of the public libfuring API only; this header is shared by the
 * files of passthrough/; the command line sees only passthrough.h.
 *
 * Pieces:
 *   fs.c      options, start-up checks, INIT, the operations table
 *   inode.c   the inode table: (device, inode) -> node, O_PATH handles,
 *             lookup counts, references of operations in flight
 *   backend.c every system call a request needs, on the worker's io_uring
 *             or (where io_uring cannot, or the session has none) inline;
 *             the list of what is inline and why is at its top
 *   ident.c   the caller's identity: io_uring personalities per (uid, gid)
 *   common.c  the per-request workspace (ws.h), attributes in the kernel's
 *             terms, looking a name up, the list of open handles
 *   names.c   lookup, forget, mknod, mkdir, symlink, link, unlink, rmdir, rename
 *   attr.c    getattr, setattr, statx, statfs, readlink
 *   file.c    open, create, tmpfile, release, flush, fsync, fallocate, lseek,
 *             flock, and kernel passthrough backing files
 *   io.c      read, write, copy_file_range
 *   dir.c     opendir, readdir, readdirplus, releasedir, fsyncdir
 *   xattr.c   extended attributes
 *   ioctl.c   the inode flags (lsattr, chattr) */
#ifndef FURING_PASSTHROUGH_PT_H
#define FURING_PASSTHROUGH_PT_H

#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <furing/furing.h>

#include "passthrough.h"

/* ---- the inode table (inode.c) ---- */

struct pt_inode {
	uint64_t nodeid;     /* the kernel's name for it; see inode.c for how it is chosen */
	uint64_t generation;
	dev_t dev;
	ino_t ino;
	mode_t type;         /* S_IFMT bits: they never change for a (dev, ino) we hold */
	int fd;              /* O_PATH|O_NOFOLLOW handle, held while the kernel knows the node */
	bool mem;            /* on a memory-backed filesystem (tmpfs, ramfs) */
	bool local;          /* on a filesystem whose close does nothing (no FLUSH needed) */
	/* Under the table lock: */
	uint64_t nlookup;    /* the kernel's lookup count */
	unsigned int refs;   /* operations in flight and open files using the node */
	struct pt_inode *next_id, *next_key;
	/* Kernel passthrough: the kernel allows one backing file per inode, so
	 * the id is shared by the node's passthrough opens (backing_lock). */
	pthread_mutex_t backing_lock;
	int backing_id;
	unsigned int backing_users;
};

struct pt_table {
	pthread_mutex_t lock;
	struct pt_inode **by_id;  /* nodeid -> node */
	struct pt_inode **by_key; /* (dev, ino) -> node */
	size_t nbuckets;          /* a power of two */
	size_t count;
	uint64_t next_synthetic;
	uint64_t next_generation;
};

/* ---- open files and directories ---- */

/* The start of every open file and directory: they are listed so that the
 * ones the kernel never released (a connection aborted at unmount) are
 * closed and freed at the end. */
struct pt_handle {
	struct pt_handle *prev, *next;
	int fd;
	void *buf; /* freed with the handle */
};

/* ---- the filesystem ---- */

struct pt_fs {
	struct pt_opts o;
	char *source;         /* realpath of SOURCE */
	struct pt_inode *root; /* node 1 */
	dev_t root_dev;
	ino_t root_ino;
	bool root_mem;        /* SOURCE is on tmpfs/ramfs */
	bool root_local;      /* SOURCE's filesystem has nothing to do at close (ext4, xfs, tmpfs...) */
	double timeout;       /* entry and attribute timeouts, seconds */
	bool negative_cache;  /* answer a missing name as a cached negative entry */
	bool inline_mem_io;   /* small reads/writes inline for files on tmpfs/ramfs (--backend-io=auto) */
	bool inline_all_io;   /* ... for every file (--backend-io=inline) */
	bool inline_calls;    /* metadata calls inline too (SOURCE on tmpfs/ramfs, or --backend-io=inline) */
	bool inline_names;    /* ... of them statx and the name calls (SOURCE on a local disk, --backend-io=auto) */
	uint32_t stack_depth; /* max_stack_depth for kernel passthrough */
	/* Decided in init from what the kernel offers: */
	bool writeback;       /* FURING_CAP_WRITEBACK_CACHE granted */
	bool passthrough;     /* FURING_CAP_PASSTHROUGH granted */
	/* Identity: a root daemon creates files as the caller (ident.c). */
	bool ident;
	uid_t uid;
	gid_t gid;
	/* io_uring opcodes this kernel has, from the probe at start. */
	bool ring_ftruncate;
	atomic_bool warned_backing;
	struct pt_table table;
	pthread_mutex_t handles_lock;
	struct pt_handle handles; /* list head */
	char init_error[256]; /* why init refused the mount, for the command line */
};

static inline struct pt_fs *pt_fs_of(struct furing_req *req)
{
	return furing_req_fs(req);
}

/* ---- inode.c ---- */

int pt_table_init(struct pt_fs *fs, int root_fd, const struct stat *root_st, bool mem, char *err, size_t errlen);
void pt_table_destroy(struct pt_fs *fs);
/* The node, with a reference taken (pt_put), or NULL when unknown. */
struct pt_inode *pt_get(struct pt_fs *fs, uint64_t nodeid);
void pt_ref(struct pt_fs *fs, struct pt_inode *in);
void pt_put(struct pt_fs *fs, struct pt_inode *in);
/* A lookup found @fd (an O_PATH handle, consumed) whose attributes are
 * @stx: the node for it, its lookup count raised by one and, with @ref, a
 * reference taken. NULL (and @fd closed) when out of memory. */
struct pt_inode *pt_found(struct pt_fs *fs, int fd, const struct statx *stx, bool ref);
/* One more lookup of a node already held (link). */
void pt_lookup_again(struct pt_fs *fs, struct pt_inode *in);
void pt_forget(struct pt_fs *fs, uint64_t nodeid, uint64_t nlookup);
/* The inode number stat(2) shows for a node (nodeids are chosen to be it). */
uint64_t pt_shown_ino(const struct pt_fs *fs, const struct pt_inode *in);
size_t pt_table_count(struct pt_fs *fs);

/* ---- backend.c: each call runs on the worker's ring, or inline and then
 * @done runs before the function returns. @who: create as this caller
 * (its personality, ident.c), or NULL for the daemon's own credentials.
 * Strings and buffers must stay valid until @done (the request's names,
 * scratch and buffer do). ---- */

void be_openat2(struct furing_req *req, const struct furing_ctx *who, int dirfd, const char *path,
		struct open_how *how, furing_io_done done);
void be_statx(struct furing_req *req, int dirfd, const char *path, int flags, unsigned int mask, struct statx *out,
	      furing_io_done done);
void be_close(struct furing_req *req, int fd, furing_io_done done);
void be_mkdirat(struct furing_req *req, const struct furing_ctx *who, int dirfd, const char *name, mode_t mode,
		furing_io_done done);
void be_symlinkat(struct furing_req *req, const struct furing_ctx *who, const char *target, int dirfd,
		  const char *name, furing_io_done done);
void be_mknodat(struct furing_req *req, const struct furing_ctx *who, int dirfd, const char *name, mode_t mode,
		dev_t rdev, furing_io_done done);
void be_linkat(struct furing_req *req, const char *oldpath, int newdirfd, const char *newname, furing_io_done done);
void be_unlinkat(struct furing_req *req, int dirfd, const char *name, int flags, furing_io_done done);
void be_renameat2(struct furing_req *req, const struct furing_ctx *who, int olddirfd, const char *oldname,
		  int newdirfd, const char *newname, unsigned int flags, furing_io_done done);
void be_ftruncate(struct furing_req *req, int fd, uint64_t size, furing_io_done done);
void be_getxattr(struct furing_req *req, const char *path, const char *name, void *value, size_t size,
		 furing_io_done done);
void be_setxattr(struct furing_req *req, const char *path, const char *name, const void *value, size_t size,
		 int flags, furing_io_done done);
/* Reads and writes: inline for small transfers when @inline_ok (a
 * memory-backed file under --backend-io=auto|inline), else the ring. */
void be_rw(struct furing_req *req, bool write, int fd, void *buf, uint32_t len, uint64_t off, bool inline_ok,
	   furing_io_done done);
void be_fsync(struct furing_req *req, int fd, bool datasync, furing_io_done done);
void be_fallocate(struct furing_req *req, int fd, int mode, uint64_t off, uint64_t len, furing_io_done done);
/* Probes the opcodes of this kernel (fills fs->ring_*). */
void be_probe(struct pt_fs *fs);
/* "/proc/self/fd/N": how a node's O_PATH handle is reopened or named by
 * path-based calls. @buf: at least PT_FD_PATH_MAX bytes. */
#define PT_FD_PATH_MAX 32
const char *pt_fd_path(char *buf, int fd);

/* ---- ident.c ---- */

/* The personality id for @who on @req's worker (0: the daemon's own
 * credentials), or -errno. */
int ident_personality(struct furing_req *req, const struct furing_ctx *who);
/* Inline calls as @who: switch this thread's fsuid/fsgid, and back. With
 * @keep_caps the daemon's file capabilities stay (the kernel has checked
 * the caller's permission: creating calls); without, SOURCE's filesystem
 * checks as for the caller (calls the kernel does not check, ioctl). */
struct ident_saved {
	bool switched;
	bool caps_dropped;
};
int ident_enter(struct pt_fs *fs, const struct furing_ctx *who, bool keep_caps, struct ident_saved *saved);
void ident_leave(struct pt_fs *fs, struct ident_saved *saved);
int ident_worker_start(void *fs, struct furing_worker *w);
void ident_worker_stop(void *fs, struct furing_worker *w);

/* ---- helpers shared by the operations ---- */

/* Open files and directories (common.c). */
void pt_handle_add(struct pt_fs *fs, struct pt_handle *h);
void pt_handle_del(struct pt_fs *fs, struct pt_handle *h);
void pt_handles_free_all(struct pt_fs *fs);

/* Clears setuid, and setgid on a group-executable file, as a write by an
 * unprivileged caller does (the kernel asks with FURING_*_KILL_SUIDGID,
 * HANDLE_KILLPRIV_V2; our own calls run with CAP_FSETID and keep them).
 * Inline: only for files that have those bits. Returns 0 or -errno. */
int pt_kill_suidgid(int fd);

/* struct statx -> struct stat, with the inode number the mount shows. */
void pt_stat_from_statx(const struct pt_fs *fs, const struct pt_inode *in, const struct statx *stx, struct stat *st);
void pt_entry_of(const struct pt_fs *fs, const struct pt_inode *in, const struct statx *stx, struct furing_entry *e);
/* The per-request workspace: at furing_req_buf, where the answer is built
 * only after the workspace has been read. NULL when the buffer is too small. */
void *pt_workspace(struct furing_req *req, size_t size);
/* Answers a result in the io_uring convention (negative errno or >= 0). */
void pt_reply_res(struct furing_req *req, int res);

/* Looks up @name in @parent after a creating call (or for LOOKUP itself):
 * opens it O_PATH, stats it, enters it in the table and calls @then with 0
 * and the node (lookup count raised, reference taken), or with -errno. */
typedef void (*pt_lookup_then)(struct furing_req *req, int res, struct pt_inode *in, const struct statx *stx);
void pt_lookup_name(struct furing_req *req, struct pt_inode *parent, const char *name, pt_lookup_then then);
/* The same for @path relative to @dirfd; @follow for a /proc/self/fd path. */
void pt_lookup_at(struct furing_req *req, int dirfd, const char *path, bool follow, pt_lookup_then then);

/* ---- the operations (one file per group) ---- */

void pt_lookup(struct furing_req *req, uint64_t parent, const char *name);
void pt_forget_one(void *fs, uint64_t ino, uint64_t nlookup);
void pt_forget_multi(void *fs, size_t count, const struct furing_forget *forgets);
void pt_mknod(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, dev_t rdev);
void pt_mkdir(struct furing_req *req, uint64_t parent, const char *name, mode_t mode);
void pt_symlink(struct furing_req *req, const char *target, uint64_t parent, const char *name);
void pt_link(struct furing_req *req, uint64_t ino, uint64_t newparent, const char *newname);
void pt_unlink(struct furing_req *req, uint64_t parent, const char *name);
void pt_rmdir(struct furing_req *req, uint64_t parent, const char *name);
void pt_rename(struct furing_req *req, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
	       unsigned int flags);

void pt_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void pt_setattr(struct furing_req *req, uint64_t ino, const struct furing_setattr *attr, const struct furing_file *fi);
void pt_statx(struct furing_req *req, uint64_t ino, int flags, uint32_t mask, const struct furing_file *fi);
void pt_statfs(struct furing_req *req, uint64_t ino);
void pt_readlink(struct furing_req *req, uint64_t ino);

void pt_open_file(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void pt_create(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, const struct furing_file *fi);
void pt_tmpfile(struct furing_req *req, uint64_t parent, mode_t mode, const struct furing_file *fi);
void pt_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void pt_flush(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void pt_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi);
void pt_fallocate(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
		  const struct furing_file *fi);
void pt_lseek(struct furing_req *req, uint64_t ino, uint64_t off, int whence, const struct furing_file *fi);
void pt_flock(struct furing_req *req, uint64_t ino, const struct furing_file *fi, int op);

void pt_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi);
void pt_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
	      const struct furing_file *fi);
void pt_copy_file_range(struct furing_req *req, uint64_t ino_in, uint64_t off_in, const struct furing_file *fi_in,
			uint64_t ino_out, uint64_t off_out, const struct furing_file *fi_out, uint64_t len,
			uint64_t flags);

void pt_opendir(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void pt_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi);
void pt_readdirplus(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi);
void pt_releasedir(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void pt_fsyncdir(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi);

void pt_ioctl(struct furing_req *req, uint64_t ino, unsigned int cmd, uint64_t arg, const struct furing_file *fi,
	      unsigned int flags, const void *in_buf, size_t in_size, size_t out_size);

void pt_setxattr(struct furing_req *req, uint64_t ino, const char *name, const void *value, size_t size, int flags,
		 uint32_t xflags);
void pt_getxattr(struct furing_req *req, uint64_t ino, const char *name, size_t size);
void pt_listxattr(struct furing_req *req, uint64_t ino, size_t size);
void pt_removexattr(struct furing_req *req, uint64_t ino, const char *name);

/* ---- open files (file.c) ---- */

struct pt_file {
	struct pt_handle h;     /* first: h.fd is the open file */
	struct pt_inode *inode; /* a reference is held */
	bool inline_io;         /* small reads and writes inline (memory-backed, backend_io) */
	bool passthrough;       /* counted in inode->backing_users */
};

/* Scratch space of a request, typed: every state struct fits in 64 bytes. */
#define PT_SCRATCH(req, type)                                                                                    \
	({                                                                                                       \
		_Static_assert(sizeof(type) <= FURING_REQ_SCRATCH_SIZE, #type " fits the request scratch");     \
		(type *)furing_req_scratch(req);                                                                 \
	})

#endif
