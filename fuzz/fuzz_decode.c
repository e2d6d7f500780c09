/* libFuzzer target for fu_decode() and fu_init_negotiate().
 *
 * Input: one selector byte, then the request.
 *   selector bit 0     layout: 0 legacy, 1 ring
 *   selector bits 1-3  max_write limit (table below)
 *   selector bit 4/5   INIT wish: over_io_uring / setxattr_ext decoding
 *   selector bits 6-7  INIT wish: page size (table below)
 *   legacy: in_header = the first 40 bytes, arg = the rest
 *   ring:   in_header = the first 40 bytes, op_in = the next (up to) 128,
 *           payload = the rest
 * Each part is copied into its own exactly-sized heap block, so ASan reports
 * any read past a length the decoder was given. On success every field, name
 * and data byte is read, and the view's invariants are checked (a violation
 * aborts, which libFuzzer reports as a crash). fuzz/make_corpus.py writes
 * seeds in this format. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/decode.h"
#include "proto/init.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IN_HDR sizeof(struct fuse_in_header)

static const uint32_t max_writes[8] = { 0, 1, 16, 100, 4096, 65536, 1u << 20, UINT32_MAX };
static const uint32_t page_sizes[4] = { 4096, 0, 65536, 1 };

static volatile uint8_t sink;

#define CHECK(c)                                                                                \
	do {                                                                                    \
		if (!(c))                                                                       \
			abort();                                                                \
	} while (0)

static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc = (uint8_t)(acc ^ b[i]);
	sink = acc;
}

/* [p, p+n) lies inside [base, base+base_len) */
static int inside(const void *p, size_t n, const void *base, size_t base_len)
{
	if (base == NULL)
		return 0;
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
	return a >= b && a - b <= base_len && n <= base_len - (a - b);
}

static uint8_t *dup_block(const uint8_t *src, size_t n)
{
	uint8_t *p = malloc(n); /* malloc(0): a block ASan lets nobody read */
	if (p == NULL && n != 0)
		abort();
	if (n)
		memcpy(p, src, n);
	return p;
}

static void check_name(const char *name, const void *region, size_t region_len)
{
	CHECK(inside(name, 1, region, region_len));
	size_t room = region_len - (size_t)((const uint8_t *)name - (const uint8_t *)region);
	const char *nul = memchr(name, '\0', room); /* reads only inside the region */
	CHECK(nul != NULL && nul != name);
	touch(name, (size_t)(nul - name) + 1);
}

static void check_init(const struct fu_msg *msg, uint8_t sel, uint32_t max_write)
{
	/* The filesystem's wishes come from bytes the kernel leaves unused. */
	const struct fu_init_wish wish = {
		.want = (uint64_t)msg->arg.init.unused[1] << 32 | msg->arg.init.unused[2],
		.max_write = max_write,
		.max_readahead = msg->arg.init.unused[3],
		.max_background = (uint16_t)(msg->arg.init.unused[0]),
		.congestion_threshold = (uint16_t)(msg->arg.init.unused[0] >> 16),
		.time_gran = msg->arg.init.unused[4],
		.max_stack_depth = msg->arg.init.unused[5],
		.over_io_uring = (sel >> 4) & 1,
		.page_size = page_sizes[(sel >> 6) & 3],
	};
	const struct fuse_init_in *in = &msg->arg.init;
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t out_len = 0;

	enum fu_init_result r = fu_init_negotiate(in, &wish, &out, &out_len, &ag);
	touch(&ag, sizeof(ag));
	if (r != FU_INIT_OK) {
		CHECK(r == FU_INIT_PROTO_ERR);
		CHECK(in->major < 7 || (in->major == 7 && in->minor < 13));
		return;
	}
	CHECK(out_len == 8 || out_len == 24 || out_len == sizeof(out));
	touch(&out, out_len);
	CHECK(out.major == 7 && out.minor == 45);
	if (ag.retry_major) {
		CHECK(in->major > 7 && out.flags == 0 && out.flags2 == 0);
		return;
	}
	const uint32_t offered2 = (in->flags & FUSE_INIT_EXT) ? in->flags2 : 0;
	CHECK((out.flags & ~in->flags) == 0);
	CHECK((out.flags2 & ~offered2) == 0);
	CHECK(out.max_write >= 4096 && out.max_write >= max_write);
	CHECK(ag.max_write == out.max_write && ag.flags == out.flags && ag.flags2 == out.flags2);
	CHECK(ag.over_io_uring == ((out.flags2 & FUSE2_OVER_IO_URING) != 0));
	CHECK(!ag.over_io_uring || wish.over_io_uring);
	CHECK((out.flags & FUSE_MAX_PAGES) ? out.max_pages >= 1 : out.max_pages == 0);
	CHECK(out.congestion_threshold >= 1 && out.congestion_threshold <= out.max_background);
	CHECK((ag.flags64 & FU_INIT_NEVER_FLAGS) == 0);
	CHECK(out.max_readahead <= in->max_readahead);
	CHECK(out.time_gran >= 1 && out.time_gran <= 1000000000u);
	CHECK(out.max_stack_depth <= 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t sel = data[0];
	data++;
	size--;

	const bool ring = sel & 1;
	const struct fu_decode_limits lim = { .max_write = max_writes[(sel >> 1) & 7], .setxattr_ext = (sel >> 5) & 1 };

	size_t in_len = size < IN_HDR ? size : IN_HDR;
	size_t rest = size - in_len;
	size_t arg_len, data_len;
	if (ring) {
		arg_len = rest < FUSE_URING_OP_IN_OUT_SZ ? rest : FUSE_URING_OP_IN_OUT_SZ;
		data_len = rest - arg_len;
	} else {
		arg_len = rest;
		data_len = 0;
	}
	uint8_t *in = dup_block(data, in_len);
	uint8_t *arg = dup_block(data + in_len, arg_len);
	uint8_t *payload = ring ? dup_block(data + in_len + arg_len, data_len) : NULL;

	const struct fu_wire w = {
		.in = in,
		.in_len = in_len,
		.arg = arg,
		.arg_len = arg_len,
		.data = payload,
		.data_len = data_len,
		.split = ring,
	};
	/* where names and data may point */
	const void *region = ring ? (const void *)payload : (const void *)arg;
	const size_t region_len = ring ? data_len : arg_len;

	struct fu_msg msg;
	int err = -1;
	enum fu_decode_result res = fu_decode(&w, &lim, &msg, &err);

	if (in_len < IN_HDR) {
		CHECK(res == FU_DECODE_DROP);
		goto out;
	}
	struct fuse_in_header ih;
	memcpy(&ih, in, sizeof(ih));
	CHECK(msg.opcode == ih.opcode && msg.unique == ih.unique && msg.nodeid == ih.nodeid);
	CHECK(msg.uid == ih.uid && msg.gid == ih.gid && msg.pid == ih.pid);
	touch(fu_opcode_name(msg.opcode), strlen(fu_opcode_name(msg.opcode)));

	switch (res) {
	case FU_DECODE_DROP:
		CHECK(err == 0);
		break;
	case FU_DECODE_REPLY_ERR:
		CHECK(err == EIO || err == ENOSYS);
		CHECK(!fu_opcode_no_reply(msg.opcode));
		break;
	case FU_DECODE_OK:
		CHECK(err == 0);
		touch(&msg, sizeof(msg));
		if (msg.name != NULL)
			check_name(msg.name, region, region_len);
		if (msg.name2 != NULL) {
			CHECK(msg.name != NULL);
			CHECK(msg.name2 == msg.name + strlen(msg.name) + 1);
			check_name(msg.name2, region, region_len);
		}
		if (msg.data != NULL) {
			CHECK(inside(msg.data, msg.data_len, region, region_len));
			touch(msg.data, msg.data_len);
		} else {
			CHECK(msg.data_len == 0);
		}
		if (msg.opcode == FUSE_WRITE) {
			CHECK(msg.data_len == msg.arg.write.size);
			CHECK(msg.arg.write.size <= lim.max_write);
		} else if (msg.opcode == FUSE_BATCH_FORGET) {
			CHECK((uint64_t)msg.data_len == (uint64_t)msg.arg.batch_forget.count * 16);
		} else if (msg.opcode == FUSE_SETXATTR) {
			CHECK(msg.name != NULL && msg.data_len == msg.arg.setxattr.size);
			CHECK(msg.data == NULL || msg.data == msg.name + strlen(msg.name) + 1);
		} else if (msg.opcode == FUSE_IOCTL) {
			CHECK(msg.data_len == msg.arg.ioctl.in_size);
		} else if (msg.opcode == FUSE_NOTIFY_REPLY) {
			CHECK(msg.data_len == msg.arg.notify_reply.size && msg.data_len <= lim.max_write);
		} else {
			CHECK(msg.data == NULL);
		}
		if (msg.opcode == FUSE_INIT)
			check_init(&msg, sel, lim.max_write);
		break;
	default:
		abort();
	}
out:
	free(in);
	free(arg);
	free(payload);
	return 0;
}
