/* The FUSE wire protocol, 7.45 (Linux 6.18), including FUSE-over-io_uring.
 *
 * Layouts and constants of protocol 7.45 (doc/protocol.md 2); the system's
 * <linux/fuse.h> is older (7.38) and must not be included alongside this.
 * Every struct carries a compile-time size check: a wrong layout must fail the
 * build, not corrupt a request. */
#ifndef FURING_PROTO_FUSE_KERNEL_H
#define FURING_PROTO_FUSE_KERNEL_H

#include <stdint.h>

#define FUSE_KERNEL_VERSION 7
#define FUSE_KERNEL_MINOR_VERSION 45
#define FUSE_ROOT_ID 1
#define FUSE_MIN_READ_BUFFER 8192
#define FUSE_COMPAT_WRITE_IN_SIZE 24

/* FUSE_INIT flags (32-bit word) */
#define FUSE_ASYNC_READ (1u << 0)
#define FUSE_POSIX_LOCKS (1u << 1)
#define FUSE_FILE_OPS (1u << 2)
#define FUSE_ATOMIC_O_TRUNC (1u << 3)
#define FUSE_EXPORT_SUPPORT (1u << 4)
#define FUSE_BIG_WRITES (1u << 5)
#define FUSE_DONT_MASK (1u << 6)
#define FUSE_SPLICE_WRITE (1u << 7)
#define FUSE_SPLICE_MOVE (1u << 8)
#define FUSE_SPLICE_READ (1u << 9)
#define FUSE_FLOCK_LOCKS (1u << 10)
#define FUSE_HAS_IOCTL_DIR (1u << 11)
#define FUSE_AUTO_INVAL_DATA (1u << 12)
#define FUSE_DO_READDIRPLUS (1u << 13)
#define FUSE_READDIRPLUS_AUTO (1u << 14)
#define FUSE_ASYNC_DIO (1u << 15)
#define FUSE_WRITEBACK_CACHE (1u << 16)
#define FUSE_NO_OPEN_SUPPORT (1u << 17)
#define FUSE_PARALLEL_DIROPS (1u << 18)
#define FUSE_HANDLE_KILLPRIV (1u << 19)
#define FUSE_POSIX_ACL (1u << 20)
#define FUSE_ABORT_ERROR (1u << 21)
#define FUSE_MAX_PAGES (1u << 22)
#define FUSE_CACHE_SYMLINKS (1u << 23)
#define FUSE_NO_OPENDIR_SUPPORT (1u << 24)
#define FUSE_EXPLICIT_INVAL_DATA (1u << 25)
#define FUSE_MAP_ALIGNMENT (1u << 26)
#define FUSE_SUBMOUNTS (1u << 27)
#define FUSE_HANDLE_KILLPRIV_V2 (1u << 28)
#define FUSE_SETXATTR_EXT (1u << 29)
#define FUSE_INIT_EXT (1u << 30)
#define FUSE_INIT_RESERVED (1u << 31)

/* FUSE_INIT flags2 (bits 32..63 of the 64-bit flag set, stored shifted down;
 * read by the kernel only when FUSE_INIT_EXT is set in flags) */
#define FUSE2_SECURITY_CTX (1u << 0)
#define FUSE2_HAS_INODE_DAX (1u << 1)
#define FUSE2_CREATE_SUPP_GROUP (1u << 2)
#define FUSE2_HAS_EXPIRE_ONLY (1u << 3)
#define FUSE2_DIRECT_IO_ALLOW_MMAP (1u << 4)
#define FUSE2_PASSTHROUGH (1u << 5)
#define FUSE2_NO_EXPORT_SUPPORT (1u << 6)
#define FUSE2_HAS_RESEND (1u << 7)
#define FUSE2_ALLOW_IDMAP (1u << 8)
#define FUSE2_OVER_IO_URING (1u << 9)
#define FUSE2_REQUEST_TIMEOUT (1u << 10)
#define FUSE2_HAS_IO_URING_BUFPOOL (1u << 11) /* 7.46 (Linux 7.3): ADD_QUEUE and ADD_BUFPOOL; offered, never asked for */

/* open_out.open_flags */
#define FOPEN_DIRECT_IO (1u << 0)
#define FOPEN_KEEP_CACHE (1u << 1)
#define FOPEN_NONSEEKABLE (1u << 2)
#define FOPEN_CACHE_DIR (1u << 3)
#define FOPEN_STREAM (1u << 4)
#define FOPEN_NOFLUSH (1u << 5)
#define FOPEN_PARALLEL_DIRECT_WRITES (1u << 6)
#define FOPEN_PASSTHROUGH (1u << 7)
#define FOPEN_IO_URING_ZERO_COPY (1u << 8) /* 7.46: READ/WRITE pages lent to a zero-copy queue */

/* setattr_in.valid */
#define FATTR_MODE (1u << 0)
#define FATTR_UID (1u << 1)
#define FATTR_GID (1u << 2)
#define FATTR_SIZE (1u << 3)
#define FATTR_ATIME (1u << 4)
#define FATTR_MTIME (1u << 5)
#define FATTR_FH (1u << 6)
#define FATTR_ATIME_NOW (1u << 7)
#define FATTR_MTIME_NOW (1u << 8)
#define FATTR_LOCKOWNER (1u << 9)
#define FATTR_CTIME (1u << 10)
#define FATTR_KILL_SUIDGID (1u << 11)

#define FUSE_GETATTR_FH (1u << 0)
#define FUSE_WRITE_CACHE (1u << 0)
#define FUSE_WRITE_LOCKOWNER (1u << 1)
#define FUSE_WRITE_KILL_SUIDGID (1u << 2)
#define FUSE_FSYNC_FDATASYNC (1u << 0)
#define FUSE_READ_LOCKOWNER (1u << 1)
#define FUSE_OPEN_KILL_SUIDGID (1u << 0)   /* open_in.open_flags, create_in.open_flags */
#define FUSE_RELEASE_FLUSH (1u << 0)       /* release_in.release_flags */
#define FUSE_RELEASE_FLOCK_UNLOCK (1u << 1)
#define FUSE_LK_FLOCK (1u << 0)            /* lk_in.lk_flags: a flock(2) lock */
#define FUSE_POLL_SCHEDULE_NOTIFY (1u << 0)
#define FUSE_SETXATTR_ACL_KILL_SGID (1u << 0)
#define FUSE_EXPIRE_ONLY (1u << 0)         /* notify_inval_entry_out.flags */

/* ioctl_in.flags / ioctl_out.flags */
#define FUSE_IOCTL_COMPAT (1u << 0)
#define FUSE_IOCTL_UNRESTRICTED (1u << 1)
#define FUSE_IOCTL_RETRY (1u << 2)
#define FUSE_IOCTL_32BIT (1u << 3)
#define FUSE_IOCTL_DIR (1u << 4)
#define FUSE_IOCTL_COMPAT_X32 (1u << 5)

/* Notification codes: out_header.error of a message with unique 0. */
enum fuse_notify_code {
	FUSE_NOTIFY_POLL = 1,
	FUSE_NOTIFY_INVAL_INODE = 2,
	FUSE_NOTIFY_INVAL_ENTRY = 3,
	FUSE_NOTIFY_STORE = 4,
	FUSE_NOTIFY_RETRIEVE = 5,
	FUSE_NOTIFY_DELETE = 6,
};

#define FUSE_UNIQUE_RESEND (1ull << 63)
#define FUSE_INT_REQ_BIT (1ull << 0)

/* ioctls on /dev/fuse (magic 229) */
#define FUSE_DEV_IOC_MAGIC 229
#define FUSE_DEV_IOC_CLONE 0x8004E500u /* _IOR(229, 0, uint32_t) */
#define FUSE_DEV_IOC_BACKING_OPEN 0x4010E501u  /* _IOW(229, 1, struct fuse_backing_map) */
#define FUSE_DEV_IOC_BACKING_CLOSE 0x4004E502u /* _IOW(229, 2, uint32_t) */
#define FUSE_DEV_IOC_SYNC_INIT 0xE503u /* _IO(229, 3), 6.18+ */

enum fuse_opcode {
	FUSE_LOOKUP = 1,
	FUSE_FORGET = 2,
	FUSE_GETATTR = 3,
	FUSE_SETATTR = 4,
	FUSE_READLINK = 5,
	FUSE_SYMLINK = 6,
	FUSE_MKNOD = 8,
	FUSE_MKDIR = 9,
	FUSE_UNLINK = 10,
	FUSE_RMDIR = 11,
	FUSE_RENAME = 12,
	FUSE_LINK = 13,
	FUSE_OPEN = 14,
	FUSE_READ = 15,
	FUSE_WRITE = 16,
	FUSE_STATFS = 17,
	FUSE_RELEASE = 18,
	FUSE_FSYNC = 20,
	FUSE_SETXATTR = 21,
	FUSE_GETXATTR = 22,
	FUSE_LISTXATTR = 23,
	FUSE_REMOVEXATTR = 24,
	FUSE_FLUSH = 25,
	FUSE_INIT = 26,
	FUSE_OPENDIR = 27,
	FUSE_READDIR = 28,
	FUSE_RELEASEDIR = 29,
	FUSE_FSYNCDIR = 30,
	FUSE_GETLK = 31,
	FUSE_SETLK = 32,
	FUSE_SETLKW = 33,
	FUSE_ACCESS = 34,
	FUSE_CREATE = 35,
	FUSE_INTERRUPT = 36,
	FUSE_BMAP = 37,
	FUSE_DESTROY = 38,
	FUSE_IOCTL = 39,
	FUSE_POLL = 40,
	FUSE_NOTIFY_REPLY = 41,
	FUSE_BATCH_FORGET = 42,
	FUSE_FALLOCATE = 43,
	FUSE_READDIRPLUS = 44,
	FUSE_RENAME2 = 45,
	FUSE_LSEEK = 46,
	FUSE_COPY_FILE_RANGE = 47,
	FUSE_SETUPMAPPING = 48,
	FUSE_REMOVEMAPPING = 49,
	FUSE_SYNCFS = 50,
	FUSE_TMPFILE = 51,
	FUSE_STATX = 52,
	FUSE_COPY_FILE_RANGE_64 = 53,
	FUSE_OPCODE_MAX = 54, /* one past the highest opcode this header knows */
	CUSE_INIT = 4096,
};

struct fuse_in_header {
	uint32_t len;
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	uint16_t total_extlen; /* length of extensions in 8-byte units */
	uint16_t padding;
};

struct fuse_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct fuse_init_in {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint32_t flags2;
	uint32_t unused[11];
};

/* Kernels before 7.36 send only the first 16 bytes of fuse_init_in. */
#define FUSE_INIT_IN_COMPAT_SIZE 16

struct fuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;
	uint16_t max_pages;
	uint16_t map_alignment;
	uint32_t flags2;
	uint32_t max_stack_depth;
	uint16_t request_timeout;
	uint16_t unused[11];
};

struct fuse_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev;
	uint32_t blksize;
	uint32_t flags;
};

struct fuse_entry_out {
	uint64_t nodeid;
	uint64_t generation;
	uint64_t entry_valid;
	uint64_t attr_valid;
	uint32_t entry_valid_nsec;
	uint32_t attr_valid_nsec;
	struct fuse_attr attr;
};

struct fuse_attr_out {
	uint64_t attr_valid;
	uint32_t attr_valid_nsec;
	uint32_t dummy;
	struct fuse_attr attr;
};

struct fuse_getattr_in {
	uint32_t getattr_flags;
	uint32_t dummy;
	uint64_t fh;
};

struct fuse_setattr_in {
	uint32_t valid;
	uint32_t padding;
	uint64_t fh;
	uint64_t size;
	uint64_t lock_owner;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t unused4;
	uint32_t uid;
	uint32_t gid;
	uint32_t unused5;
};

struct fuse_open_in {
	uint32_t flags;
	uint32_t open_flags;
};

struct fuse_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

struct fuse_release_in {
	uint64_t fh;
	uint32_t flags;
	uint32_t release_flags;
	uint64_t lock_owner;
};

struct fuse_flush_in {
	uint64_t fh;
	uint32_t unused;
	uint32_t padding;
	uint64_t lock_owner;
};

struct fuse_read_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t read_flags;
	uint64_t lock_owner;
	uint32_t flags;
	uint32_t padding;
};

struct fuse_write_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t write_flags;
	uint64_t lock_owner;
	uint32_t flags;
	uint32_t padding;
};

struct fuse_write_out {
	uint32_t size;
	uint32_t padding;
};

struct fuse_kstatfs {
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint32_t bsize;
	uint32_t namelen;
	uint32_t frsize;
	uint32_t padding;
	uint32_t spare[6];
};

struct fuse_statfs_out {
	struct fuse_kstatfs st;
};

struct fuse_fsync_in {
	uint64_t fh;
	uint32_t fsync_flags;
	uint32_t padding;
};

struct fuse_fallocate_in {
	uint64_t fh;
	uint64_t offset;
	uint64_t length;
	uint32_t mode;
	uint32_t padding;
};

struct fuse_lseek_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t whence;
	uint32_t padding;
};

struct fuse_lseek_out {
	uint64_t offset;
};

struct fuse_forget_in {
	uint64_t nlookup;
};

struct fuse_forget_one {
	uint64_t nodeid;
	uint64_t nlookup;
};

struct fuse_batch_forget_in {
	uint32_t count;
	uint32_t dummy;
};

struct fuse_interrupt_in {
	uint64_t unique;
};

struct fuse_mknod_in {
	uint32_t mode;
	uint32_t rdev;
	uint32_t umask;
	uint32_t padding;
};

struct fuse_mkdir_in {
	uint32_t mode;
	uint32_t umask;
};

struct fuse_rename_in {
	uint64_t newdir;
};

struct fuse_rename2_in {
	uint64_t newdir;
	uint32_t flags;
	uint32_t padding;
};

struct fuse_link_in {
	uint64_t oldnodeid;
};

struct fuse_create_in {
	uint32_t flags;
	uint32_t mode;
	uint32_t umask;
	uint32_t open_flags;
};

struct fuse_access_in {
	uint32_t mask;
	uint32_t padding;
};

#define FUSE_COMPAT_SETXATTR_IN_SIZE 8 /* without FUSE_SETXATTR_EXT */

struct fuse_setxattr_in {
	uint32_t size;
	uint32_t flags;
	uint32_t setxattr_flags; /* only with FUSE_SETXATTR_EXT */
	uint32_t padding;
};

struct fuse_getxattr_in {
	uint32_t size;
	uint32_t padding;
};

struct fuse_getxattr_out {
	uint32_t size;
	uint32_t padding;
};

struct fuse_file_lock {
	uint64_t start;
	uint64_t end; /* inclusive; OFFSET_MAX (INT64_MAX) = to the end */
	uint32_t type;
	uint32_t pid;
};

struct fuse_lk_in {
	uint64_t fh;
	uint64_t owner;
	struct fuse_file_lock lk;
	uint32_t lk_flags;
	uint32_t padding;
};

struct fuse_lk_out {
	struct fuse_file_lock lk;
};

struct fuse_poll_in {
	uint64_t fh;
	uint64_t kh;
	uint32_t flags;
	uint32_t events;
};

struct fuse_poll_out {
	uint32_t revents;
	uint32_t padding;
};

struct fuse_ioctl_in {
	uint64_t fh;
	uint32_t flags;
	uint32_t cmd;
	uint64_t arg;
	uint32_t in_size;
	uint32_t out_size;
};

struct fuse_ioctl_out {
	int32_t result;
	uint32_t flags;
	uint32_t in_iovs;
	uint32_t out_iovs;
};

struct fuse_copy_file_range_in {
	uint64_t fh_in;
	uint64_t off_in;
	uint64_t nodeid_out;
	uint64_t fh_out;
	uint64_t off_out;
	uint64_t len;
	uint64_t flags;
};

/* The answer to FUSE_COPY_FILE_RANGE_64 (the 32-bit form answers fuse_write_out). */
struct fuse_copy_file_range_out {
	uint64_t bytes_copied;
};

struct fuse_statx_in {
	uint32_t getattr_flags; /* FUSE_GETATTR_FH */
	uint32_t reserved;
	uint64_t fh;
	uint32_t sx_flags;
	uint32_t sx_mask;
};

/* statx(2)'s own layout. */
struct fuse_sx_time {
	int64_t tv_sec;
	uint32_t tv_nsec;
	int32_t reserved;
};

struct fuse_statx {
	uint32_t mask;
	uint32_t blksize;
	uint64_t attributes;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint16_t mode;
	uint16_t spare0;
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t attributes_mask;
	struct fuse_sx_time atime, btime, ctime, mtime;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t spare2[14];
};

struct fuse_statx_out {
	uint64_t attr_valid;
	uint32_t attr_valid_nsec;
	uint32_t flags;
	uint64_t spare[2];
	struct fuse_statx stat;
};

struct fuse_syncfs_in {
	uint64_t padding;
};

/* ---- notifications (server -> kernel, unique 0) ---- */

struct fuse_notify_poll_wakeup_out {
	uint64_t kh;
};

struct fuse_notify_inval_inode_out {
	uint64_t ino;
	int64_t off;
	int64_t len;
};

struct fuse_notify_inval_entry_out {
	uint64_t parent;
	uint32_t namelen;
	uint32_t flags; /* FUSE_EXPIRE_ONLY */
};

struct fuse_notify_delete_out {
	uint64_t parent;
	uint64_t child;
	uint32_t namelen;
	uint32_t padding;
};

struct fuse_notify_store_out {
	uint64_t nodeid;
	uint64_t offset;
	uint32_t size;
	uint32_t padding;
};

struct fuse_notify_retrieve_out {
	uint64_t notify_unique;
	uint64_t nodeid;
	uint64_t offset;
	uint32_t size;
	uint32_t padding;
};

/* FUSE_NOTIFY_REPLY's header: fuse_write_in's size, with size at the same place. */
struct fuse_notify_retrieve_in {
	uint64_t dummy1;
	uint64_t offset;
	uint32_t size;
	uint32_t dummy2;
	uint64_t dummy3;
	uint64_t dummy4;
};

struct fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

struct fuse_dirent {
	uint64_t ino;
	uint64_t off;
	uint32_t namelen;
	uint32_t type;
	char name[];
};

struct fuse_direntplus {
	struct fuse_entry_out entry_out;
	struct fuse_dirent dirent;
};

/* ---- FUSE-over-io_uring (7.42+) ---- */

#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ 128

enum fuse_uring_cmd {
	FUSE_IO_URING_CMD_INVALID = 0,
	FUSE_IO_URING_CMD_REGISTER = 1,
	FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
	/* 7.46 (Linux 7.3): a queue set up explicitly, then its payload pool,
	 * both before the queue's first REGISTER. */
	FUSE_IO_URING_CMD_ADD_QUEUE = 3,
	FUSE_IO_URING_CMD_ADD_BUFPOOL = 4,
};

/* ADD_QUEUE's cmd_req.flags: the kernel lends READ/WRITE pages of files
 * opened with FOPEN_IO_URING_ZERO_COPY to the entries' buffer-table slots
 * (queues with a pool only; CAP_SYS_ADMIN). */
#define FUSE_URING_ZERO_COPY (1u << 0)
/* ent_in_out.flags: this request's page payload sits in the entry's
 * zero-copy slot, not in the pool buffer. */
#define FUSE_URING_ENT_ZERO_COPY (1u << 0)

struct fuse_uring_ent_in_out {
	uint64_t flags;     /* 0 in 6.18 */
	uint64_t commit_id; /* the request's unique; echo it back on commit */
	uint32_t payload_sz;
	uint32_t offset; /* 7.46, pool queues: where in the pool this request's buffer starts */
	uint64_t reserved;
};

/* The per-entry header buffer (iov[0] of REGISTER). */
struct fuse_uring_req_header {
	char in_out[FUSE_URING_IN_OUT_HEADER_SZ]; /* in_header on fetch, out_header on commit */
	char op_in[FUSE_URING_OP_IN_OUT_SZ];      /* the opcode's own header (in_args[0]) */
	struct fuse_uring_ent_in_out ring_ent_in_out;
};

/* Lives in the 80-byte command area of a 128-byte SQE. */
struct fuse_uring_cmd_req {
	uint64_t flags; /* 6.18: not read, always 0; 7.46: ADD_QUEUE's FUSE_URING_ZERO_COPY */
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
	/* 7.46; 6.18 reads only the first 24 bytes. */
	union {
		struct {
			uint64_t uaddr; /* ADD_BUFPOOL: the pool, cut into max_payload_sz buffers */
			uint32_t len;
			uint32_t reserved;
		} bufpool;
		uint16_t ent_zero_copy_buf_index; /* REGISTER on a zero-copy queue: the entry's slot */
	};
};

#define FUSE_STATIC_SIZE(type, bytes) _Static_assert(sizeof(type) == (bytes), #type " must be " #bytes " bytes")
FUSE_STATIC_SIZE(struct fuse_in_header, 40);
FUSE_STATIC_SIZE(struct fuse_out_header, 16);
FUSE_STATIC_SIZE(struct fuse_init_in, 64);
FUSE_STATIC_SIZE(struct fuse_init_out, 64);
FUSE_STATIC_SIZE(struct fuse_attr, 88);
FUSE_STATIC_SIZE(struct fuse_entry_out, 128);
FUSE_STATIC_SIZE(struct fuse_attr_out, 104);
FUSE_STATIC_SIZE(struct fuse_getattr_in, 16);
FUSE_STATIC_SIZE(struct fuse_setattr_in, 88);
FUSE_STATIC_SIZE(struct fuse_open_in, 8);
FUSE_STATIC_SIZE(struct fuse_open_out, 16);
FUSE_STATIC_SIZE(struct fuse_release_in, 24);
FUSE_STATIC_SIZE(struct fuse_flush_in, 24);
FUSE_STATIC_SIZE(struct fuse_read_in, 40);
FUSE_STATIC_SIZE(struct fuse_write_in, 40);
FUSE_STATIC_SIZE(struct fuse_write_out, 8);
FUSE_STATIC_SIZE(struct fuse_kstatfs, 80);
FUSE_STATIC_SIZE(struct fuse_statfs_out, 80);
FUSE_STATIC_SIZE(struct fuse_fsync_in, 16);
FUSE_STATIC_SIZE(struct fuse_fallocate_in, 32);
FUSE_STATIC_SIZE(struct fuse_lseek_in, 24);
FUSE_STATIC_SIZE(struct fuse_lseek_out, 8);
FUSE_STATIC_SIZE(struct fuse_forget_in, 8);
FUSE_STATIC_SIZE(struct fuse_forget_one, 16);
FUSE_STATIC_SIZE(struct fuse_batch_forget_in, 8);
FUSE_STATIC_SIZE(struct fuse_interrupt_in, 8);
FUSE_STATIC_SIZE(struct fuse_mknod_in, 16);
FUSE_STATIC_SIZE(struct fuse_mkdir_in, 8);
FUSE_STATIC_SIZE(struct fuse_rename_in, 8);
FUSE_STATIC_SIZE(struct fuse_rename2_in, 16);
FUSE_STATIC_SIZE(struct fuse_link_in, 8);
FUSE_STATIC_SIZE(struct fuse_create_in, 16);
FUSE_STATIC_SIZE(struct fuse_access_in, 8);
FUSE_STATIC_SIZE(struct fuse_setxattr_in, 16);
FUSE_STATIC_SIZE(struct fuse_getxattr_in, 8);
FUSE_STATIC_SIZE(struct fuse_getxattr_out, 8);
FUSE_STATIC_SIZE(struct fuse_file_lock, 24);
FUSE_STATIC_SIZE(struct fuse_lk_in, 48);
FUSE_STATIC_SIZE(struct fuse_lk_out, 24);
FUSE_STATIC_SIZE(struct fuse_poll_in, 24);
FUSE_STATIC_SIZE(struct fuse_poll_out, 8);
FUSE_STATIC_SIZE(struct fuse_ioctl_in, 32);
FUSE_STATIC_SIZE(struct fuse_ioctl_out, 16);
FUSE_STATIC_SIZE(struct fuse_copy_file_range_in, 56);
FUSE_STATIC_SIZE(struct fuse_copy_file_range_out, 8);
FUSE_STATIC_SIZE(struct fuse_statx_in, 24);
FUSE_STATIC_SIZE(struct fuse_sx_time, 16);
FUSE_STATIC_SIZE(struct fuse_statx, 256);
FUSE_STATIC_SIZE(struct fuse_statx_out, 288);
FUSE_STATIC_SIZE(struct fuse_syncfs_in, 8);
FUSE_STATIC_SIZE(struct fuse_notify_poll_wakeup_out, 8);
FUSE_STATIC_SIZE(struct fuse_notify_inval_inode_out, 24);
FUSE_STATIC_SIZE(struct fuse_notify_inval_entry_out, 16);
FUSE_STATIC_SIZE(struct fuse_notify_delete_out, 24);
FUSE_STATIC_SIZE(struct fuse_notify_store_out, 24);
FUSE_STATIC_SIZE(struct fuse_notify_retrieve_out, 32);
FUSE_STATIC_SIZE(struct fuse_notify_retrieve_in, 40);
FUSE_STATIC_SIZE(struct fuse_backing_map, 16);
FUSE_STATIC_SIZE(struct fuse_dirent, 24);
FUSE_STATIC_SIZE(struct fuse_direntplus, 152);
FUSE_STATIC_SIZE(struct fuse_uring_ent_in_out, 32);
FUSE_STATIC_SIZE(struct fuse_uring_req_header, 288);
FUSE_STATIC_SIZE(struct fuse_uring_cmd_req, 40);
_Static_assert(__builtin_offsetof(struct fuse_uring_req_header, op_in) == 128, "op_in at 128");
_Static_assert(__builtin_offsetof(struct fuse_uring_req_header, ring_ent_in_out) == 256, "ring_ent_in_out at 256");
_Static_assert(__builtin_offsetof(struct fuse_init_out, flags2) == 32, "init_out.flags2 at 32");
_Static_assert(__builtin_offsetof(struct fuse_notify_retrieve_in, size) == __builtin_offsetof(struct fuse_write_in, size),
	       "NOTIFY_REPLY's size sits where WRITE's does");
#undef FUSE_STATIC_SIZE

#endif
