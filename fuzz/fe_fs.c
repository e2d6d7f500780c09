/* The engine fuzzer's filesystem: see fe_fs.h. The operations check what
 * they are handed and choose how and when to answer; what they answer with
 * is fe_answer.c. Only the public API is used to answer. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>

#include "fe_answer.h"
#include "fe_fs.h"
#include "fe_input.h"
#include "fe_kernel.h"

#define MAX_DEFERRED 64

static struct furing_req *deferred[MAX_DEFERRED];
static unsigned int ndeferred;
static bool setxattr_ext;

static struct fe_ctx *start(struct furing_req *req, uint32_t op)
{
	fe_enter(req);
	struct fe_ctx *c = fe_ctx_of(req);
	memset(c, 0, sizeof(*c));
	c->req = req;
	c->op = op;
	return c;
}

/* ---- the other thread: runs a job while the worker waits for it ---- */

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cond = PTHREAD_COND_INITIALIZER;
static void (*job)(struct furing_req *);
static struct furing_req *job_req;

static void *helper_main(void *arg)
{
	pthread_mutex_lock(&job_lock);
	for (;;) {
		while (!job)
			pthread_cond_wait(&job_cond, &job_lock);
		void (*fn)(struct furing_req *) = job;
		struct furing_req *r = job_req;
		pthread_mutex_unlock(&job_lock);
		fn(r);
		pthread_mutex_lock(&job_lock);
		job = NULL;
		pthread_cond_broadcast(&job_cond);
	}
	return NULL;
}

/* Deterministic: the caller waits until the other thread is done. */
static void run_elsewhere(void (*fn)(struct furing_req *), struct furing_req *req)
{
	pthread_mutex_lock(&job_lock);
	job = fn;
	job_req = req;
	pthread_cond_broadcast(&job_cond);
	while (job)
		pthread_cond_wait(&job_cond, &job_lock);
	pthread_mutex_unlock(&job_lock);
}

/* ---- answering later: I/O on the worker's ring, events, other threads ---- */

static void start_io(struct furing_req *req);

static void io_done(struct furing_req *req, int res)
{
	struct fe_ctx *c = fe_ctx_of(req);

	if (res < 0 && (fe_choice8() & 3) != 0) {
		fe_say_err(req, res == INT32_MIN ? EIO : -res);
		return;
	}
	if (--c->io_left > 0) {
		start_io(req);
		return;
	}
	switch (c->op) {
	case FUSE_READ: /* what the kernel read into the buffer */
		fe_say_buf(req, res < 0 ? 0 : (uint32_t)res < c->size ? (uint32_t)res : c->size);
		return;
	case FUSE_WRITE:
		fe_say_write(req, res < 0 ? 0 : (uint32_t)res < c->size ? (uint32_t)res : c->size);
		return;
	case FUSE_STATX:
		if (res == 0 && furing_req_buf_size(req) >= sizeof(struct statx)) {
			struct statx stx;
			memcpy(&stx, furing_req_buf(req), sizeof(stx));
			fe_say_statx(req, &stx);
			return;
		}
		break;
	default:
		break;
	}
	fe_answer(req);
}

static void start_io(struct furing_req *req)
{
	struct fe_ctx *c = fe_ctx_of(req);
	const uint64_t off = fe_choice64();

	switch (c->op) {
	case FUSE_READ:
		furing_req_pread(req, FE_IO_FD, furing_req_buf(req), c->size, off, io_done);
		return;
	case FUSE_WRITE:
		furing_req_pwrite(req, FE_IO_FD, c->in, c->size, off, io_done);
		return;
	case FUSE_FSYNC: case FUSE_FSYNCDIR: case FUSE_FLUSH: case FUSE_SYNCFS:
		furing_req_fsync(req, FE_IO_FD, c->datasync, io_done);
		return;
	case FUSE_FALLOCATE:
		furing_req_fallocate(req, FE_IO_FD, 0, off, fe_choice64(), io_done);
		return;
	case FUSE_STATX:
		if (furing_req_buf_size(req) >= sizeof(struct statx)) {
			struct io_uring_sqe *sqe = furing_req_sqe(req, io_done);
			FE_CHECK(sqe != NULL);
			io_uring_prep_statx(sqe, FE_IO_FD, "", AT_EMPTY_PATH, STATX_BASIC_STATS,
					    (struct statx *)furing_req_buf(req));
			return;
		}
		break;
	default:
		break;
	}
	struct io_uring_sqe *sqe = furing_req_sqe(req, io_done);
	FE_CHECK(sqe != NULL);
	io_uring_prep_nop(sqe);
}

static void poll_event(struct furing_event *ev, int res)
{
	struct fe_ctx *c = (struct fe_ctx *)(void *)ev; /* ev is the context's first member */
	if (res == -ECANCELED)
		fe_say_err(c->req, EINTR);
	else
		fe_say_poll(c->req, res < 0 ? POLLERR : (uint32_t)res);
}

/* POLL's way of answering later: a worker event (timeout, poll, any SQE),
 * sometimes cancelled at once. */
static void start_event(struct furing_req *req)
{
	struct fe_ctx *c = fe_ctx_of(req);
	struct furing_worker *w = furing_req_worker(req);

	c->ev.fn = poll_event;
	switch (fe_choice8() % 3) {
	case 0:
		FE_CHECK(furing_worker_timeout(w, &c->ev, fe_choice64() % 4000000000u) == 0);
		break;
	case 1:
		FE_CHECK(furing_worker_poll(w, &c->ev, FE_IO_FD, POLLIN) == 0);
		break;
	default: {
		struct io_uring_sqe *sqe = furing_worker_sqe(w, &c->ev);
		FE_CHECK(sqe != NULL);
		io_uring_prep_nop(sqe);
		break;
	}
	}
	if (fe_choice8() % 4 == 1)
		FE_CHECK(furing_worker_cancel(w, &c->ev) == 0);
}

static void go(struct furing_req *req)
{
	struct fe_ctx *c = fe_ctx_of(req);

	switch (fe_choice8() % 16) {
	case 7: case 8:
		fe_say_err(req, fe_an_errno());
		return;
	case 9: case 10:
		if (c->op == FUSE_POLL) {
			start_event(req);
		} else {
			c->io_left = (uint8_t)(1 + fe_pick(3));
			start_io(req);
		}
		return;
	case 11: case 12:
		FE_CHECK(ndeferred < MAX_DEFERRED);
		deferred[ndeferred++] = req;
		return;
	case 13: case 14:
		run_elsewhere(fe_answer, req);
		return;
	case 15:
		/* A second answer is a filesystem bug the engine must shrug off. */
		fe_answer(req);
		fe_expect_warning();
		furing_reply_err(req, EIO);
		return;
	default:
		fe_answer(req);
		return;
	}
}

bool fe_fs_deferred(void)
{
	return ndeferred > 0;
}

void fe_fs_answer_deferred(unsigned int which, bool foreign)
{
	if (!ndeferred)
		return;
	which %= ndeferred;
	struct furing_req *req = deferred[which];
	deferred[which] = deferred[--ndeferred];
	if (foreign)
		run_elsewhere(fe_answer, req);
	else
		fe_answer(req);
	fe_kernel_settle();
}

void fe_fs_notify(struct furing_session *s)
{
	char name[260];
	int ret;

	fe_make_name(name, 3);
	fe_expect_notification();
	switch (fe_choice8() % 5) {
	case 0:
		ret = furing_notify_inval_inode(s, fe_choice64(), (int64_t)fe_choice64(), (int64_t)fe_choice64());
		break;
	case 1:
		ret = furing_notify_inval_entry(s, fe_choice64(), name, fe_choice32());
		break;
	case 2:
		ret = furing_notify_delete(s, fe_choice64(), fe_choice64(), name);
		break;
	case 3:
		ret = furing_notify_store(s, fe_choice64(), fe_choice64(), fe_pattern(), fe_choice32() % FE_PAYLOAD_MAX);
		break;
	default:
		ret = furing_notify_poll(s, fe_choice64());
		break;
	}
	FE_CHECK(ret == 0 || (ret == -EINVAL && name[0] == '\0'));
}

/* ---- the operations ---- */

static void op_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	start(req, FUSE_LOOKUP);
	fe_check_name(req, name);
	go(req);
}

static void op_forget(void *fs, uint64_t ino, uint64_t nlookup)
{
}

static volatile uint64_t sink;

static void op_forget_multi(void *fs, size_t count, const struct furing_forget *forgets)
{
	FE_CHECK(count > 0);
	for (size_t i = 0; i < count; i++)
		sink += forgets[i].ino + forgets[i].nlookup; /* ASan: every entry is readable */
}

static void op_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	start(req, FUSE_GETATTR);
	if (fi)
		FE_CHECK(fi->req_flags == 0);
	go(req);
}

static void op_setattr(struct furing_req *req, uint64_t ino, const struct furing_setattr *attr,
		       const struct furing_file *fi)
{
	const uint32_t known = FURING_SET_MODE | FURING_SET_UID | FURING_SET_GID | FURING_SET_SIZE | FURING_SET_ATIME |
			       FURING_SET_MTIME | FURING_SET_ATIME_NOW | FURING_SET_MTIME_NOW | FURING_SET_CTIME |
			       FURING_SET_KILL_SUIDGID;
	start(req, FUSE_SETATTR);
	FE_CHECK((attr->valid & ~known) == 0);
	if (fi)
		FE_CHECK((fi->req_flags & ~FURING_FILE_LOCK_OWNER) == 0);
	go(req);
}

static void op_readlink(struct furing_req *req, uint64_t ino)
{
	start(req, FUSE_READLINK);
	go(req);
}

static void op_mknod(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, dev_t rdev)
{
	start(req, FUSE_MKNOD);
	fe_check_name(req, name);
	go(req);
}

static void op_mkdir(struct furing_req *req, uint64_t parent, const char *name, mode_t mode)
{
	start(req, FUSE_MKDIR);
	fe_check_name(req, name);
	FE_CHECK(S_ISDIR(mode));
	go(req);
}

static void op_unlink(struct furing_req *req, uint64_t parent, const char *name)
{
	start(req, FUSE_UNLINK);
	fe_check_name(req, name);
	go(req);
}

static void op_rmdir(struct furing_req *req, uint64_t parent, const char *name)
{
	start(req, FUSE_RMDIR);
	fe_check_name(req, name);
	go(req);
}

static void op_symlink(struct furing_req *req, const char *target, uint64_t parent, const char *name)
{
	start(req, FUSE_SYMLINK);
	fe_check_name(req, target);
	fe_check_name(req, name);
	FE_CHECK(target == name + strlen(name) + 1);
	go(req);
}

static void op_rename(struct furing_req *req, uint64_t parent, const char *name, uint64_t newparent,
		      const char *newname, unsigned int flags)
{
	start(req, FUSE_RENAME);
	fe_check_name(req, name);
	fe_check_name(req, newname);
	go(req);
}

static void op_link(struct furing_req *req, uint64_t ino, uint64_t newparent, const char *newname)
{
	start(req, FUSE_LINK);
	fe_check_name(req, newname);
	go(req);
}

static void op_access(struct furing_req *req, uint64_t ino, int mask)
{
	start(req, FUSE_ACCESS);
	go(req);
}

static void op_statfs(struct furing_req *req, uint64_t ino)
{
	start(req, FUSE_STATFS);
	go(req);
}

static void op_statx(struct furing_req *req, uint64_t ino, int flags, uint32_t mask, const struct furing_file *fi)
{
	start(req, FUSE_STATX);
	go(req);
}

static void op_open(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	start(req, FUSE_OPEN);
	FE_CHECK(fi && fi->fh == 0 && (fi->req_flags & ~FURING_FILE_KILL_SUIDGID) == 0);
	go(req);
}

static void op_create(struct furing_req *req, uint64_t parent, const char *name, mode_t mode,
		      const struct furing_file *fi)
{
	start(req, FUSE_CREATE);
	fe_check_name(req, name);
	FE_CHECK(fi && fi->fh == 0);
	go(req);
}

static void op_tmpfile(struct furing_req *req, uint64_t parent, mode_t mode, const struct furing_file *fi)
{
	start(req, FUSE_TMPFILE);
	FE_CHECK(fi && fi->fh == 0);
	go(req);
}

static void op_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi)
{
	struct fe_ctx *c = start(req, FUSE_READ);
	FE_CHECK(fi && size <= furing_req_buf_size(req));
	c->size = size;
	go(req);
}

static void op_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
		     const struct furing_file *fi)
{
	struct fe_ctx *c = start(req, FUSE_WRITE);
	FE_CHECK(fi);
	fe_check_data(req, data, size);
	c->in = data;
	c->size = size;
	go(req);
}

static void op_flush(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	start(req, FUSE_FLUSH);
	FE_CHECK(fi && (fi->req_flags & FURING_FILE_LOCK_OWNER));
	go(req);
}

static void op_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	start(req, FUSE_RELEASE);
	FE_CHECK(fi);
	go(req);
}

static void op_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	struct fe_ctx *c = start(req, FUSE_FSYNC);
	c->datasync = datasync;
	go(req);
}

static void op_fallocate(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
			 const struct furing_file *fi)
{
	start(req, FUSE_FALLOCATE);
	go(req);
}

static void op_lseek(struct furing_req *req, uint64_t ino, uint64_t off, int whence, const struct furing_file *fi)
{
	start(req, FUSE_LSEEK);
	go(req);
}

static void op_copy_file_range(struct furing_req *req, uint64_t ino_in, uint64_t off_in,
			       const struct furing_file *fi_in, uint64_t ino_out, uint64_t off_out,
			       const struct furing_file *fi_out, uint64_t len, uint64_t flags)
{
	/* Both forms arrive here: the answer's layout follows the opcode. */
	start(req, fe_rec_of(req)->opcode);
	FE_CHECK(fi_in && fi_out && fi_in != fi_out);
	go(req);
}

static void op_opendir(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	start(req, FUSE_OPENDIR);
	go(req);
}

static void op_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
		       const struct furing_file *fi)
{
	struct fe_ctx *c = start(req, FUSE_READDIR);
	FE_CHECK(size <= furing_req_buf_size(req));
	c->size = size;
	go(req);
}

static void op_readdirplus(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			   const struct furing_file *fi)
{
	struct fe_ctx *c = start(req, FUSE_READDIRPLUS);
	FE_CHECK(size <= furing_req_buf_size(req));
	c->size = size;
	go(req);
}

static void op_releasedir(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	start(req, FUSE_RELEASEDIR);
	go(req);
}

static void op_fsyncdir(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	struct fe_ctx *c = start(req, FUSE_FSYNCDIR);
	c->datasync = datasync;
	go(req);
}

static void op_setxattr(struct furing_req *req, uint64_t ino, const char *name, const void *value, size_t size,
			int flags, uint32_t xflags)
{
	start(req, FUSE_SETXATTR);
	fe_check_name(req, name);
	fe_check_data(req, value, size);
	FE_CHECK(setxattr_ext || xflags == 0);
	go(req);
}

static void op_getxattr(struct furing_req *req, uint64_t ino, const char *name, size_t size)
{
	struct fe_ctx *c = start(req, FUSE_GETXATTR);
	fe_check_name(req, name);
	c->in = name;
	c->size = (uint32_t)size;
	go(req);
}

static void op_listxattr(struct furing_req *req, uint64_t ino, size_t size)
{
	struct fe_ctx *c = start(req, FUSE_LISTXATTR);
	c->size = (uint32_t)size;
	go(req);
}

static void op_removexattr(struct furing_req *req, uint64_t ino, const char *name)
{
	start(req, FUSE_REMOVEXATTR);
	fe_check_name(req, name);
	go(req);
}

static void check_lock(const struct furing_file *fi, const struct flock *lk)
{
	FE_CHECK(fi && (fi->req_flags & FURING_FILE_LOCK_OWNER));
	FE_CHECK(lk->l_whence == SEEK_SET && lk->l_start >= 0 && lk->l_len >= 0);
}

static void op_getlk(struct furing_req *req, uint64_t ino, const struct furing_file *fi, const struct flock *lock)
{
	start(req, FUSE_GETLK);
	check_lock(fi, lock);
	go(req);
}

static void op_setlk(struct furing_req *req, uint64_t ino, const struct furing_file *fi, const struct flock *lock,
		     bool sleep)
{
	start(req, sleep ? FUSE_SETLKW : FUSE_SETLK);
	check_lock(fi, lock);
	go(req);
}

static void op_flock(struct furing_req *req, uint64_t ino, const struct furing_file *fi, int op)
{
	start(req, fe_rec_of(req)->opcode);
	FE_CHECK(fi && (fi->req_flags & FURING_FILE_LOCK_OWNER));
	int how = op & ~LOCK_NB;
	FE_CHECK(how == LOCK_SH || how == LOCK_EX || how == LOCK_UN);
	go(req);
}

static void op_interrupt(void *fs, uint64_t unique)
{
}

static void op_poll(struct furing_req *req, uint64_t ino, const struct furing_file *fi, uint64_t kh,
		    bool schedule_notify, uint32_t events)
{
	start(req, FUSE_POLL);
	if (schedule_notify && (fe_choice8() & 1)) {
		fe_expect_notification();
		FE_CHECK(furing_notify_poll(furing_req_session(req), kh) == 0);
	}
	go(req);
}

static void op_ioctl(struct furing_req *req, uint64_t ino, unsigned int cmd, uint64_t arg,
		     const struct furing_file *fi, unsigned int flags, const void *in_buf, size_t in_size,
		     size_t out_size)
{
	struct fe_ctx *c = start(req, FUSE_IOCTL);
	FE_CHECK((flags & ~(unsigned int)(FURING_IOCTL_COMPAT | FURING_IOCTL_DIR)) == 0);
	fe_check_data(req, in_buf, in_size);
	c->in = in_buf;
	c->in_len = (uint32_t)in_size;
	c->size = (uint32_t)out_size;
	go(req);
}

static void op_syncfs(struct furing_req *req, uint64_t ino)
{
	start(req, FUSE_SYNCFS);
	go(req);
}

static void op_retrieve_reply(struct furing_req *req, void *cookie, uint64_t ino, uint64_t off, const void *data,
			      size_t size)
{
	start(req, FUSE_NOTIFY_REPLY);
	fe_check_data(req, data, size);
	FE_CHECK(fe_retrieve_cookie_ok(cookie));
}

const struct furing_ops fe_fs_ops = {
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.access = op_access,
	.statfs = op_statfs,
	.statx = op_statx,
	.open = op_open,
	.create = op_create,
	.tmpfile = op_tmpfile,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.getlk = op_getlk,
	.setlk = op_setlk,
	.flock = op_flock,
	.interrupt = op_interrupt,
	.poll = op_poll,
	.ioctl = op_ioctl,
	.syncfs = op_syncfs,
	.retrieve_reply = op_retrieve_reply,
};

void fe_fs_init(void)
{
	pthread_t t;
	FE_CHECK(pthread_create(&t, NULL, helper_main, NULL) == 0);
	pthread_detach(t);
}

void fe_fs_begin(uint32_t psize, bool ext)
{
	fe_answer_begin(psize);
	setxattr_ext = ext;
	ndeferred = 0;
}
