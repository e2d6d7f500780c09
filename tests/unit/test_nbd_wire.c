/* export/nbd_wire.c: request headers as the protocol lays them out, and the
 * reply decoder on good replies and on every kind of malformed one (each
 * must be BAD with a reason, never a crash or a silent acceptance). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../export/nbd_wire.h"

/* The commands "in flight": cookie 1 a read of 4096 at 8192, 2 a write,
 * 3 a block status. */
static bool lookup(void *ctx, uint64_t cookie, struct nbd_wire_cmd *cmd)
{
	switch (cookie) {
	case 1: *cmd = (struct nbd_wire_cmd){NBD_WIRE_READ, 8192, 4096}; return true;
	case 2: *cmd = (struct nbd_wire_cmd){NBD_WIRE_WRITE, 0, 512}; return true;
	case 3: *cmd = (struct nbd_wire_cmd){NBD_WIRE_BLOCK_STATUS, 0, 1 << 20}; return true;
	default: return false;
	}
}

static size_t be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return (size_t)n;
}

static size_t simple(uint8_t *p, uint32_t error, uint64_t cookie)
{
	size_t n = be(p, NBD_WIRE_SIMPLE_MAGIC, 4);
	n += be(p + n, error, 4);
	return n + be(p + n, cookie, 8);
}

static size_t chunk(uint8_t *p, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t len)
{
	size_t n = be(p, NBD_WIRE_STRUCTURED_MAGIC, 4);
	n += be(p + n, flags, 2);
	n += be(p + n, type, 2);
	n += be(p + n, cookie, 8);
	return n + be(p + n, len, 4);
}

struct result {
	enum nbd_wire_status st;
	size_t used;
	struct nbd_wire_msg m;
	char why[200];
};

static struct result decode(const uint8_t *p, size_t n, bool structured)
{
	struct result r;

	r.why[0] = 0;
	r.used = nbd_wire_decode(p, n, structured, 1024, lookup, NULL, &r.m, &r.st, r.why, sizeof(r.why));
	return r;
}

static void assert_bad(const uint8_t *p, size_t n, bool structured, const char *reason)
{
	struct result r = decode(p, n, structured);

	assert_int_equal(r.st, NBD_WIRE_BAD);
	assert_int_equal(r.used, 0);
	if (!strstr(r.why, reason))
		fail_msg("reason '%s' does not say '%s'", r.why, reason);
}

static void test_request_layout(void **state)
{
	uint8_t h[NBD_WIRE_REQUEST_SIZE];
	const uint8_t want[NBD_WIRE_REQUEST_SIZE] = {0x25, 0x60, 0x95, 0x13, 0, 1, 0, 1, 0, 0, 0, 7, 0, 0, 0, 9,
						      0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0x20, 0};
	nbd_wire_request(h, NBD_WIRE_FLAG_FUA, NBD_WIRE_WRITE, 7ull << 32 | 9, (1ull << 32) | 4096, 8192);
	assert_memory_equal(h, want, sizeof(want));
}

static void test_simple_replies(void **state)
{
	uint8_t b[64];
	size_t n = simple(b, 0, 1);

	/* A read's data follows its header, as long as the read. */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(decode(b, i, false).st, NBD_WIRE_MORE);
	struct result r = decode(b, n, false);
	assert_int_equal(r.st, NBD_WIRE_MSG);
	assert_int_equal(r.used, 16);
	assert_true(r.m.done);
	assert_int_equal(r.m.data, 4096);
	assert_int_equal(r.m.at, 0);

	/* A failed read has no data; a write's reply never has. */
	simple(b, 5, 1);
	r = decode(b, 16, false);
	assert_int_equal(r.m.error, 5);
	assert_int_equal(r.m.data, 0);
	simple(b, 0, 2);
	assert_int_equal(decode(b, 16, false).m.data, 0);
}

static void test_structured_read(void **state)
{
	uint8_t b[128];
	size_t n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_DATA, 1, 8 + 1024);
	n += be(b + n, 8192 + 2048, 8);

	struct result r = decode(b, n, true);
	assert_int_equal(r.st, NBD_WIRE_MSG);
	assert_int_equal(r.used, 28); /* the data is the caller's to receive */
	assert_false(r.m.done);
	assert_int_equal(r.m.at, 2048);
	assert_int_equal(r.m.data, 1024);

	n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_OFFSET_HOLE, 1, 12);
	n += be(b + n, 8192, 8);
	n += be(b + n, 2048, 4);
	r = decode(b, n, true);
	assert_int_equal(r.st, NBD_WIRE_MSG);
	assert_int_equal(r.used, n);
	assert_true(r.m.done);
	assert_int_equal(r.m.type, NBD_WIRE_CHUNK_OFFSET_HOLE);
	assert_int_equal(r.m.data, 2048);

	n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_NONE, 2, 0);
	r = decode(b, n, true);
	assert_int_equal(r.st, NBD_WIRE_MSG);
	assert_true(r.m.done);
}

static void test_block_status_and_errors(void **state)
{
	uint8_t b[128];
	size_t n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_BLOCK_STATUS, 3, 4 + 16);
	n += be(b + n, 1, 4);
	n += be(b + n, 65536, 4);
	n += be(b + n, 0, 4);
	n += be(b + n, 4096, 4);
	n += be(b + n, NBD_WIRE_STATE_HOLE, 4);
	struct result r = decode(b, n, true);
	assert_int_equal(r.st, NBD_WIRE_MSG);
	assert_int_equal(r.m.extents, 2);
	uint32_t len, flags;
	nbd_wire_extent(&r.m, 1, &len, &flags);
	assert_int_equal(len, 4096);
	assert_int_equal(flags, NBD_WIRE_STATE_HOLE);
	/* Not whole yet: more, not bad. */
	assert_int_equal(decode(b, n - 1, true).st, NBD_WIRE_MORE);

	n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_ERROR, 2, 6 + 3);
	n += be(b + n, 28, 4);
	n += be(b + n, 3, 2);
	memcpy(b + n, "foo", 3);
	n += 3;
	r = decode(b, n, true);
	assert_int_equal(r.st, NBD_WIRE_MSG);
	assert_int_equal(r.m.error, 28);
	assert_int_equal(r.used, n);
}

static void test_malformed(void **state)
{
	uint8_t b[128];
	size_t n;

	memset(b, 0xab, 16);
	assert_bad(b, 16, true, "bad magic");
	n = simple(b, 0, 99);
	assert_bad(b, n, false, "no command in flight");
	n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_NONE, 2, 0);
	assert_bad(b, n, false, "not negotiated");
	n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_NONE, 98, 0);
	assert_bad(b, n, true, "no command in flight");

	/* Data beyond the read, before it, or for a write. */
	n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_DATA, 1, 8 + 4096);
	n += be(b + n, 8192 + 1, 8);
	assert_bad(b, n, true, "beyond its read");
	n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_DATA, 1, 8 + 16);
	n += be(b + n, 4096, 8);
	assert_bad(b, n, true, "beyond its read");
	n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_DATA, 1, 0xffffffffu);
	n += be(b + n, 8192, 8);
	assert_bad(b, n, true, "beyond its read");
	n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_DATA, 2, 8 + 16);
	n += be(b + n, 0, 8);
	assert_bad(b, n, true, "data chunk for a write");
	n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_DATA, 1, 4);
	assert_bad(b, n, true, "data chunk of 4 bytes");

	/* A hole past the end (offset + length wraps), or of another size. */
	n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_HOLE, 1, 12);
	n += be(b + n, UINT64_MAX - 10, 8);
	n += be(b + n, 4096, 4);
	assert_bad(b, n, true, "beyond its read");
	n = chunk(b, 0, NBD_WIRE_CHUNK_OFFSET_HOLE, 1, 16);
	memset(b + n, 0, 16);
	assert_bad(b, n + 16, true, "hole chunk of 16");

	/* Oversize: refused from the header alone, before any payload. */
	n = chunk(b, 0, NBD_WIRE_CHUNK_BLOCK_STATUS, 3, 1u << 30);
	assert_bad(b, n, true, "more than 1024");
	n = chunk(b, 0, NBD_WIRE_CHUNK_BLOCK_STATUS, 3, 4 + 7);
	memset(b + n, 0, 11);
	assert_bad(b, n + 11, true, "block status chunk of 11");
	n = chunk(b, 0, NBD_WIRE_CHUNK_BLOCK_STATUS, 1, 12);
	memset(b + n, 0, 12);
	assert_bad(b, n + 12, true, "for a read");

	/* NONE with a payload or without DONE; error chunks that lie. */
	n = chunk(b, 0, NBD_WIRE_CHUNK_NONE, 2, 0);
	assert_bad(b, n, true, "without DONE");
	n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_ERROR, 2, 6);
	n += be(b + n, 5, 4);
	n += be(b + n, 200, 2);
	assert_bad(b, n, true, "200-byte message");
	n = chunk(b, NBD_WIRE_REPLY_DONE, NBD_WIRE_CHUNK_ERROR, 2, 6);
	n += be(b + n, 0, 4);
	n += be(b + n, 0, 2);
	assert_bad(b, n, true, "without an error");
	n = chunk(b, NBD_WIRE_REPLY_DONE, 77, 2, 0);
	assert_bad(b, n, true, "unknown type 77");
}

/* Whatever the bytes, the decoder answers MORE, MSG within the input, or
 * BAD with a reason: a cheap stand-in for the fuzzer. */
static void test_random_bytes(void **state)
{
	uint8_t b[64];
	uint32_t x = 12345;

	for (int round = 0; round < 200000; round++) {
		for (size_t i = 0; i < sizeof(b); i++) {
			x = x * 1103515245u + 12345u;
			b[i] = (uint8_t)(x >> 16);
		}
		/* Good magics and cookies often, so the checks past them run. */
		if (round % 2)
			be(b, round % 4 == 1 ? NBD_WIRE_SIMPLE_MAGIC : NBD_WIRE_STRUCTURED_MAGIC, 4);
		if (round % 3)
			be(b + 8, 1 + round % 3, 8);
		if (round % 5 == 0)
			be(b + 16, round % 64, 4);
		size_t n = (size_t)(x % sizeof(b));
		struct result r = decode(b, n, round % 7 != 0);
		if (r.st == NBD_WIRE_MSG)
			assert_true(r.used > 0 && r.used <= n);
		else if (r.st == NBD_WIRE_BAD)
			assert_true(r.why[0] != 0);
		if (r.st == NBD_WIRE_MSG && r.m.data && r.m.type != NBD_WIRE_CHUNK_BLOCK_STATUS) {
			struct nbd_wire_cmd cmd = {0};
			assert_true(lookup(NULL, r.m.cookie, &cmd));
			assert_true((uint64_t)r.m.at + r.m.data <= cmd.length);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_layout),         cmocka_unit_test(test_simple_replies),
		cmocka_unit_test(test_structured_read),        cmocka_unit_test(test_block_status_and_errors),
		cmocka_unit_test(test_malformed),              cmocka_unit_test(test_random_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
