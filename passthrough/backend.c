/* Every call the filesystem makes on SOURCE on behalf of a request.
 *
 * On the worker's io_uring (the completion continues the request, the
 * worker serves other requests meanwhile): reads, writes, fsync,
 * fallocate, ftruncate (an open file's, IORING_OP_FTRUNCATE, 6.9+), opens
 * (openat2: lookups, opens, creates, tmpfiles), statx (getattr, lookups,
 * readdirplus), mkdirat, symlinkat, linkat, unlinkat, renameat2, getxattr,
 * setxattr and close. The kernel completes some of them at once (reads
 * from the page cache, opens whose path is cached) and hands the rest to
 * its io-wq threads, which wait for the disk instead of the worker.
 *
 * Inline, because io_uring on Linux 6.18 has no operation for them; each is
 * metadata work answered from memory in the common case, and none is on the
 * read/write path:
 *   getdents64        readdir listings (a directory's pages, usually cached)
 *   readlinkat        readlink (the target sits in the inode or one page)
 *   fchmodat, fchownat, utimensat, truncate by path   setattr (rare; an open
 *                     file's truncate goes to the ring)
 *   mknodat           mknod of FIFOs, sockets and devices (rare)
 *   listxattr, removexattr
 *   lseek             SEEK_DATA/SEEK_HOLE (an extent lookup)
 *   fstatfs           statfs (the superblock's counters)
 *   flock             with LOCK_NB only: a lock that must wait is retried
 *                     from a worker timer, never waited for in the worker
 *   ioctl FS_IOC_GETFLAGS/SETFLAGS/FSGETXATTR/FSSETXATTR   lsattr, chattr
 *   ioctl FUSE_DEV_IOC_BACKING_OPEN/CLOSE   kernel passthrough (quick)
 *   close of O_PATH handles at FORGET, and of handles a lookup found twice
 * On a memory-backed SOURCE (tmpfs, ramfs) under --backend-io=auto (the
 * default), and everywhere under --backend-io=inline, the worker makes the
 * calls itself instead: small reads and writes (up to 64 KiB; larger ones
 * stay on the ring, where an io-wq thread copies on the other CPU while the
 * worker serves the next request) and the metadata calls. Nothing there
 * waits for a device, so nothing blocks; on the ring, io_uring would hand
 * every such call to an io-wq thread (statx, creating opens, mkdirat,
 * unlinkat, renameat and the xattr calls always go there, and tmpfs reads
 * and writes too, shmem having no non-blocking path): two context switches
 * around a few microseconds of work. bench/README.md has the numbers.
 * On a local disk filesystem (ext4, xfs, btrfs, f2fs) under
 * --backend-io=auto the worker makes the namespace calls itself: statx of
 * a held handle, creating opens, mkdirat, symlinkat, linkat, unlinkat and
 * renameat2. io_uring hands every one of them to io-wq, and they are
 * answered from memory in the common case (the kernel has just looked up
 * the directory; a journal wait is short); inline, unlinks ran 1.75x as
 * fast as on the ring (bench/README.md). Lookups, reads, writes, fsync and
 * fallocate stay on the ring there: an open that only looks a name up is
 * tried from the dentry cache first without a thread hop, and a name not
 * cached, like the data calls, may wait for the device.
 * --backend-io=ring keeps every call io_uring can do on the ring.
 *
 * Without io_uring at all (sysctl kernel.io_uring_disabled=2, where
 * furing_req_sqe returns NULL) every call here runs inline; the session
 * then serves each request on a blocking worker anyway. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../fscommon/inline_io.h"
#include "pt.h"

/* IORING_OP_FTRUNCATE (Linux 6.9) is newer than liburing 2.3's header:
 * its number from the kernel's uapi, the length in sqe->off. */
#define PT_IORING_OP_FTRUNCATE 55

const char pt_inline_calls[] =
	"getdents64 (readdir), readlinkat, fchmodat/fchownat/utimensat and truncate by path\n"
	"  (setattr), mknodat (FIFOs, sockets, devices), listxattr, removexattr, lseek\n"
	"  (SEEK_DATA/SEEK_HOLE), fstatfs, flock (never waiting: a lock that must wait is\n"
	"  retried from a worker timer), the inode-flag ioctls (lsattr/chattr) and the\n"
	"  kernel passthrough ioctls";

const char *pt_fd_path(char *buf, int fd)
{
	snprintf(buf, PT_FD_PATH_MAX, "/proc/self/fd/%d", fd);
	return buf;
}

void be_probe(struct pt_fs *fs)
{
	struct io_uring_probe *p = io_uring_get_probe();

	if (!p)
		return; /* no io_uring at all: everything is inline anyway */
	fs->ring_ftruncate = io_uring_opcode_supported(p, PT_IORING_OP_FTRUNCATE);
	io_uring_free_probe(p);
}

static int res_of(long r)
{
	return r < 0 ? -errno : (int)r;
}

/* Whether @req's call runs in the worker rather than on the ring: every
 * call under inline_calls (SOURCE in memory, --backend-io=inline), and a
 * namespace call (@name_call: statx of a held handle, creating, linking,
 * removing and renaming names) under inline_names too (SOURCE on a local
 * disk filesystem, where they are answered from memory in the common case
 * and io_uring would hand each to an io-wq thread; bench/README.md). */
static bool runs_inline(struct furing_req *req, bool name_call)
{
	const struct pt_fs *fs = pt_fs_of(req);

	return fs->inline_calls || (name_call && fs->inline_names) ||
	       !furing_session_has_io_uring(furing_req_session(req));
}

/* An SQE on the request's worker ring, or NULL when the call runs inline
 * (runs_inline). *pers: @who's personality, to be set after the prep
 * helper (which clears the field). When the personality cannot be had,
 * @done has been called with the error and *failed is set. */
static struct io_uring_sqe *sqe_as(struct furing_req *req, const struct furing_ctx *who, bool name_call,
				   furing_io_done done, bool *failed, uint16_t *pers)
{
	*failed = false;
	*pers = 0;
	if (runs_inline(req, name_call))
		return NULL;
	int id = ident_personality(req, who);
	if (id < 0) {
		*failed = true;
		done(req, id);
		return NULL;
	}
	*pers = (uint16_t)id;
	return furing_req_sqe(req, done);
}

static struct io_uring_sqe *sqe_plain(struct furing_req *req, bool name_call, furing_io_done done)
{
	bool failed;
	uint16_t pers;
	return sqe_as(req, NULL, name_call, done, &failed, &pers);
}

/* The calls made as the caller (@who): each creates something SOURCE's
 * filesystem gives an owner. One description of the call serves both ways
 * of making it: as an SQE carrying @who's personality, or inline with the
 * thread's fsuid/fsgid switched around the system call (ident.c). */
enum be_as_op { BE_OPENAT2, BE_MKDIRAT, BE_SYMLINKAT, BE_MKNODAT, BE_RENAMEAT2 };

struct be_as_call {
	enum be_as_op op;
	int dirfd;
	const char *name;
	int newdirfd;        /* renameat2 */
	const char *newname; /* renameat2; symlinkat: the target */
	mode_t mode;         /* mkdirat, mknodat */
	dev_t rdev;          /* mknodat */
	unsigned int flags;  /* renameat2 */
	struct open_how *how; /* openat2 */
};

static void be_as_prep(struct io_uring_sqe *sqe, const struct be_as_call *c)
{
	switch (c->op) {
	case BE_OPENAT2:
		io_uring_prep_openat2(sqe, c->dirfd, c->name, c->how);
		break;
	case BE_MKDIRAT:
		io_uring_prep_mkdirat(sqe, c->dirfd, c->name, c->mode);
		break;
	case BE_SYMLINKAT:
		io_uring_prep_symlinkat(sqe, c->newname, c->dirfd, c->name);
		break;
	case BE_RENAMEAT2:
		io_uring_prep_renameat(sqe, c->dirfd, c->name, c->newdirfd, c->newname, c->flags);
		break;
	case BE_MKNODAT:
		break; /* never on the ring: io_uring has no mknodat */
	}
}

static long be_as_syscall(const struct be_as_call *c)
{
	switch (c->op) {
	case BE_OPENAT2:
		return syscall(SYS_openat2, c->dirfd, c->name, c->how, sizeof(*c->how));
	case BE_MKDIRAT:
		return mkdirat(c->dirfd, c->name, c->mode);
	case BE_SYMLINKAT:
		return symlinkat(c->newname, c->dirfd, c->name);
	case BE_MKNODAT:
		return mknodat(c->dirfd, c->name, c->mode, c->rdev);
	case BE_RENAMEAT2:
		return renameat2(c->dirfd, c->name, c->newdirfd, c->newname, c->flags);
	}
	errno = ENOSYS;
	return -1;
}

/* Every call here is a namespace call but the opens that only look a name
 * up (no O_CREAT or O_TMPFILE): on the ring the kernel first tries those
 * from the dentry cache without a thread hop, and only a name it has not
 * cached goes to io-wq (and may wait for the disk there). */
static bool be_as_name_call(const struct be_as_call *c)
{
	return c->op != BE_OPENAT2 || (c->how->flags & O_CREAT) || (c->how->flags & O_TMPFILE) == O_TMPFILE;
}

/* Makes @c as @who: on the ring when it can go there (io_uring has no
 * mknodat), else inline. */
static void be_as(struct furing_req *req, const struct furing_ctx *who, const struct be_as_call *c,
		  furing_io_done done)
{
	if (c->op != BE_MKNODAT) {
		bool failed;
		uint16_t pers;
		struct io_uring_sqe *sqe = sqe_as(req, who, be_as_name_call(c), done, &failed, &pers);

		if (failed)
			return;
		if (sqe) {
			be_as_prep(sqe, c);
			sqe->personality = pers; /* after the prep, which clears it */
			return;
		}
	}
	struct ident_saved saved;
	int ret = ident_enter(pt_fs_of(req), who, true, &saved);
	if (ret == 0) {
		ret = res_of(be_as_syscall(c));
		ident_leave(pt_fs_of(req), &saved);
	}
	done(req, ret);
}

void be_openat2(struct furing_req *req, const struct furing_ctx *who, int dirfd, const char *path,
		struct open_how *how, furing_io_done done)
{
	be_as(req, who, &(struct be_as_call){.op = BE_OPENAT2, .dirfd = dirfd, .name = path, .how = how}, done);
}

void be_statx(struct furing_req *req, int dirfd, const char *path, int flags, unsigned int mask, struct statx *out,
	      furing_io_done done)
{
	struct io_uring_sqe *sqe = sqe_plain(req, true, done);

	if (sqe) {
		io_uring_prep_statx(sqe, dirfd, path, flags, mask, out);
		return;
	}
	done(req, res_of(statx(dirfd, path, flags, mask, out)));
}

void be_close(struct furing_req *req, int fd, furing_io_done done)
{
	struct io_uring_sqe *sqe = sqe_plain(req, false, done);

	if (sqe) {
		io_uring_prep_close(sqe, fd);
		return;
	}
	done(req, res_of(close(fd)));
}

void be_mkdirat(struct furing_req *req, const struct furing_ctx *who, int dirfd, const char *name, mode_t mode,
		furing_io_done done)
{
	be_as(req, who, &(struct be_as_call){.op = BE_MKDIRAT, .dirfd = dirfd, .name = name, .mode = mode}, done);
}

void be_symlinkat(struct furing_req *req, const struct furing_ctx *who, const char *target, int dirfd,
		  const char *name, furing_io_done done)
{
	be_as(req, who, &(struct be_as_call){.op = BE_SYMLINKAT, .dirfd = dirfd, .name = name, .newname = target},
	      done);
}

void be_mknodat(struct furing_req *req, const struct furing_ctx *who, int dirfd, const char *name, mode_t mode,
		dev_t rdev, furing_io_done done)
{
	be_as(req, who,
	      &(struct be_as_call){.op = BE_MKNODAT, .dirfd = dirfd, .name = name, .mode = mode, .rdev = rdev}, done);
}

/* @oldpath is a node's /proc/self/fd path: AT_SYMLINK_FOLLOW follows that
 * magic link to the node itself (a symlink node is linked, not followed
 * further), and works without CAP_DAC_READ_SEARCH, unlike AT_EMPTY_PATH. */
void be_linkat(struct furing_req *req, const char *oldpath, int newdirfd, const char *newname, furing_io_done done)
{
	struct io_uring_sqe *sqe = sqe_plain(req, true, done);

	if (sqe) {
		io_uring_prep_linkat(sqe, AT_FDCWD, oldpath, newdirfd, newname, AT_SYMLINK_FOLLOW);
		return;
	}
	done(req, res_of(linkat(AT_FDCWD, oldpath, newdirfd, newname, AT_SYMLINK_FOLLOW)));
}

void be_unlinkat(struct furing_req *req, int dirfd, const char *name, int flags, furing_io_done done)
{
	struct io_uring_sqe *sqe = sqe_plain(req, true, done);

	if (sqe) {
		io_uring_prep_unlinkat(sqe, dirfd, name, flags);
		return;
	}
	done(req, res_of(unlinkat(dirfd, name, flags)));
}

void be_renameat2(struct furing_req *req, const struct furing_ctx *who, int olddirfd, const char *oldname,
		  int newdirfd, const char *newname, unsigned int flags, furing_io_done done)
{
	be_as(req, who,
	      &(struct be_as_call){.op = BE_RENAMEAT2, .dirfd = olddirfd, .name = oldname, .newdirfd = newdirfd,
				   .newname = newname, .flags = flags},
	      done);
}

void be_ftruncate(struct furing_req *req, int fd, uint64_t size, furing_io_done done)
{
	struct io_uring_sqe *sqe = pt_fs_of(req)->ring_ftruncate ? sqe_plain(req, false, done) : NULL;

	if (sqe) {
		/* No liburing 2.3 helper: the fields IORING_OP_FTRUNCATE reads. */
		sqe->opcode = PT_IORING_OP_FTRUNCATE;
		sqe->fd = fd;
		sqe->off = size;
		return;
	}
	done(req, res_of(ftruncate(fd, (off_t)size)));
}

void be_getxattr(struct furing_req *req, const char *path, const char *name, void *value, size_t size,
		 furing_io_done done)
{
	struct io_uring_sqe *sqe = sqe_plain(req, false, done);

	if (sqe) {
		io_uring_prep_getxattr(sqe, name, value, path, (unsigned int)size);
		return;
	}
	done(req, res_of(getxattr(path, name, value, size)));
}

void be_setxattr(struct furing_req *req, const char *path, const char *name, const void *value, size_t size,
		 int flags, furing_io_done done)
{
	struct io_uring_sqe *sqe = sqe_plain(req, false, done);

	if (sqe) {
		io_uring_prep_setxattr(sqe, name, value, path, flags, (unsigned int)size);
		return;
	}
	done(req, res_of(setxattr(path, name, value, size, flags)));
}

void be_rw(struct furing_req *req, bool write, int fd, void *buf, uint32_t len, uint64_t off, bool inline_ok,
	   furing_io_done done)
{
	inline_io_rw(req, fd, write, buf, len, off, inline_ok, done);
}

void be_fsync(struct furing_req *req, int fd, bool datasync, furing_io_done done)
{
	if (pt_fs_of(req)->inline_calls)
		done(req, res_of(datasync ? fdatasync(fd) : fsync(fd)));
	else
		furing_req_fsync(req, fd, datasync, done);
}

void be_fallocate(struct furing_req *req, int fd, int mode, uint64_t off, uint64_t len, furing_io_done done)
{
	if (pt_fs_of(req)->inline_calls)
		done(req, res_of(fallocate(fd, mode, (off_t)off, (off_t)len)));
	else
		furing_req_fallocate(req, fd, mode, off, len, done);
}
