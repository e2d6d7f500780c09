/* The data path: READ and WRITE into and out of the request's own buffer
 * (the ring entry's payload, or the /dev/fuse slot's), on the worker's
 * io_uring, answered from the completion and continued from there when a
 * transfer is short; COPY_FILE_RANGE as ring reads and writes through the
 * request's buffer (copy_file_range(2) is no io_uring operation and would
 * hold the worker for the whole copy). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pt.h"

/* What a READ or WRITE needs between its completions. */
struct xfer {
	struct pt_file *f;
	unsigned char *buf;
	uint64_t off;
	uint32_t len;
	uint32_t done;
};

static struct pt_file *file_of(const struct furing_file *fi)
{
	return (struct pt_file *)(uintptr_t)fi->fh;
}

/* The rest of @t from byte t->done on: through the request's buffer, or
 * zero-copy (Linux 7.3) between the caller's lent pages and SOURCE's file
 * with READ_FIXED/WRITE_FIXED, never inline (the pages are not mapped). */
static void xfer_next(struct furing_req *req, bool write, const struct xfer *t, furing_io_done done)
{
	const int fd = t->f->h.fd;
	const uint32_t len = t->len - t->done;
	const uint64_t off = t->off + t->done;

	if (!furing_req_zero_copy(req))
		be_rw(req, write, fd, t->buf + t->done, len, off, t->f->inline_io, done);
	else if (write)
		furing_req_zc_pwrite(req, fd, t->done, len, off, done);
	else
		furing_req_zc_pread(req, fd, t->done, len, off, done);
}

static void read_step(struct furing_req *req, int res)
{
	struct xfer *t = PT_SCRATCH(req, struct xfer);

	if (res < 0) {
		/* Bytes already read are the answer; the error comes back on
		 * the next read if it persists. */
		if (t->done)
			furing_reply_buf(req, t->done);
		else
			furing_reply_err(req, -res);
		return;
	}
	t->done += (uint32_t)res;
	/* A short answer means end of file to the kernel's page cache: only
	 * give one when SOURCE's file really ended (res 0). */
	if (res == 0 || t->done == t->len) {
		furing_reply_buf(req, t->done);
		return;
	}
	xfer_next(req, false, t, read_step);
}

void pt_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi)
{
	struct xfer *t = PT_SCRATCH(req, struct xfer);

	*t = (struct xfer){.f = file_of(fi), .buf = furing_req_buf(req), .off = off, .len = size};
	if (size == 0) {
		furing_reply_buf(req, 0);
		return;
	}
	xfer_next(req, false, t, read_step);
}

static void write_step(struct furing_req *req, int res)
{
	struct xfer *t = PT_SCRATCH(req, struct xfer);

	if (res < 0 || (res == 0 && t->done < t->len)) {
		/* Report what reached SOURCE; a write that moved nothing fails. */
		if (t->done)
			furing_reply_write(req, t->done);
		else
			furing_reply_err(req, res < 0 ? -res : EIO);
		return;
	}
	t->done += (uint32_t)res;
	if (t->done < t->len) {
		xfer_next(req, true, t, write_step);
		return;
	}
	furing_reply_write(req, t->done);
}

void pt_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
	      const struct furing_file *fi)
{
	struct xfer *t = PT_SCRATCH(req, struct xfer);

	*t = (struct xfer){.f = file_of(fi), .buf = (unsigned char *)(uintptr_t)data, .off = off, .len = size};
	if (fi->req_flags & FURING_FILE_KILL_SUIDGID) {
		int ret = pt_kill_suidgid(t->f->h.fd);
		if (ret < 0) {
			furing_reply_err(req, -ret);
			return;
		}
	}
	if (size == 0) {
		furing_reply_write(req, 0);
		return;
	}
	xfer_next(req, true, t, write_step);
}

/* ---- COPY_FILE_RANGE ---- */

/* Per request at most this much (a short count makes the caller come back
 * for the rest): bounds how long one request holds its ring entry. */
#define COPY_MAX_PER_REQUEST (64ull << 20)
#define COPY_CHUNK (1u << 20)

struct copy_state {
	struct pt_file *in, *out;
	unsigned char *buf;
	uint64_t off_in, off_out;
	uint64_t left;   /* bytes still wanted */
	uint64_t copied; /* bytes written so far */
	uint32_t chunk;  /* bytes read into buf */
	uint32_t written; /* of chunk */
};

static void copy_read_done(struct furing_req *req, int res);

/* A whole number of pages whenever more is left: each chunk's offsets then
 * stay as aligned as the caller's, which a file opened O_DIRECT requires
 * (the buffer itself is page-aligned, furing.h). */
static uint32_t copy_chunk_size(struct furing_req *req, const struct copy_state *c)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t cap = furing_req_buf_size(req);
	uint64_t n = c->left < COPY_CHUNK ? c->left : COPY_CHUNK;

	if (cap > page)
		cap &= ~(page - 1);
	return (uint32_t)(n < cap ? n : cap);
}

static void copy_finish(struct furing_req *req, int err)
{
	struct copy_state *c = PT_SCRATCH(req, struct copy_state);

	if (c->copied || !err)
		furing_reply_copy(req, c->copied);
	else
		furing_reply_err(req, err);
}

static void copy_next(struct furing_req *req)
{
	struct copy_state *c = PT_SCRATCH(req, struct copy_state);

	if (c->left == 0) {
		copy_finish(req, 0);
		return;
	}
	c->written = 0;
	be_rw(req, false, c->in->h.fd, c->buf, copy_chunk_size(req, c), c->off_in, false, copy_read_done);
}

static void copy_write_done(struct furing_req *req, int res)
{
	struct copy_state *c = PT_SCRATCH(req, struct copy_state);

	if (res <= 0) {
		copy_finish(req, res < 0 ? -res : EIO);
		return;
	}
	c->written += (uint32_t)res;
	c->copied += (uint32_t)res;
	c->off_out += (uint32_t)res;
	if (c->written < c->chunk) {
		be_rw(req, true, c->out->h.fd, c->buf + c->written, c->chunk - c->written, c->off_out, false,
		      copy_write_done);
		return;
	}
	copy_next(req);
}

static void copy_read_done(struct furing_req *req, int res)
{
	struct copy_state *c = PT_SCRATCH(req, struct copy_state);

	if (res <= 0) { /* 0: the source ended */
		copy_finish(req, res < 0 ? -res : 0);
		return;
	}
	c->chunk = (uint32_t)res;
	c->off_in += (uint32_t)res;
	c->left -= (uint32_t)res;
	be_rw(req, true, c->out->h.fd, c->buf, c->chunk, c->off_out, false, copy_write_done);
}

void pt_copy_file_range(struct furing_req *req, uint64_t ino_in, uint64_t off_in, const struct furing_file *fi_in,
			uint64_t ino_out, uint64_t off_out, const struct furing_file *fi_out, uint64_t len,
			uint64_t flags)
{
	struct copy_state *c = PT_SCRATCH(req, struct copy_state);

	if (flags) {
		furing_reply_err(req, EINVAL); /* copy_file_range(2) defines none */
		return;
	}
	*c = (struct copy_state){.in = file_of(fi_in),
				 .out = file_of(fi_out),
				 .buf = furing_req_buf(req),
				 .off_in = off_in,
				 .off_out = off_out,
				 .left = len < COPY_MAX_PER_REQUEST ? len : COPY_MAX_PER_REQUEST};
	copy_next(req);
}
