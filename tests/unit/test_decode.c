/* Unit tests of fu_decode() (lib/proto/decode.c).
 *
 * Every supported opcode runs through the same battery of valid and malformed
 * layouts in both transports (test_opcode, one cmocka test per opcode and
 * layout); the kind-specific rules (names, WRITE, forgets, INIT, ring framing,
 * xattrs, locks, poll, ioctl, copies, statx, NOTIFY_REPLY, unknown opcodes)
 * have their own tests below. Requests are laid out by
 * req_build() in exactly-sized heap buffers so that valgrind sees any read
 * past the given lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "proto/decode.h"

#define T_UNIQUE 0x0000abcd00001002ull
#define T_NODEID 0x0000000000000077ull
#define T_UID 1000u
#define T_GID 1001u
#define T_PID 4242u
#define T_MAXW 4096u
#define RING_OP_IN FUSE_URING_OP_IN_OUT_SZ
#define IH ((size_t)sizeof(struct fuse_in_header))

/* ------------------------------------------------------------------------ */
/* Request builder                                                            */

struct req {
	bool ring;
	uint8_t *buf; /* legacy: in_header + body; ring: in_out (128 bytes) */
	size_t buf_len;
	uint8_t *op_in;   /* ring only: 128 bytes, unused part 0xCC */
	uint8_t *payload; /* ring only: exactly payload_len bytes */
	size_t payload_len;
	size_t hdr_len;   /* op header bytes as laid out */
	struct fu_wire w;
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	assert_true(p != NULL || n == 0);
	return p;
}

/* Lays out a well-framed request: in_header (len and total_extlen consistent),
 * then the op header, the data and ext_len bytes of extensions (0xEE), in
 * the legacy or the ring placement. */
static void req_build(struct req *r, bool ring, uint32_t opcode, const void *hdr, size_t hdr_len,
		      const void *data, size_t data_len, size_t ext_len)
{
	const size_t body = hdr_len + data_len + ext_len;
	struct fuse_in_header ih = {
		.len = (uint32_t)(IH + body),
		.opcode = opcode,
		.unique = T_UNIQUE,
		.nodeid = T_NODEID,
		.uid = T_UID,
		.gid = T_GID,
		.pid = T_PID,
		.total_extlen = (uint16_t)(ext_len / 8),
	};

	memset(r, 0, sizeof(*r));
	r->ring = ring;
	r->hdr_len = hdr_len;
	if (!ring) {
		r->buf_len = IH + body;
		r->buf = xmalloc(r->buf_len);
		memcpy(r->buf, &ih, IH);
		if (hdr_len)
			memcpy(r->buf + IH, hdr, hdr_len);
		if (data_len)
			memcpy(r->buf + IH + hdr_len, data, data_len);
		memset(r->buf + IH + hdr_len + data_len, 0xEE, ext_len);
		r->w = (struct fu_wire){
			.in = r->buf,
			.in_len = r->buf_len,
			.arg = r->buf + IH,
			.arg_len = body,
			.split = false,
		};
	} else {
		assert_true(hdr_len <= RING_OP_IN);
		r->buf_len = FUSE_URING_IN_OUT_HEADER_SZ;
		r->buf = xmalloc(r->buf_len);
		memset(r->buf, 0, r->buf_len);
		memcpy(r->buf, &ih, IH);
		r->op_in = xmalloc(RING_OP_IN);
		memset(r->op_in, 0xCC, RING_OP_IN);
		if (hdr_len)
			memcpy(r->op_in, hdr, hdr_len);
		r->payload_len = data_len + ext_len;
		r->payload = xmalloc(r->payload_len);
		if (data_len)
			memcpy(r->payload, data, data_len);
		if (ext_len)
			memset(r->payload + data_len, 0xEE, ext_len);
		r->w = (struct fu_wire){
			.in = r->buf,
			.in_len = r->buf_len,
			.arg = r->op_in,
			.arg_len = RING_OP_IN,
			.data = r->payload,
			.data_len = r->payload_len,
			.split = true,
		};
	}
}

static void req_free(struct req *r)
{
	free(r->buf);
	free(r->op_in);
	free(r->payload);
	memset(r, 0, sizeof(*r));
}

static void req_set_len(struct req *r, uint32_t len)
{
	memcpy(r->buf + offsetof(struct fuse_in_header, len), &len, sizeof(len));
}

static uint32_t req_len(const struct req *r)
{
	uint32_t len;
	memcpy(&len, r->buf + offsetof(struct fuse_in_header, len), sizeof(len));
	return len;
}

static void req_set_extlen(struct req *r, uint16_t units)
{
	memcpy(r->buf + offsetof(struct fuse_in_header, total_extlen), &units, sizeof(units));
}

/* Where the names / WRITE data start. */
static const uint8_t *req_region(const struct req *r)
{
	return r->ring ? r->payload : r->buf + IH + r->hdr_len;
}

/* Runs the decoder with garbage in the outputs and checks what must hold
 * whatever the verdict. */
static enum fu_decode_result dec(struct req *r, uint32_t max_write, struct fu_msg *m, int *err)
{
	const struct fu_decode_limits lim = { .max_write = max_write };
	struct fuse_in_header ih;

	memcpy(&ih, r->buf, IH);
	memset(m, 0x5a, sizeof(*m));
	*err = -12345;
	enum fu_decode_result res = fu_decode(&r->w, &lim, m, err);
	assert_int_equal(m->opcode, ih.opcode);
	assert_int_equal(m->unique, ih.unique);
	assert_int_equal(m->nodeid, ih.nodeid);
	assert_int_equal(m->uid, ih.uid);
	assert_int_equal(m->gid, ih.gid);
	assert_int_equal(m->pid, ih.pid);
	switch (res) {
	case FU_DECODE_OK:
	case FU_DECODE_DROP:
		assert_int_equal(*err, 0);
		break;
	case FU_DECODE_REPLY_ERR:
		assert_true(*err == EIO || *err == ENOSYS);
		assert_false(fu_opcode_no_reply(ih.opcode));
		break;
	default:
		fail_msg("bad result %d", (int)res);
	}
	return res;
}

static void expect_ok(struct req *r, uint32_t max_write, struct fu_msg *m)
{
	int err;
	assert_int_equal(dec(r, max_write, m, &err), FU_DECODE_OK);
}

/* A malformed request: EIO (or ENOSYS), or a silent drop for the opcodes
 * that are never answered. */
static void expect_fail(struct req *r, uint32_t max_write, int want_err)
{
	struct fu_msg m;
	int err;
	struct fuse_in_header ih;

	memcpy(&ih, r->buf, IH);
	enum fu_decode_result res = dec(r, max_write, &m, &err);
	if (fu_opcode_no_reply(ih.opcode)) {
		assert_int_equal(res, FU_DECODE_DROP);
	} else {
		assert_int_equal(res, FU_DECODE_REPLY_ERR);
		assert_int_equal(err, want_err);
	}
}

static void expect_drop(struct req *r)
{
	struct fu_msg m;
	int err;
	assert_int_equal(dec(r, T_MAXW, &m, &err), FU_DECODE_DROP);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31u + i * 7u + 1u);
}

/* The union past the copied header must stay zero: nothing but the header
 * (and not the ring's op_in padding) is copied. */
static void assert_arg(const struct fu_msg *m, const void *hdr, size_t n)
{
	const uint8_t *a = (const uint8_t *)&m->arg;
	if (n)
		assert_memory_equal(a, hdr, n);
	for (size_t i = n; i < sizeof(m->arg); i++)
		assert_int_equal(a[i], 0);
}

/* ------------------------------------------------------------------------ */
/* Every supported opcode, both layouts                                      */

enum kind {
	K_NONE,
	K_INIT,
	K_NAME,
	K_NAME2,
	K_WRITE,
	K_FORGETS,
	K_XATTR,     /* a name, then setxattr_in.size bytes of value */
	K_IOCTL,     /* ioctl_in.in_size bytes of input */
	K_RETRIEVED, /* notify_retrieve_in.size bytes of cached data */
};

struct op_case {
	uint32_t opcode;
	size_t hdr; /* the op header's size (INIT: as a 7.45 kernel sends it) */
	enum kind kind;
};

static const struct op_case op_cases[] = {
	{ FUSE_INIT, 64, K_INIT },
	{ FUSE_DESTROY, 0, K_NONE },
	{ FUSE_LOOKUP, 0, K_NAME },
	{ FUSE_FORGET, 8, K_NONE },
	{ FUSE_BATCH_FORGET, 8, K_FORGETS },
	{ FUSE_INTERRUPT, 8, K_NONE },
	{ FUSE_GETATTR, 16, K_NONE },
	{ FUSE_SETATTR, 88, K_NONE },
	{ FUSE_READLINK, 0, K_NONE },
	{ FUSE_SYMLINK, 0, K_NAME2 },
	{ FUSE_MKNOD, 16, K_NAME },
	{ FUSE_MKDIR, 8, K_NAME },
	{ FUSE_UNLINK, 0, K_NAME },
	{ FUSE_RMDIR, 0, K_NAME },
	{ FUSE_RENAME, 8, K_NAME2 },
	{ FUSE_RENAME2, 16, K_NAME2 },
	{ FUSE_LINK, 8, K_NAME },
	{ FUSE_CREATE, 16, K_NAME },
	{ FUSE_ACCESS, 8, K_NONE },
	{ FUSE_OPEN, 8, K_NONE },
	{ FUSE_OPENDIR, 8, K_NONE },
	{ FUSE_RELEASE, 24, K_NONE },
	{ FUSE_RELEASEDIR, 24, K_NONE },
	{ FUSE_FLUSH, 24, K_NONE },
	{ FUSE_READ, 40, K_NONE },
	{ FUSE_READDIR, 40, K_NONE },
	{ FUSE_READDIRPLUS, 40, K_NONE },
	{ FUSE_WRITE, 40, K_WRITE },
	{ FUSE_FSYNC, 16, K_NONE },
	{ FUSE_FSYNCDIR, 16, K_NONE },
	{ FUSE_FALLOCATE, 32, K_NONE },
	{ FUSE_LSEEK, 24, K_NONE },
	{ FUSE_STATFS, 0, K_NONE },
	/* SETXATTR as without FUSE_SETXATTR_EXT: the 8-byte header */
	{ FUSE_SETXATTR, 8, K_XATTR },
	{ FUSE_GETXATTR, 8, K_NAME },
	{ FUSE_LISTXATTR, 8, K_NONE },
	{ FUSE_REMOVEXATTR, 0, K_NAME },
	{ FUSE_GETLK, 48, K_NONE },
	{ FUSE_SETLK, 48, K_NONE },
	{ FUSE_SETLKW, 48, K_NONE },
	{ FUSE_POLL, 24, K_NONE },
	{ FUSE_IOCTL, 32, K_IOCTL },
	{ FUSE_COPY_FILE_RANGE, 56, K_NONE },
	{ FUSE_COPY_FILE_RANGE_64, 56, K_NONE },
	{ FUSE_STATX, 24, K_NONE },
	{ FUSE_SYNCFS, 8, K_NONE },
	{ FUSE_TMPFILE, 16, K_NAME },
	{ FUSE_NOTIFY_REPLY, 40, K_RETRIEVED },
};
#define N_OP_CASES (sizeof(op_cases) / sizeof(op_cases[0]))

struct op_test {
	const struct op_case *c;
	bool ring;
	char name[64];
};

#define WRITE_SAMPLE 100u
#define XATTR_VALUE 13u /* after the name */
#define IOCTL_IN 24u
#define RETRIEVED 64u
static const char name_sample[] = "file.txt";                /* 9 bytes with the NUL */
static const char name2_sample[] = "old-name\0new-name-longer"; /* + final NUL: 25 bytes */

struct sample {
	uint8_t hdr[128];
	uint8_t data[256];
	size_t data_len;
};

static void make_sample(const struct op_case *c, struct sample *s)
{
	memset(s, 0, sizeof(*s));
	fill_pattern(s->hdr, c->hdr, c->opcode);
	switch (c->kind) {
	case K_NONE:
	case K_INIT:
		s->data_len = 0;
		break;
	case K_NAME:
		memcpy(s->data, name_sample, sizeof(name_sample));
		s->data_len = sizeof(name_sample);
		break;
	case K_NAME2:
		memcpy(s->data, name2_sample, sizeof(name2_sample));
		s->data_len = sizeof(name2_sample);
		break;
	case K_WRITE: {
		struct fuse_write_in wi;
		memcpy(&wi, s->hdr, sizeof(wi));
		wi.size = WRITE_SAMPLE;
		memcpy(s->hdr, &wi, sizeof(wi));
		fill_pattern(s->data, WRITE_SAMPLE, 99);
		s->data_len = WRITE_SAMPLE;
		break;
	}
	case K_FORGETS: {
		struct fuse_batch_forget_in bf = { .count = 2 };
		memcpy(s->hdr, &bf, sizeof(bf));
		fill_pattern(s->data, 32, 42);
		s->data_len = 32;
		break;
	}
	case K_XATTR: {
		struct fuse_setxattr_in sx;
		memcpy(&sx, s->hdr, FUSE_COMPAT_SETXATTR_IN_SIZE);
		sx.size = XATTR_VALUE;
		memcpy(s->hdr, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE);
		memcpy(s->data, name_sample, sizeof(name_sample));
		fill_pattern(s->data + sizeof(name_sample), XATTR_VALUE, 21);
		s->data_len = sizeof(name_sample) + XATTR_VALUE;
		break;
	}
	case K_IOCTL: {
		struct fuse_ioctl_in io;
		memcpy(&io, s->hdr, sizeof(io));
		io.in_size = IOCTL_IN;
		memcpy(s->hdr, &io, sizeof(io));
		fill_pattern(s->data, IOCTL_IN, 39);
		s->data_len = IOCTL_IN;
		break;
	}
	case K_RETRIEVED: {
		struct fuse_notify_retrieve_in rt;
		memcpy(&rt, s->hdr, sizeof(rt));
		rt.size = RETRIEVED;
		memcpy(s->hdr, &rt, sizeof(rt));
		fill_pattern(s->data, RETRIEVED, 41);
		s->data_len = RETRIEVED;
		break;
	}
	}
}

/* A valid request decodes, with the header copied (and only it), the names
 * or data pointing at the region, and the header still intact after the
 * request buffers are overwritten (no aliasing). */
static void check_valid(const struct op_case *c, struct req *r, const struct sample *s)
{
	struct fu_msg m;
	expect_ok(r, T_MAXW, &m);
	assert_arg(&m, s->hdr, c->hdr);

	const uint8_t *region = req_region(r);
	switch (c->kind) {
	case K_NONE:
	case K_INIT:
		assert_null(m.name);
		assert_null(m.name2);
		assert_null(m.data);
		assert_int_equal(m.data_len, 0);
		break;
	case K_NAME:
		assert_ptr_equal(m.name, region);
		assert_string_equal(m.name, name_sample);
		assert_null(m.name2);
		assert_null(m.data);
		break;
	case K_NAME2:
		assert_ptr_equal(m.name, region);
		assert_string_equal(m.name, "old-name");
		assert_ptr_equal(m.name2, region + sizeof("old-name"));
		assert_string_equal(m.name2, "new-name-longer");
		assert_null(m.data);
		break;
	case K_WRITE:
		assert_ptr_equal(m.data, region);
		assert_int_equal(m.data_len, WRITE_SAMPLE);
		assert_int_equal(m.arg.write.size, WRITE_SAMPLE);
		assert_memory_equal(m.data, s->data, WRITE_SAMPLE);
		assert_null(m.name);
		break;
	case K_FORGETS:
		assert_ptr_equal(m.data, region);
		assert_int_equal(m.data_len, 32);
		assert_int_equal(m.arg.batch_forget.count, 2);
		assert_null(m.name);
		break;
	case K_XATTR:
		assert_ptr_equal(m.name, region);
		assert_string_equal(m.name, name_sample);
		assert_ptr_equal(m.data, region + sizeof(name_sample));
		assert_int_equal(m.data_len, XATTR_VALUE);
		assert_memory_equal(m.data, s->data + sizeof(name_sample), XATTR_VALUE);
		/* without FUSE_SETXATTR_EXT the flags word is not read */
		assert_int_equal(m.arg.setxattr.setxattr_flags, 0);
		break;
	case K_IOCTL:
	case K_RETRIEVED:
		assert_ptr_equal(m.data, region);
		assert_int_equal(m.data_len, s->data_len);
		assert_memory_equal(m.data, s->data, s->data_len);
		assert_null(m.name);
		break;
	}

	memset(r->buf, 0xAB, r->buf_len);
	if (r->ring)
		memset(r->op_in, 0xAB, RING_OP_IN);
	assert_arg(&m, s->hdr, c->hdr);
	assert_int_equal(m.unique, T_UNIQUE);
}

static void test_opcode(void **state)
{
	const struct op_test *t = *state;
	const struct op_case *c = t->c;
	const bool ring = t->ring;
	const bool init = c->kind == K_INIT;
	struct sample s;
	struct req r;
	uint8_t buf[512];

	make_sample(c, &s);

	/* valid */
	req_build(&r, ring, c->opcode, s.hdr, c->hdr, s.data, s.data_len, 0);
	check_valid(c, &r, &s);
	req_free(&r);

	/* extensions that fit are cut off the end of the data region */
	for (size_t ext = 8; ext <= 24; ext += 16) {
		req_build(&r, ring, c->opcode, s.hdr, c->hdr, s.data, s.data_len, ext);
		check_valid(c, &r, &s);
		req_free(&r);
	}

	/* extensions larger than the whole request body */
	req_build(&r, ring, c->opcode, s.hdr, c->hdr, s.data, s.data_len, 8);
	req_set_extlen(&r, (uint16_t)((c->hdr + s.data_len + 8) / 8 + 1));
	expect_fail(&r, T_MAXW, EIO);
	req_set_extlen(&r, UINT16_MAX);
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);

	/* extensions larger than the data region (but not than the body:
	 * in the legacy layout they would eat into the header) */
	if (!init) {
		req_build(&r, ring, c->opcode, s.hdr, c->hdr, s.data, s.data_len, 8);
		req_set_extlen(&r, (uint16_t)((s.data_len + 8) / 8 + 1));
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
	}

	/* truncated header (nothing after it, so the legacy layout cannot
	 * borrow data bytes for it) */
	if (c->hdr > 0) {
		size_t short_hdr = init ? FUSE_INIT_IN_COMPAT_SIZE - 1 : c->hdr - 1;
		req_build(&r, ring, c->opcode, s.hdr, short_hdr, NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		req_build(&r, ring, c->opcode, s.hdr, 0, NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		if (ring && s.data_len > 0) { /* ring: the header is op_in alone */
			req_build(&r, ring, c->opcode, s.hdr, c->hdr - 1, s.data, s.data_len, 0);
			expect_fail(&r, T_MAXW, EIO);
			req_free(&r);
		}
	}

	/* in_header.len disagrees with the transport */
	req_build(&r, ring, c->opcode, s.hdr, c->hdr, s.data, s.data_len, 0);
	const uint32_t len = req_len(&r);
	if (!(init && ring)) { /* ring INIT: any 16..128 header bytes are fine */
		req_set_len(&r, len + 1);
		expect_fail(&r, T_MAXW, EIO);
		req_set_len(&r, len - 1);
		expect_fail(&r, T_MAXW, EIO);
	}
	req_set_len(&r, 0);
	expect_fail(&r, T_MAXW, EIO);
	req_set_len(&r, (uint32_t)IH - 1);
	expect_fail(&r, T_MAXW, EIO);
	req_set_len(&r, UINT32_MAX);
	expect_fail(&r, T_MAXW, EIO);
	if (ring) {
		/* op header longer than op_in */
		req_set_len(&r, (uint32_t)(IH + RING_OP_IN + 1 + s.data_len));
		expect_fail(&r, T_MAXW, EIO);
		/* payload_sz larger than in.len allows */
		req_set_len(&r, (uint32_t)(IH + s.data_len - 1));
		if (s.data_len > 0)
			expect_fail(&r, T_MAXW, EIO);
	}
	req_free(&r);

	/* oversized data: bytes after what the opcode allows */
	for (size_t extra = 1; extra <= 8; extra += 7) {
		memcpy(buf, s.data, s.data_len);
		memset(buf + s.data_len, extra == 1 ? 'X' : 0, extra);
		req_build(&r, ring, c->opcode, s.hdr, c->hdr, buf, s.data_len + extra, 0);
		if (init) {
			struct fu_msg m;
			expect_ok(&r, T_MAXW, &m); /* newer kernels: ignored */
			assert_arg(&m, s.hdr, 64);
		} else if (c->kind == K_FORGETS) {
			struct fu_msg m;
			expect_ok(&r, T_MAXW, &m); /* count entries fit: the rest is ignored */
			assert_int_equal(m.data_len, 32);
		} else {
			expect_fail(&r, T_MAXW, EIO);
		}
		req_free(&r);
	}

	/* truncated data */
	if (s.data_len > 0) {
		req_build(&r, ring, c->opcode, s.hdr, c->hdr, s.data, s.data_len - 1, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		if (c->kind != K_FORGETS) {
			req_build(&r, ring, c->opcode, s.hdr, c->hdr, NULL, 0, 0);
			expect_fail(&r, T_MAXW, EIO);
			req_free(&r);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

struct bad_data {
	const char *bytes;
	size_t len;
};
#define BD(s) { s, sizeof(s) - 1 }

static const uint32_t name_ops[] = { FUSE_LOOKUP, FUSE_UNLINK, FUSE_RMDIR, FUSE_MKNOD,
				     FUSE_MKDIR,  FUSE_CREATE, FUSE_LINK };

static size_t hdr_size(uint32_t opcode)
{
	for (size_t i = 0; i < N_OP_CASES; i++)
		if (op_cases[i].opcode == opcode)
			return op_cases[i].hdr;
	fail_msg("no case for opcode %u", opcode);
	return 0;
}

static void test_bad_names(void **state)
{
	(void)state;
	static const struct bad_data bad[] = {
		BD(""),        /* no name at all */
		BD("abc"),     /* missing NUL */
		BD("\0"),      /* empty */
		BD("a\0b"),    /* trailing junk */
		BD("a\0b\0"),  /* a second name */
		BD("a\0\0"),   /* trailing NUL */
		BD("\0abc\0"), /* empty, then junk */
	};
	uint8_t hdr[64] = { 0 };
	struct req r;

	for (int ring = 0; ring < 2; ring++)
		for (size_t o = 0; o < sizeof(name_ops) / sizeof(name_ops[0]); o++) {
			const size_t h = hdr_size(name_ops[o]);
			for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
				req_build(&r, ring, name_ops[o], hdr, h, bad[b].bytes, bad[b].len, 0);
				expect_fail(&r, T_MAXW, EIO);
				req_free(&r);
				/* an extension does not make it valid */
				req_build(&r, ring, name_ops[o], hdr, h, bad[b].bytes, bad[b].len, 8);
				expect_fail(&r, T_MAXW, EIO);
				req_free(&r);
			}
			/* the shortest valid name */
			struct fu_msg m;
			req_build(&r, ring, name_ops[o], hdr, h, "a", 2, 0);
			expect_ok(&r, T_MAXW, &m);
			assert_string_equal(m.name, "a");
			req_free(&r);
		}
}

static void test_bad_name_pairs(void **state)
{
	(void)state;
	static const uint32_t ops[] = { FUSE_RENAME, FUSE_RENAME2, FUSE_SYMLINK };
	static const struct bad_data bad[] = {
		BD(""),         BD("ab"),      /* no NUL at all */
		BD("a\0"),                     /* one name */
		BD("a\0b"),                    /* second without NUL */
		BD("a\0\0"),                   /* empty second */
		BD("\0b\0"),                   /* empty first */
		BD("\0\0"),                    /* both empty */
		BD("a\0b\0c"),                 /* trailing junk */
		BD("a\0b\0c\0"),               /* three names */
		BD("a\0b\0\0"),                /* trailing NUL */
	};
	uint8_t hdr[64] = { 0 };
	struct req r;

	for (int ring = 0; ring < 2; ring++)
		for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
			const size_t h = hdr_size(ops[o]);
			for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
				req_build(&r, ring, ops[o], hdr, h, bad[b].bytes, bad[b].len, 0);
				expect_fail(&r, T_MAXW, EIO);
				req_free(&r);
			}
			struct fu_msg m;
			req_build(&r, ring, ops[o], hdr, h, "a\0b", 4, 16);
			expect_ok(&r, T_MAXW, &m);
			assert_string_equal(m.name, "a");
			assert_string_equal(m.name2, "b");
			req_free(&r);
		}
}

static void test_symlink_link_rename2(void **state)
{
	(void)state;
	static const char sl[] = "mylink\0/some/target";
	struct fuse_link_in li = { .oldnodeid = 0x1122334455667788ull };
	struct fuse_rename2_in r2 = { .newdir = 9, .flags = 1 /* RENAME_NOREPLACE */ };
	struct fuse_create_in ci = { .flags = 0101, .mode = 0100644, .umask = 022, .open_flags = 4 };
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++) {
		req_build(&r, ring, FUSE_SYMLINK, NULL, 0, sl, sizeof(sl), 0);
		expect_ok(&r, T_MAXW, &m);
		assert_string_equal(m.name, "mylink");
		assert_string_equal(m.name2, "/some/target");
		req_free(&r);

		req_build(&r, ring, FUSE_LINK, &li, sizeof(li), "newname", 8, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.link.oldnodeid, li.oldnodeid);
		assert_string_equal(m.name, "newname");
		assert_null(m.name2);
		req_free(&r);

		req_build(&r, ring, FUSE_RENAME2, &r2, sizeof(r2), "x\0yy", 5, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.rename2.newdir, 9);
		assert_int_equal(m.arg.rename2.flags, 1);
		assert_string_equal(m.name, "x");
		assert_string_equal(m.name2, "yy");
		req_free(&r);

		req_build(&r, ring, FUSE_CREATE, &ci, sizeof(ci), "f", 2, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.create.flags, 0101);
		assert_int_equal(m.arg.create.mode, 0100644);
		assert_int_equal(m.arg.create.umask, 022);
		assert_int_equal(m.arg.create.open_flags, 4);
		req_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* WRITE                                                                     */

static void build_write(struct req *r, bool ring, uint32_t size, const void *data, size_t data_len, size_t ext)
{
	struct fuse_write_in wi = { .fh = 5, .offset = 1ull << 40, .size = size, .write_flags = FUSE_WRITE_LOCKOWNER,
				    .lock_owner = 77 };
	req_build(r, ring, FUSE_WRITE, &wi, sizeof(wi), data, data_len, ext);
}

static void test_write(void **state)
{
	(void)state;
	static uint8_t data[8192 + 64];
	struct fu_msg m;
	struct req r;

	fill_pattern(data, sizeof(data), 3);
	for (int ring = 0; ring < 2; ring++) {
		/* data placement: offset 80 of the legacy buffer, 0 of the payload */
		build_write(&r, ring, 512, data, 512, 0);
		expect_ok(&r, 4096, &m);
		assert_ptr_equal(m.data, ring ? r.payload : r.buf + 80);
		assert_int_equal(m.data_len, 512);
		assert_int_equal(m.arg.write.fh, 5);
		assert_int_equal(m.arg.write.offset, 1ull << 40);
		assert_int_equal(m.arg.write.write_flags, FUSE_WRITE_LOCKOWNER);
		assert_int_equal(m.arg.write.lock_owner, 77);
		req_free(&r);

		/* size one off either way */
		build_write(&r, ring, 513, data, 512, 0);
		expect_fail(&r, 4096, EIO);
		req_free(&r);
		build_write(&r, ring, 511, data, 512, 0);
		expect_fail(&r, 4096, EIO);
		req_free(&r);
		build_write(&r, ring, UINT32_MAX, data, 512, 0);
		expect_fail(&r, UINT32_MAX, EIO);
		req_free(&r);

		/* max_write is inclusive */
		build_write(&r, ring, 4096, data, 4096, 0);
		expect_ok(&r, 4096, &m);
		assert_int_equal(m.data_len, 4096);
		expect_fail(&r, 4095, EIO);
		req_free(&r);
		build_write(&r, ring, 4097, data, 4097, 0);
		expect_fail(&r, 4096, EIO);
		expect_ok(&r, 8192, &m);
		req_free(&r);

		/* an extension after the data is not data */
		build_write(&r, ring, 100, data, 100, 16);
		expect_ok(&r, 4096, &m);
		assert_int_equal(m.data_len, 100);
		assert_memory_equal(m.data, data, 100);
		req_free(&r);
		/* ... and counting it as data would be a size mismatch */
		build_write(&r, ring, 116, data, 100, 16);
		expect_fail(&r, 4096, EIO);
		req_free(&r);

		/* empty write */
		build_write(&r, ring, 0, NULL, 0, 0);
		expect_ok(&r, 4096, &m);
		assert_int_equal(m.data_len, 0);
		assert_null(m.data);
		req_free(&r);

		/* no limits given: nothing but empty writes passes */
		build_write(&r, ring, 1, data, 1, 0);
		int err;
		memset(&m, 0, sizeof(m));
		assert_int_equal(fu_decode(&r.w, NULL, &m, &err), FU_DECODE_REPLY_ERR);
		assert_int_equal(err, EIO);
		req_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* FORGET, BATCH_FORGET, INTERRUPT: never answered                          */

static void build_batch(struct req *r, bool ring, uint32_t count, size_t entries, size_t ext)
{
	struct fuse_batch_forget_in bf = { .count = count };
	static uint8_t ent[16 * 8];
	assert_true(entries <= 8);
	fill_pattern(ent, sizeof(ent), 8);
	req_build(r, ring, FUSE_BATCH_FORGET, &bf, sizeof(bf), ent, entries * 16, ext);
}

static void test_batch_forget(void **state)
{
	(void)state;
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++) {
		build_batch(&r, ring, 3, 3, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.batch_forget.count, 3);
		assert_int_equal(m.data_len, 48);
		assert_ptr_equal(m.data, req_region(&r));
		struct fuse_forget_one one;
		memcpy(&one, (const uint8_t *)m.data + 16, sizeof(one));
		struct fuse_forget_one want;
		memcpy(&want, req_region(&r) + 16, sizeof(want));
		assert_int_equal(one.nodeid, want.nodeid);
		req_free(&r);

		build_batch(&r, ring, 0, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.data_len, 0);
		assert_null(m.data);
		req_free(&r);

		/* more entries claimed than present */
		build_batch(&r, ring, 4, 3, 0);
		expect_drop(&r);
		req_free(&r);
		/* count * 16 wraps in 32 bits (0x10000000 * 16 == 2^32) */
		build_batch(&r, ring, 0x10000000u, 2, 0);
		expect_drop(&r);
		req_free(&r);
		build_batch(&r, ring, 0x10000001u, 2, 0);
		expect_drop(&r);
		req_free(&r);
		build_batch(&r, ring, UINT32_MAX, 8, 0);
		expect_drop(&r);
		req_free(&r);
		/* extension bytes are not entries */
		build_batch(&r, ring, 1, 1, 8);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.data_len, 16);
		req_free(&r);
		build_batch(&r, ring, 2, 1, 16);
		expect_drop(&r);
		req_free(&r);
		/* truncated header */
		req_build(&r, ring, FUSE_BATCH_FORGET, "\1\0\0\0", 4, NULL, 0, 0);
		expect_drop(&r);
		req_free(&r);
		/* framing */
		build_batch(&r, ring, 1, 1, 0);
		req_set_len(&r, req_len(&r) - 1);
		expect_drop(&r);
		req_set_len(&r, req_len(&r) + 1);
		expect_ok(&r, T_MAXW, &m);
		req_set_extlen(&r, 100);
		expect_drop(&r);
		req_free(&r);
	}
}

static void test_forget_interrupt(void **state)
{
	(void)state;
	struct fuse_forget_in fi = { .nlookup = 12345 };
	struct fuse_interrupt_in ii = { .unique = T_UNIQUE - 2 };
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++) {
		req_build(&r, ring, FUSE_FORGET, &fi, sizeof(fi), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.forget.nlookup, 12345);
		req_set_len(&r, req_len(&r) + 1);
		expect_drop(&r);
		req_free(&r);
		req_build(&r, ring, FUSE_FORGET, &fi, 7, NULL, 0, 0);
		expect_drop(&r);
		req_free(&r);
		req_build(&r, ring, FUSE_FORGET, &fi, 0, NULL, 0, 0);
		expect_drop(&r);
		req_free(&r);
		req_build(&r, ring, FUSE_FORGET, &fi, sizeof(fi), "x", 1, 0);
		expect_drop(&r);
		req_free(&r);
		req_build(&r, ring, FUSE_FORGET, &fi, sizeof(fi), NULL, 0, 8);
		req_set_extlen(&r, 2);
		expect_drop(&r);
		req_free(&r);

		req_build(&r, ring, FUSE_INTERRUPT, &ii, sizeof(ii), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.interrupt.unique, T_UNIQUE - 2);
		req_free(&r);
		req_build(&r, ring, FUSE_INTERRUPT, &ii, 4, NULL, 0, 0);
		expect_drop(&r);
		req_free(&r);
		req_build(&r, ring, FUSE_INTERRUPT, &ii, sizeof(ii), "12345678", 8, 0);
		expect_drop(&r);
		req_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* INIT                                                                      */

static void test_init_sizes(void **state)
{
	(void)state;
	uint8_t in[128];
	struct fu_msg m;
	struct req r;
	struct fuse_init_in want;

	fill_pattern(in, sizeof(in), 26);
	for (int ring = 0; ring < 2; ring++) {
		/* an old kernel's 16 bytes: the rest reads as zero */
		req_build(&r, ring, FUSE_INIT, in, 16, NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		memset(&want, 0, sizeof(want));
		memcpy(&want, in, 16);
		assert_memory_equal(&m.arg.init, &want, sizeof(want));
		assert_int_equal(m.arg.init.flags2, 0);
		req_free(&r);

		/* 7.36+: 64 bytes */
		req_build(&r, ring, FUSE_INIT, in, 64, NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_memory_equal(&m.arg.init, in, 64);
		req_free(&r);

		/* in between, and more than we know (ignored) */
		for (size_t n = 17; n <= 128; n += 37) {
			req_build(&r, ring, FUSE_INIT, in, n, NULL, 0, 0);
			expect_ok(&r, T_MAXW, &m);
			memset(&want, 0, sizeof(want));
			memcpy(&want, in, n < 64 ? n : 64);
			assert_memory_equal(&m.arg.init, &want, sizeof(want));
			req_free(&r);
		}

		/* too short */
		req_build(&r, ring, FUSE_INIT, in, 15, NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
	}

	/* ring: INIT header beyond op_in */
	req_build(&r, true, FUSE_INIT, in, 64, NULL, 0, 0);
	req_set_len(&r, (uint32_t)(IH + RING_OP_IN + 1));
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Framing that no opcode table can fix                                      */

static void test_short_in(void **state)
{
	(void)state;
	uint8_t raw[IH];
	struct fuse_in_header ih = { .len = IH, .opcode = FUSE_STATFS, .unique = T_UNIQUE };
	struct fu_msg m;
	int err = -1;

	memcpy(raw, &ih, IH);
	for (int ring = 0; ring < 2; ring++) {
		for (size_t n = 0; n < IH; n += 13) {
			struct fu_wire w = { .in = raw, .in_len = n, .split = ring };
			memset(&m, 0x5a, sizeof(m));
			assert_int_equal(fu_decode(&w, NULL, &m, &err), FU_DECODE_DROP);
			assert_int_equal(err, 0);
			assert_int_equal(m.unique, 0);
		}
		struct fu_wire w = { .in = raw, .in_len = IH - 1, .split = ring };
		assert_int_equal(fu_decode(&w, NULL, &m, &err), FU_DECODE_DROP);
		w.in = NULL;
		w.in_len = IH;
		assert_int_equal(fu_decode(&w, NULL, &m, &err), FU_DECODE_DROP);
		/* exactly the header: fine */
		w.in = raw;
		struct fu_decode_limits lim = { 0 };
		uint8_t op_in[RING_OP_IN];
		if (ring) {
			w.arg = op_in;
			w.arg_len = sizeof(op_in);
		}
		assert_int_equal(fu_decode(&w, &lim, &m, &err), FU_DECODE_OK);
		assert_int_equal(m.opcode, FUSE_STATFS);
		assert_int_equal(m.unique, T_UNIQUE);
	}
	assert_int_equal(fu_decode(NULL, NULL, &m, &err), FU_DECODE_DROP);

	/* no msg: nothing to fill, nothing to answer; no err: still decodes */
	struct fu_wire w = { .in = raw, .in_len = IH };
	err = -1;
	assert_int_equal(fu_decode(&w, NULL, NULL, &err), FU_DECODE_DROP);
	assert_int_equal(err, 0);
	assert_int_equal(fu_decode(&w, NULL, &m, NULL), FU_DECODE_OK);
	assert_int_equal(m.unique, T_UNIQUE);
	ih.opcode = FUSE_SETXATTR;
	memcpy(raw, &ih, IH);
	assert_int_equal(fu_decode(&w, NULL, &m, NULL), FU_DECODE_REPLY_ERR);
}

static void test_ring_framing(void **state)
{
	(void)state;
	uint8_t hdr[128];
	struct fu_msg m;
	struct req r;

	fill_pattern(hdr, sizeof(hdr), 1);
	/* op header larger than the op_in capacity the caller gave */
	req_build(&r, true, FUSE_SETATTR, hdr, 88, NULL, 0, 0);
	r.w.arg_len = 87;
	expect_fail(&r, T_MAXW, EIO);
	r.w.arg_len = 88;
	expect_ok(&r, T_MAXW, &m);
	req_free(&r);

	/* op header longer than the opcode's: the kernel never does that */
	req_build(&r, true, FUSE_GETATTR, hdr, 17, NULL, 0, 0);
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
	req_build(&r, true, FUSE_READ, hdr, 48, NULL, 0, 0);
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
	/* a name in op_in instead of the payload */
	req_build(&r, true, FUSE_LOOKUP, "name", 5, NULL, 0, 0);
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
	/* payload_sz bigger than in.len says */
	req_build(&r, true, FUSE_LOOKUP, NULL, 0, "name", 5, 0);
	r.w.data_len = 6;
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
	/* a payload length without a payload buffer */
	req_build(&r, true, FUSE_LOOKUP, NULL, 0, "name", 5, 0);
	r.w.data = NULL;
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
	build_write(&r, true, 5, "12345", 5, 0);
	r.w.data = NULL;
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
	build_batch(&r, true, 1, 1, 0);
	r.w.data = NULL;
	expect_drop(&r);
	req_free(&r);
	/* an op header length without op_in */
	req_build(&r, true, FUSE_GETATTR, hdr, 16, NULL, 0, 0);
	r.w.arg = NULL;
	expect_fail(&r, T_MAXW, EIO);
	r.w.arg_len = 0;
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);

	/* legacy: an arg length without a buffer, and a buffer length that
	 * disagrees with in.len */
	req_build(&r, false, FUSE_GETATTR, hdr, 16, NULL, 0, 0);
	r.w.arg = NULL;
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
	req_build(&r, false, FUSE_GETATTR, hdr, 16, NULL, 0, 0);
	r.w.arg_len = 15;
	expect_fail(&r, T_MAXW, EIO);
	req_free(&r);
}

static void test_unknown_opcodes(void **state)
{
	(void)state;
	static const uint32_t ops[] = {
		/* BMAP is fuseblk's, SETUPMAPPING/REMOVEMAPPING DAX's: never ours. */
		0, 7, 19, FUSE_BMAP, FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING, FUSE_OPCODE_MAX,
		255, 1000, CUSE_INIT, CUSE_INIT + 1, UINT32_MAX,
	};
	uint8_t hdr[32];
	struct fu_msg m;
	int err;
	struct req r;

	fill_pattern(hdr, sizeof(hdr), 5);
	for (int ring = 0; ring < 2; ring++)
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
			req_build(&r, ring, ops[i], hdr, 16, "name\0value", 11, 0);
			assert_int_equal(dec(&r, T_MAXW, &m, &err), FU_DECODE_REPLY_ERR);
			assert_int_equal(err, ENOSYS);
			assert_int_equal(m.unique, T_UNIQUE);
			assert_int_equal(m.opcode, ops[i]);
			req_free(&r);
			/* broken framing is reported before the opcode is looked at */
			req_build(&r, ring, ops[i], hdr, 16, NULL, 0, 0);
			req_set_len(&r, 39);
			expect_fail(&r, T_MAXW, EIO);
			req_free(&r);
		}
}

/* ------------------------------------------------------------------------ */
/* Extended attributes                                                       */

static enum fu_decode_result dec_ext(struct req *r, bool ext, struct fu_msg *m, int *err)
{
	const struct fu_decode_limits lim = { .max_write = T_MAXW, .setxattr_ext = ext };
	memset(m, 0x5a, sizeof(*m));
	*err = -1;
	return fu_decode(&r->w, &lim, m, err);
}

static void test_setxattr(void **state)
{
	(void)state;
	static const char data[] = "user.k\0value"; /* + the final NUL: 13 bytes */
	struct fuse_setxattr_in sx = { .size = 5, .flags = 2 /* XATTR_REPLACE */, .setxattr_flags = 1 };
	struct fu_msg m;
	struct req r;
	int err;

	for (int ring = 0; ring < 2; ring++) {
		/* 8-byte header without FUSE_SETXATTR_EXT: setxattr_flags not sent */
		req_build(&r, ring, FUSE_SETXATTR, &sx, 8, data, 12, 0);
		assert_int_equal(dec_ext(&r, false, &m, &err), FU_DECODE_OK);
		assert_string_equal(m.name, "user.k");
		assert_int_equal(m.data_len, 5);
		assert_memory_equal(m.data, "value", 5);
		assert_int_equal(m.arg.setxattr.size, 5);
		assert_int_equal(m.arg.setxattr.flags, 2);
		assert_int_equal(m.arg.setxattr.setxattr_flags, 0);
		/* ... which is too short once the extension was agreed */
		assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_REPLY_ERR);
		assert_int_equal(err, EIO);
		req_free(&r);

		/* 16-byte header with FUSE_SETXATTR_EXT: the flags word arrives */
		req_build(&r, ring, FUSE_SETXATTR, &sx, 16, data, 12, 0);
		assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_OK);
		assert_string_equal(m.name, "user.k");
		assert_memory_equal(m.data, "value", 5);
		assert_int_equal(m.arg.setxattr.setxattr_flags, 1);
		/* ... and misread as 8 bytes + a name without it: malformed */
		assert_int_equal(dec_ext(&r, false, &m, &err), FU_DECODE_REPLY_ERR);
		assert_int_equal(err, EIO);
		req_free(&r);

		/* an empty value: no data pointer */
		sx.size = 0;
		req_build(&r, ring, FUSE_SETXATTR, &sx, 16, "user.k", 7, 0);
		assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_OK);
		assert_null(m.data);
		assert_int_equal(m.data_len, 0);
		req_free(&r);

		/* the value one byte off either way, a missing or empty name */
		for (uint32_t size = 4; size <= 6; size += 2) {
			sx.size = size;
			req_build(&r, ring, FUSE_SETXATTR, &sx, 16, data, 12, 0);
			assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_REPLY_ERR);
			assert_int_equal(err, EIO);
			req_free(&r);
		}
		sx.size = 5;
		req_build(&r, ring, FUSE_SETXATTR, &sx, 16, "value", 5, 0);
		assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_REPLY_ERR);
		req_free(&r);
		req_build(&r, ring, FUSE_SETXATTR, &sx, 16, "\0value", 6, 0);
		assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_REPLY_ERR);
		req_free(&r);
		/* a value size that would wrap the arithmetic */
		sx.size = UINT32_MAX;
		req_build(&r, ring, FUSE_SETXATTR, &sx, 16, data, 12, 0);
		assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_REPLY_ERR);
		req_free(&r);
		/* the value may contain NULs: it is bytes, not a string */
		sx.size = 3;
		req_build(&r, ring, FUSE_SETXATTR, &sx, 16, "n\0\0\0\0", 5, 0);
		assert_int_equal(dec_ext(&r, true, &m, &err), FU_DECODE_OK);
		assert_int_equal(m.data_len, 3);
		assert_memory_equal(m.data, "\0\0\0", 3);
		req_free(&r);
		sx.size = 5;
	}
}

static void test_getxattr_listxattr_removexattr(void **state)
{
	(void)state;
	struct fuse_getxattr_in gx = { .size = 4096 };
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++) {
		req_build(&r, ring, FUSE_GETXATTR, &gx, sizeof(gx), "security.selinux", 17, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.getxattr.size, 4096);
		assert_string_equal(m.name, "security.selinux");
		assert_null(m.data);
		req_free(&r);
		/* size 0: the size probe */
		gx.size = 0;
		req_build(&r, ring, FUSE_GETXATTR, &gx, sizeof(gx), "a", 2, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.getxattr.size, 0);
		req_free(&r);
		/* GETXATTR needs its name */
		req_build(&r, ring, FUSE_GETXATTR, &gx, sizeof(gx), NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);

		/* LISTXATTR: the same header, nothing after it */
		gx.size = 65536;
		req_build(&r, ring, FUSE_LISTXATTR, &gx, sizeof(gx), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.getxattr.size, 65536);
		assert_null(m.name);
		req_free(&r);
		req_build(&r, ring, FUSE_LISTXATTR, &gx, sizeof(gx), "a", 2, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		req_build(&r, ring, FUSE_LISTXATTR, &gx, 4, NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);

		/* REMOVEXATTR: a name and no header */
		req_build(&r, ring, FUSE_REMOVEXATTR, NULL, 0, "trusted.x", 10, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_string_equal(m.name, "trusted.x");
		req_free(&r);
		req_build(&r, ring, FUSE_REMOVEXATTR, NULL, 0, "a\0b", 4, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		gx.size = 4096;
	}
}

/* ------------------------------------------------------------------------ */
/* Locks, poll, ioctl                                                        */

static void test_locks(void **state)
{
	(void)state;
	static const uint32_t ops[] = { FUSE_GETLK, FUSE_SETLK, FUSE_SETLKW };
	struct fuse_lk_in lk = {
		.fh = 3, .owner = 0xabcdef, .lk = { .start = 100, .end = INT64_MAX, .type = 1 /* F_WRLCK */, .pid = 77 },
		.lk_flags = FUSE_LK_FLOCK,
	};
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++)
		for (size_t i = 0; i < 3; i++) {
			req_build(&r, ring, ops[i], &lk, sizeof(lk), NULL, 0, 0);
			expect_ok(&r, T_MAXW, &m);
			assert_int_equal(m.arg.lk.fh, 3);
			assert_int_equal(m.arg.lk.owner, 0xabcdef);
			assert_int_equal(m.arg.lk.lk.start, 100);
			assert_int_equal(m.arg.lk.lk.end, INT64_MAX);
			assert_int_equal(m.arg.lk.lk.type, 1);
			assert_int_equal(m.arg.lk.lk.pid, 77);
			assert_int_equal(m.arg.lk.lk_flags, FUSE_LK_FLOCK);
			req_free(&r);
			/* the 40-byte header of old kernels (no lk_flags) is not one we take */
			req_build(&r, ring, ops[i], &lk, 40, NULL, 0, 0);
			expect_fail(&r, T_MAXW, EIO);
			req_free(&r);
			req_build(&r, ring, ops[i], &lk, sizeof(lk), "x", 1, 0);
			expect_fail(&r, T_MAXW, EIO);
			req_free(&r);
		}
}

static void test_poll(void **state)
{
	(void)state;
	struct fuse_poll_in p = { .fh = 9, .kh = 0x1234, .flags = FUSE_POLL_SCHEDULE_NOTIFY, .events = 0x19 };
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++) {
		req_build(&r, ring, FUSE_POLL, &p, sizeof(p), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.poll.fh, 9);
		assert_int_equal(m.arg.poll.kh, 0x1234);
		assert_int_equal(m.arg.poll.flags, FUSE_POLL_SCHEDULE_NOTIFY);
		assert_int_equal(m.arg.poll.events, 0x19);
		req_free(&r);
		/* 7.21's 16-byte header (no events) is not one we take */
		req_build(&r, ring, FUSE_POLL, &p, 16, NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
	}
}

static void test_ioctl(void **state)
{
	(void)state;
	static uint8_t in[300];
	struct fuse_ioctl_in io = { .fh = 4, .flags = FUSE_IOCTL_DIR, .cmd = 0xc0105500, .arg = 0x7ffd0000,
				    .in_size = 0, .out_size = 256 };
	struct fu_msg m;
	struct req r;

	fill_pattern(in, sizeof(in), 39);
	for (int ring = 0; ring < 2; ring++) {
		/* _IOR: nothing comes in */
		req_build(&r, ring, FUSE_IOCTL, &io, sizeof(io), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.ioctl.fh, 4);
		assert_int_equal(m.arg.ioctl.flags, FUSE_IOCTL_DIR);
		assert_int_equal(m.arg.ioctl.cmd, 0xc0105500);
		assert_int_equal(m.arg.ioctl.arg, 0x7ffd0000);
		assert_int_equal(m.arg.ioctl.out_size, 256);
		assert_null(m.data);
		assert_int_equal(m.data_len, 0);
		req_free(&r);
		/* _IOW / _IOWR: exactly in_size bytes, with an extension after them */
		io.in_size = sizeof(in);
		req_build(&r, ring, FUSE_IOCTL, &io, sizeof(io), in, sizeof(in), 8);
		expect_ok(&r, T_MAXW, &m);
		assert_ptr_equal(m.data, req_region(&r));
		assert_int_equal(m.data_len, sizeof(in));
		assert_memory_equal(m.data, in, sizeof(in));
		req_free(&r);
		/* in_size one off, or far beyond the request */
		req_build(&r, ring, FUSE_IOCTL, &io, sizeof(io), in, sizeof(in) - 1, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		io.in_size = UINT32_MAX;
		req_build(&r, ring, FUSE_IOCTL, &io, sizeof(io), in, sizeof(in), 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		/* no data while in_size says there is */
		io.in_size = 1;
		req_build(&r, ring, FUSE_IOCTL, &io, sizeof(io), NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
		io.in_size = 0;
	}
}

/* ------------------------------------------------------------------------ */
/* Copies, statx, syncfs, tmpfile, NOTIFY_REPLY                              */

static void test_copy_file_range(void **state)
{
	(void)state;
	static const uint32_t ops[] = { FUSE_COPY_FILE_RANGE, FUSE_COPY_FILE_RANGE_64 };
	struct fuse_copy_file_range_in c = { .fh_in = 1, .off_in = 2, .nodeid_out = 3, .fh_out = 4, .off_out = 5,
					     .len = 1ull << 33, .flags = 0 };
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++)
		for (size_t i = 0; i < 2; i++) {
			req_build(&r, ring, ops[i], &c, sizeof(c), NULL, 0, 0);
			expect_ok(&r, T_MAXW, &m);
			assert_int_equal(m.opcode, ops[i]);
			assert_int_equal(m.arg.copy_file_range.fh_in, 1);
			assert_int_equal(m.arg.copy_file_range.off_in, 2);
			assert_int_equal(m.arg.copy_file_range.nodeid_out, 3);
			assert_int_equal(m.arg.copy_file_range.fh_out, 4);
			assert_int_equal(m.arg.copy_file_range.off_out, 5);
			assert_int_equal(m.arg.copy_file_range.len, 1ull << 33);
			req_free(&r);
			req_build(&r, ring, ops[i], &c, sizeof(c) - 8, NULL, 0, 0);
			expect_fail(&r, T_MAXW, EIO);
			req_free(&r);
		}
}

static void test_statx_syncfs_tmpfile(void **state)
{
	(void)state;
	struct fuse_statx_in sx = { .getattr_flags = FUSE_GETATTR_FH, .fh = 8, .sx_flags = 0x100, .sx_mask = 0xfff };
	struct fuse_syncfs_in sy = { .padding = 0 };
	struct fuse_create_in ci = { .flags = 020200002, .mode = 0100600, .umask = 022, .open_flags = 0 };
	struct fu_msg m;
	struct req r;

	for (int ring = 0; ring < 2; ring++) {
		req_build(&r, ring, FUSE_STATX, &sx, sizeof(sx), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.statx.getattr_flags, FUSE_GETATTR_FH);
		assert_int_equal(m.arg.statx.fh, 8);
		assert_int_equal(m.arg.statx.sx_flags, 0x100);
		assert_int_equal(m.arg.statx.sx_mask, 0xfff);
		req_free(&r);
		req_build(&r, ring, FUSE_STATX, &sx, sizeof(sx), "p", 2, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);

		req_build(&r, ring, FUSE_SYNCFS, &sy, sizeof(sy), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		req_free(&r);
		req_build(&r, ring, FUSE_SYNCFS, NULL, 0, NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);

		/* TMPFILE: create_in and the placeholder name of the dentry */
		req_build(&r, ring, FUSE_TMPFILE, &ci, sizeof(ci), "#1", 3, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.create.flags, 020200002);
		assert_int_equal(m.arg.create.mode, 0100600);
		assert_int_equal(m.arg.create.umask, 022);
		assert_string_equal(m.name, "#1");
		req_free(&r);
		req_build(&r, ring, FUSE_TMPFILE, &ci, sizeof(ci), NULL, 0, 0);
		expect_fail(&r, T_MAXW, EIO);
		req_free(&r);
	}
}

/* NOTIFY_REPLY: no answer, ever; its data at most max_write. */
static void test_notify_reply(void **state)
{
	(void)state;
	static uint8_t data[T_MAXW + 8];
	struct fuse_notify_retrieve_in rt = { .offset = 4096, .size = 512 };
	struct fu_msg m;
	struct req r;

	fill_pattern(data, sizeof(data), 41);
	for (int ring = 0; ring < 2; ring++) {
		req_build(&r, ring, FUSE_NOTIFY_REPLY, &rt, sizeof(rt), data, 512, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.arg.notify_reply.offset, 4096);
		assert_int_equal(m.arg.notify_reply.size, 512);
		assert_ptr_equal(m.data, req_region(&r));
		assert_int_equal(m.data_len, 512);
		req_free(&r);
		/* nothing was cached */
		rt.size = 0;
		req_build(&r, ring, FUSE_NOTIFY_REPLY, &rt, sizeof(rt), NULL, 0, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_null(m.data);
		assert_int_equal(m.data_len, 0);
		req_free(&r);
		/* max_write is inclusive */
		rt.size = T_MAXW;
		req_build(&r, ring, FUSE_NOTIFY_REPLY, &rt, sizeof(rt), data, T_MAXW, 0);
		expect_ok(&r, T_MAXW, &m);
		assert_int_equal(m.data_len, T_MAXW);
		req_free(&r);
		/* more than max_write, a size that disagrees, a short header:
		 * dropped, never answered */
		rt.size = T_MAXW + 8;
		req_build(&r, ring, FUSE_NOTIFY_REPLY, &rt, sizeof(rt), data, T_MAXW + 8, 0);
		expect_drop(&r);
		req_free(&r);
		rt.size = 100;
		req_build(&r, ring, FUSE_NOTIFY_REPLY, &rt, sizeof(rt), data, 99, 0);
		expect_drop(&r);
		req_free(&r);
		req_build(&r, ring, FUSE_NOTIFY_REPLY, &rt, sizeof(rt), data, 101, 0);
		expect_drop(&r);
		req_free(&r);
		req_build(&r, ring, FUSE_NOTIFY_REPLY, &rt, 24, NULL, 0, 0);
		expect_drop(&r);
		req_free(&r);
		rt.size = 512;
	}
}

/* ------------------------------------------------------------------------ */
/* Opcode helpers                                                            */

static void test_no_reply(void **state)
{
	(void)state;
	for (uint32_t op = 0; op < 5000; op++) {
		bool want = op == FUSE_FORGET || op == FUSE_BATCH_FORGET || op == FUSE_INTERRUPT ||
			    op == FUSE_NOTIFY_REPLY;
		assert_int_equal(fu_opcode_no_reply(op), want);
	}
	assert_false(fu_opcode_no_reply(UINT32_MAX));
	assert_false(fu_opcode_no_reply(FUSE_INIT));
	assert_false(fu_opcode_no_reply(FUSE_DESTROY));
}

static void test_opcode_names(void **state)
{
	(void)state;
	static const struct {
		uint32_t op;
		const char *name;
	} names[] = {
		{ 1, "LOOKUP" },           { 2, "FORGET" },         { 3, "GETATTR" },
		{ 4, "SETATTR" },          { 5, "READLINK" },       { 6, "SYMLINK" },
		{ 8, "MKNOD" },            { 9, "MKDIR" },          { 10, "UNLINK" },
		{ 11, "RMDIR" },           { 12, "RENAME" },        { 13, "LINK" },
		{ 14, "OPEN" },            { 15, "READ" },          { 16, "WRITE" },
		{ 17, "STATFS" },          { 18, "RELEASE" },       { 20, "FSYNC" },
		{ 21, "SETXATTR" },        { 22, "GETXATTR" },      { 23, "LISTXATTR" },
		{ 24, "REMOVEXATTR" },     { 25, "FLUSH" },         { 26, "INIT" },
		{ 27, "OPENDIR" },         { 28, "READDIR" },       { 29, "RELEASEDIR" },
		{ 30, "FSYNCDIR" },        { 31, "GETLK" },         { 32, "SETLK" },
		{ 33, "SETLKW" },          { 34, "ACCESS" },        { 35, "CREATE" },
		{ 36, "INTERRUPT" },       { 37, "BMAP" },          { 38, "DESTROY" },
		{ 39, "IOCTL" },           { 40, "POLL" },          { 41, "NOTIFY_REPLY" },
		{ 42, "BATCH_FORGET" },    { 43, "FALLOCATE" },     { 44, "READDIRPLUS" },
		{ 45, "RENAME2" },         { 46, "LSEEK" },         { 47, "COPY_FILE_RANGE" },
		{ 48, "SETUPMAPPING" },    { 49, "REMOVEMAPPING" }, { 50, "SYNCFS" },
		{ 51, "TMPFILE" },         { 52, "STATX" },         { 53, "COPY_FILE_RANGE_64" },
		{ 4096, "CUSE_INIT" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(fu_opcode_name(names[i].op), names[i].name);
	static const uint32_t unknown[] = { 0, 7, 19, 54, 55, 4095, 4097, UINT32_MAX };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_string_equal(fu_opcode_name(unknown[i]), "UNKNOWN");
	for (uint32_t op = 0; op < 5000; op++)
		assert_non_null(fu_opcode_name(op));
}

/* ------------------------------------------------------------------------ */

int main(void)
{
	static struct op_test op_tests[N_OP_CASES * 2];
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_bad_name_pairs),
		cmocka_unit_test(test_symlink_link_rename2),
		cmocka_unit_test(test_write),
		cmocka_unit_test(test_batch_forget),
		cmocka_unit_test(test_forget_interrupt),
		cmocka_unit_test(test_init_sizes),
		cmocka_unit_test(test_setxattr),
		cmocka_unit_test(test_getxattr_listxattr_removexattr),
		cmocka_unit_test(test_locks),
		cmocka_unit_test(test_poll),
		cmocka_unit_test(test_ioctl),
		cmocka_unit_test(test_copy_file_range),
		cmocka_unit_test(test_statx_syncfs_tmpfile),
		cmocka_unit_test(test_notify_reply),
		cmocka_unit_test(test_short_in),
		cmocka_unit_test(test_ring_framing),
		cmocka_unit_test(test_unknown_opcodes),
		cmocka_unit_test(test_no_reply),
		cmocka_unit_test(test_opcode_names),
	};
	static struct CMUnitTest tests[N_OP_CASES * 2 + sizeof(fixed) / sizeof(fixed[0])];
	size_t n = 0;

	for (int ring = 0; ring < 2; ring++)
		for (size_t i = 0; i < N_OP_CASES; i++) {
			struct op_test *t = &op_tests[n];
			t->c = &op_cases[i];
			t->ring = ring;
			snprintf(t->name, sizeof(t->name), "%s %s", ring ? "ring" : "legacy",
				 fu_opcode_name(op_cases[i].opcode));
			tests[n] = (struct CMUnitTest){ .name = t->name, .test_func = test_opcode,
							.initial_state = t };
			n++;
		}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		tests[n++] = fixed[i];
	return _cmocka_run_group_tests("decode", tests, n, NULL, NULL);
}
