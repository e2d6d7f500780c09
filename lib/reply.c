/* The public answer calls: each encodes its wire struct (proto/encode.c) on
 * the stack and leaves through fu_answer, which hands it to the transport
 * before returning. The directory-listing builder lives here too. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "engine.h"
#include "proto/encode.h"

static void answer_one(struct furing_req *r, const void *p, size_t len)
{
	struct iovec iov = {(void *)p, len};
	fu_answer(r, 0, &iov, 1);
}

void furing_reply_err(struct furing_req *r, int err)
{
	fu_answer(r, err, NULL, 0);
}

void furing_reply_entry(struct furing_req *r, const struct furing_entry *e)
{
	struct fuse_entry_out out;

	fu_encode_entry(&out, e);
	answer_one(r, &out, sizeof(out));
}

void furing_reply_attr(struct furing_req *r, const struct stat *st, double timeout_s)
{
	struct fuse_attr_out out;

	memset(&out, 0, sizeof(out));
	fu_encode_timeout(timeout_s, &out.attr_valid, &out.attr_valid_nsec);
	fu_encode_attr(&out.attr, st);
	answer_one(r, &out, sizeof(out));
}

void furing_reply_readlink(struct furing_req *r, const char *target)
{
	furing_reply_data(r, target, strlen(target));
}

/* Zero-copy is the library's to grant: only where a queue lends pages. */
static struct furing_open granted_open(const struct furing_req *r, const struct furing_open *o)
{
	struct furing_open g = *o;

	if (!atomic_load_explicit(&r->w->s->queues_zc, memory_order_relaxed))
		g.flags &= ~FURING_OPEN_ZERO_COPY;
	return g;
}

void furing_reply_open(struct furing_req *r, const struct furing_open *o)
{
	struct fuse_open_out out;
	struct furing_open g = granted_open(r, o);

	fu_encode_open(&out, &g);
	answer_one(r, &out, sizeof(out));
}

void furing_reply_create(struct furing_req *r, const struct furing_entry *e, const struct furing_open *o)
{
	struct fuse_entry_out entry;
	struct fuse_open_out open;
	struct furing_open g = granted_open(r, o);

	fu_encode_entry(&entry, e);
	fu_encode_open(&open, &g);
	struct iovec iov[2] = {{&entry, sizeof(entry)}, {&open, sizeof(open)}};
	fu_answer(r, 0, iov, 2);
}

void furing_reply_write(struct furing_req *r, uint32_t count)
{
	struct fuse_write_out out = {.size = count, .padding = 0};

	r->ans_bytes = count;
	answer_one(r, &out, sizeof(out));
}

void furing_reply_copy(struct furing_req *r, uint64_t count)
{
	if (r->msg.opcode == FUSE_COPY_FILE_RANGE_64) {
		struct fuse_copy_file_range_out out = {.bytes_copied = count};
		answer_one(r, &out, sizeof(out));
		return;
	}
	/* The 32-bit form's answer is a WRITE's. */
	struct fuse_write_out out = {.size = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count, .padding = 0};
	answer_one(r, &out, sizeof(out));
}

void furing_reply_lseek(struct furing_req *r, uint64_t off)
{
	struct fuse_lseek_out out = {.offset = off};
	answer_one(r, &out, sizeof(out));
}

void furing_reply_statfs(struct furing_req *r, const struct statvfs *st)
{
	struct fuse_statfs_out out;

	fu_encode_statfs(&out.st, st);
	answer_one(r, &out, sizeof(out));
}

void furing_reply_statx(struct furing_req *r, const struct statx *stx, double timeout_s)
{
	struct fuse_statx_out out;

	memset(&out, 0, sizeof(out));
	fu_encode_timeout(timeout_s, &out.attr_valid, &out.attr_valid_nsec);
	fu_encode_statx(&out.stat, stx);
	answer_one(r, &out, sizeof(out));
}

void furing_reply_xattr_size(struct furing_req *r, size_t size)
{
	struct fuse_getxattr_out out = {.size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size, .padding = 0};
	answer_one(r, &out, sizeof(out));
}

void furing_reply_lock(struct furing_req *r, const struct flock *lock)
{
	struct fuse_lk_out out;

	fu_flock_to_lock(lock, &out.lk);
	answer_one(r, &out, sizeof(out));
}

void furing_reply_poll(struct furing_req *r, uint32_t revents)
{
	struct fuse_poll_out out = {.revents = revents, .padding = 0};
	answer_one(r, &out, sizeof(out));
}

void furing_reply_ioctl(struct furing_req *r, int result, const void *buf, size_t size)
{
	struct fuse_ioctl_out out = {.result = result, .flags = 0, .in_iovs = 0, .out_iovs = 0};

	if (r->msg.opcode == FUSE_IOCTL && size > r->msg.arg.ioctl.out_size) {
		fu_answer(r, EINVAL, NULL, 0); /* more than the caller's buffer holds */
		return;
	}
	struct iovec iov[2] = {{&out, sizeof(out)}, {(void *)buf, size}};
	fu_answer(r, 0, iov, size ? 2 : 1);
}

/* ---- data ---- */

/* SIZE_MAX when the lengths add up past it: pieces whose sum wraps around
 * would pass any size check and then fail (writev) or overrun. */
static size_t iov_total(const struct iovec *iov, int count)
{
	size_t total = 0;
	for (int i = 0; i < count; i++) {
		if (iov[i].iov_len > SIZE_MAX - total)
			return SIZE_MAX;
		total += iov[i].iov_len;
	}
	return total;
}

void furing_reply_iov(struct furing_req *r, const struct iovec *iov, int count)
{
	/* Everything must fit the transport's answer buffer (the ring's
	 * payload): the kernel never asks for more than that. */
	if (count < 0 || count > FURING_REPLY_IOV_MAX || iov_total(iov, count) > r->base_size) {
		fu_answer(r, EIO, NULL, 0);
		return;
	}
	fu_answer(r, 0, iov, count);
}

void furing_reply_buf(struct furing_req *r, size_t len)
{
	struct iovec iov = {furing_req_buf(r), len};

	if (r->zc && r->msg.opcode == FUSE_READ) {
		/* The data is in the caller's pages already (furing_req_zc_pread). */
		if (len > r->zc_len) {
			fu_answer(r, EIO, NULL, 0);
			return;
		}
		iov.iov_base = NULL;
		fu_answer(r, 0, &iov, 1);
		return;
	}
	if (len > furing_req_buf_size(r)) {
		fu_answer(r, EIO, NULL, 0);
		return;
	}
	fu_answer(r, 0, &iov, 1);
}

void furing_reply_data(struct furing_req *r, const void *data, size_t len)
{
	struct iovec iov = {(void *)data, len};
	furing_reply_iov(r, &iov, 1);
}

/* ---- directory listings ---- */

void furing_dirbuf_init_buf(struct furing_dirbuf *d, void *buf, size_t size, bool plus)
{
	d->buf = buf;
	d->size = size;
	d->used = 0;
	d->plus = plus;
}

void furing_dirbuf_init(struct furing_dirbuf *d, struct furing_req *r, uint32_t size, bool plus)
{
	size_t cap = furing_req_buf_size(r);
	furing_dirbuf_init_buf(d, furing_req_buf(r), size < cap ? size : cap, plus);
}

bool furing_dirbuf_add(struct furing_dirbuf *d, const char *name, const struct stat *st, uint64_t next_off)
{
	if (d->plus) { /* a plain entry in a plus listing: the kernel only lists the name */
		struct furing_entry e;
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = st->st_ino;
		e.attr.st_mode = st->st_mode & S_IFMT;
		return fu_direntplus_add(d->buf, d->size, &d->used, name, &e, next_off);
	}
	return fu_dirent_add(d->buf, d->size, &d->used, name, st->st_ino, (st->st_mode & S_IFMT) >> 12, next_off);
}

bool furing_dirbuf_add_plus(struct furing_dirbuf *d, const char *name, const struct furing_entry *e,
			    uint64_t next_off)
{
	if (!d->plus)
		return fu_dirent_add(d->buf, d->size, &d->used, name, e->attr.st_ino ? e->attr.st_ino : e->ino,
				     (e->attr.st_mode & S_IFMT) >> 12, next_off);
	return fu_direntplus_add(d->buf, d->size, &d->used, name, e, next_off);
}

void furing_reply_dirbuf(struct furing_req *r, const struct furing_dirbuf *d)
{
	if (d->buf == furing_req_buf(r))
		furing_reply_buf(r, d->used);
	else
		furing_reply_data(r, d->buf, d->used);
}
