/* Unit tests of fu_init_negotiate() (lib/proto/init.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/init.h"

/* What the filesystem asks for in these tests (the library's defaults). */
#define WANT_FS (FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS)
/* ... plus what the engine always asks for. */
#define WANT_LOW (WANT_FS | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT)
#define WANT_DIO_MMAP ((uint64_t)FUSE2_DIRECT_IO_ALLOW_MMAP << 32)

/* What a 6.18 kernel offers (doc/protocol.md 2.1): bits 0-30 but FILE_OPS,
 * MAP_ALIGNMENT and SUBMOUNTS; flags2 with PASSTHROUGH, OVER_IO_URING only if
 * enable_uring. */
#define OFFER_618_LOW (((1u << 31) - 1) & ~(FUSE_FILE_OPS | FUSE_MAP_ALIGNMENT | FUSE_SUBMOUNTS))
#define OFFER_618_HIGH                                                                          \
	(FUSE2_SECURITY_CTX | FUSE2_CREATE_SUPP_GROUP | FUSE2_HAS_EXPIRE_ONLY |                 \
	 FUSE2_DIRECT_IO_ALLOW_MMAP | FUSE2_PASSTHROUGH | FUSE2_NO_EXPORT_SUPPORT |             \
	 FUSE2_HAS_RESEND | FUSE2_ALLOW_IDMAP | FUSE2_REQUEST_TIMEOUT)

static struct fuse_init_in offer_618(bool uring)
{
	return (struct fuse_init_in){
		.major = 7,
		.minor = 45,
		.max_readahead = 128 * 1024,
		.flags = OFFER_618_LOW,
		.flags2 = OFFER_618_HIGH | (uring ? FUSE2_OVER_IO_URING : 0),
	};
}

static struct fu_init_wish wish_default(void)
{
	return (struct fu_init_wish){
		.max_write = 1024 * 1024,
		.max_background = 64,
		.over_io_uring = true,
		.want = WANT_FS,
		.page_size = 4096,
	};
}

/* What must hold for every successful, non-retry negotiation. */
static void check_invariants(const struct fuse_init_in *in, const struct fu_init_wish *wish,
			     const struct fuse_init_out *out, size_t out_len,
			     const struct fu_init_agreed *ag)
{
	const uint32_t offered2 = (in->flags & FUSE_INIT_EXT) ? in->flags2 : 0;
	uint32_t want2 = 0;
	if (wish->over_io_uring)
		want2 |= FUSE2_OVER_IO_URING;
	if (wish->want & WANT_DIO_MMAP)
		want2 |= FUSE2_DIRECT_IO_ALLOW_MMAP;

	assert_int_equal(out->flags & ~in->flags, 0);  /* never an unoffered bit */
	assert_int_equal(out->flags2 & ~offered2, 0);
	assert_int_equal(out->flags, in->flags & WANT_LOW); /* everything wanted and offered */
	assert_int_equal(out->flags2, offered2 & want2);
	assert_int_equal(out->major, 7);
	assert_int_equal(out->minor, 45);
	assert_int_equal(out->max_readahead, in->max_readahead);
	assert_int_equal(out->time_gran, 1);
	assert_true(out->max_write >= 4096);
	assert_true(out->max_background >= 1);
	assert_true(out->congestion_threshold >= 1);
	assert_true(out->congestion_threshold <= out->max_background);
	assert_int_equal(out->map_alignment, 0);
	assert_int_equal(out->max_stack_depth, 0);
	assert_int_equal(out->request_timeout, 0);
	for (size_t i = 0; i < sizeof(out->unused) / sizeof(out->unused[0]); i++)
		assert_int_equal(out->unused[i], 0);
	if (!(out->flags & FUSE_MAX_PAGES))
		assert_int_equal(out->max_pages, 0);
	else
		assert_true(out->max_pages >= 1);
	assert_true(out_len == 24 || out_len == 64);

	assert_int_equal(ag->major, in->major);
	assert_int_equal(ag->minor, in->minor);
	assert_int_equal(ag->flags, out->flags);
	assert_int_equal(ag->flags2, out->flags2);
	assert_int_equal(ag->max_write, out->max_write);
	assert_int_equal(ag->max_pages, out->max_pages);
	assert_int_equal(ag->max_readahead, in->max_readahead);
	assert_int_equal(ag->over_io_uring, (out->flags2 & FUSE2_OVER_IO_URING) != 0);
	assert_false(ag->retry_major);
}

static void negotiate_ok(const struct fuse_init_in *in, const struct fu_init_wish *wish,
			 struct fuse_init_out *out, size_t *out_len, struct fu_init_agreed *ag)
{
	memset(out, 0x5a, sizeof(*out));
	memset(ag, 0x5a, sizeof(*ag));
	*out_len = 12345;
	assert_int_equal(fu_init_negotiate(in, wish, out, out_len, ag), FU_INIT_OK);
	check_invariants(in, wish, out, *out_len, ag);
}

static void test_618_with_uring(void **state)
{
	(void)state;
	struct fuse_init_in in = offer_618(true);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(len, 64);
	assert_int_equal(out.flags, WANT_LOW);
	assert_int_equal(out.flags2, FUSE2_OVER_IO_URING);
	assert_true(ag.over_io_uring);
	assert_int_equal(out.max_readahead, 128 * 1024);
	assert_int_equal(out.max_write, 1024 * 1024);
	assert_int_equal(out.max_pages, 256);
	assert_int_equal(out.max_background, 64);
	assert_int_equal(out.congestion_threshold, 48);
	assert_int_equal(ag.max_write, 1024 * 1024);
	assert_int_equal(ag.max_pages, 256);
	assert_int_equal(ag.major, 7);
	assert_int_equal(ag.minor, 45);
	/* no splice, no writeback cache, no passthrough, no timeouts */
	assert_int_equal(out.flags & (FUSE_SPLICE_READ | FUSE_SPLICE_WRITE | FUSE_WRITEBACK_CACHE |
				      FUSE_POSIX_LOCKS | FUSE_DO_READDIRPLUS),
			 0);
	assert_int_equal(out.flags2 & (FUSE2_PASSTHROUGH | FUSE2_REQUEST_TIMEOUT | FUSE2_SECURITY_CTX), 0);

	/* and with DIRECT_IO_ALLOW_MMAP wished */
	wish.want |= WANT_DIO_MMAP;
	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(out.flags2, FUSE2_OVER_IO_URING | FUSE2_DIRECT_IO_ALLOW_MMAP);
}

static void test_618_without_uring(void **state)
{
	(void)state;
	struct fuse_init_in in = offer_618(false); /* enable_uring off */
	struct fu_init_wish wish = wish_default();  /* but we would like it */
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(out.flags, WANT_LOW);
	assert_int_equal(out.flags2, 0);
	assert_false(ag.over_io_uring);
	assert_int_equal(len, 64);
}

static void test_uring_offered_not_wished(void **state)
{
	(void)state;
	struct fuse_init_in in = offer_618(true);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	wish.over_io_uring = false;
	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(out.flags2 & FUSE2_OVER_IO_URING, 0);
	assert_false(ag.over_io_uring);
	assert_true(out.flags & FUSE_INIT_EXT);
}

static void test_dio_mmap_not_offered(void **state)
{
	(void)state;
	struct fuse_init_in in = offer_618(true);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	in.flags2 &= ~FUSE2_DIRECT_IO_ALLOW_MMAP;
	wish.want |= WANT_DIO_MMAP;
	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(out.flags2, FUSE2_OVER_IO_URING);
}

/* 7.31 (Linux 5.4-ish): no INIT_EXT, the kernel sent 16 bytes. flags2 is
 * garbage here on purpose: without INIT_EXT it must not count. */
static void test_minor31_no_init_ext(void **state)
{
	(void)state;
	struct fuse_init_in in = {
		.major = 7,
		.minor = 31,
		.max_readahead = 65536,
		.flags = ((1u << 28) - 1) & ~(FUSE_FILE_OPS | FUSE_MAP_ALIGNMENT | FUSE_SUBMOUNTS),
		.flags2 = 0xffffffffu,
	};
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	wish.want |= WANT_DIO_MMAP;
	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(out.flags, WANT_LOW & ~FUSE_INIT_EXT);
	assert_int_equal(out.flags2, 0);
	assert_false(ag.over_io_uring);
	assert_int_equal(out.max_pages, 256);
	assert_int_equal(len, 64);
	assert_int_equal(ag.minor, 31);

	/* flags2 offered but INIT_EXT not: ignored as well */
	in = offer_618(true);
	in.flags &= ~FUSE_INIT_EXT;
	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(out.flags2, 0);
	assert_int_equal(out.flags & FUSE_INIT_EXT, 0);
	assert_false(ag.over_io_uring);
}

static void test_major8_retry(void **state)
{
	(void)state;
	struct fuse_init_in in = offer_618(true);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out, zero;
	struct fu_init_agreed ag;
	size_t len = 0;

	in.major = 8;
	in.minor = 0;
	memset(&out, 0x5a, sizeof(out));
	memset(&ag, 0x5a, sizeof(ag));
	assert_int_equal(fu_init_negotiate(&in, &wish, &out, &len, &ag), FU_INIT_OK);
	assert_int_equal(len, 64);
	assert_true(ag.retry_major);
	assert_false(ag.over_io_uring);
	assert_int_equal(ag.major, 8);
	assert_int_equal(ag.flags, 0);
	assert_int_equal(ag.flags2, 0);
	memset(&zero, 0, sizeof(zero));
	zero.major = 7;
	zero.minor = 45;
	assert_memory_equal(&out, &zero, sizeof(out));

	in.major = UINT32_MAX;
	assert_int_equal(fu_init_negotiate(&in, &wish, &out, &len, &ag), FU_INIT_OK);
	assert_true(ag.retry_major);
}

static void test_major6_and_old_minor(void **state)
{
	(void)state;
	struct fuse_init_in in = offer_618(true);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	static const uint32_t bad_major[] = { 0, 1, 6 };
	for (size_t i = 0; i < sizeof(bad_major) / sizeof(bad_major[0]); i++) {
		in.major = bad_major[i];
		len = 77;
		assert_int_equal(fu_init_negotiate(&in, &wish, &out, &len, &ag), FU_INIT_PROTO_ERR);
		assert_false(ag.retry_major);
		assert_int_equal(ag.flags, 0);
		assert_int_equal(len, 0);
	}
	in.major = 7;
	static const uint32_t bad_minor[] = { 0, 4, 5, 12 };
	for (size_t i = 0; i < sizeof(bad_minor) / sizeof(bad_minor[0]); i++) {
		in.minor = bad_minor[i];
		assert_int_equal(fu_init_negotiate(&in, &wish, &out, &len, &ag), FU_INIT_PROTO_ERR);
		assert_int_equal(len, 0);
	}

	assert_int_equal(fu_init_negotiate(NULL, &wish, &out, &len, &ag), FU_INIT_PROTO_ERR);
	assert_int_equal(fu_init_negotiate(&in, NULL, &out, &len, &ag), FU_INIT_PROTO_ERR);
}

static void test_out_len_by_minor(void **state)
{
	(void)state;
	static const struct {
		uint32_t minor;
		size_t len;
	} cases[] = { { 13, 24 }, { 22, 24 }, { 23, 64 }, { 36, 64 }, { 45, 64 }, { 46, 64 }, { 1000, 64 } };
	struct fuse_init_in in = offer_618(false);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in.minor = cases[i].minor;
		/* an old kernel offers what it knew: no INIT_EXT, no MAX_PAGES */
		if (in.minor < 36)
			in.flags &= ~FUSE_INIT_EXT;
		if (in.minor < 28)
			in.flags &= ~FUSE_MAX_PAGES;
		negotiate_ok(&in, &wish, &out, &len, &ag);
		assert_int_equal(len, cases[i].len);
		assert_int_equal(ag.minor, cases[i].minor);
		/* the fields a 7.22 kernel reads (first 24 bytes) are filled */
		assert_int_equal(out.max_write, 1024 * 1024);
		assert_int_equal(out.max_background, 64);
		if (in.minor < 28)
			assert_int_equal(out.max_pages, 0);
	}
}

static void test_max_pages(void **state)
{
	(void)state;
	static const struct {
		uint32_t max_write, page_size;
		uint32_t eff_max_write;
		uint16_t pages;
	} cases[] = {
		{ 1u << 20, 4096, 1u << 20, 256 },
		{ (1u << 20) + 1, 4096, (1u << 20) + 1, 257 },
		{ (1u << 20) - 1, 4096, (1u << 20) - 1, 256 },
		{ 1u << 20, 0, 1u << 20, 256 },       /* page_size 0 means 4096 */
		{ 1u << 20, 65536, 1u << 20, 16 },
		{ 1u << 20, 16384, 1u << 20, 64 },
		{ 0, 4096, 4096, 1 },                 /* max_write at least 4096 */
		{ 100, 4096, 4096, 1 },
		{ 4096, 65536, 4096, 1 },
		{ 128 * 1024, 4096, 128 * 1024, 32 },
		{ 65535u * 4096u, 4096, 65535u * 4096u, 65535 },
		{ 65535u * 4096u + 1, 4096, 65535u * 4096u + 1, 65535 }, /* capped */
		{ UINT32_MAX, 4096, UINT32_MAX, 65535 },
		{ UINT32_MAX, 1, UINT32_MAX, 65535 },
		{ UINT32_MAX, UINT32_MAX, UINT32_MAX, 1 },
	};
	struct fuse_init_in in = offer_618(true);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		wish.max_write = cases[i].max_write;
		wish.page_size = cases[i].page_size;
		negotiate_ok(&in, &wish, &out, &len, &ag);
		assert_int_equal(out.max_write, cases[i].eff_max_write);
		assert_int_equal(out.max_pages, cases[i].pages);
		assert_int_equal(ag.max_pages, cases[i].pages);
		assert_true(out.flags & FUSE_MAX_PAGES);
	}

	/* not offered: no flag, no pages, max_write still ours */
	in.flags &= ~FUSE_MAX_PAGES;
	wish.max_write = 1u << 20;
	wish.page_size = 4096;
	negotiate_ok(&in, &wish, &out, &len, &ag);
	assert_int_equal(out.flags & FUSE_MAX_PAGES, 0);
	assert_int_equal(out.max_pages, 0);
	assert_int_equal(ag.max_pages, 0);
	assert_int_equal(out.max_write, 1u << 20);
}

static void test_max_background(void **state)
{
	(void)state;
	static const struct {
		uint16_t wish, bg, congestion;
	} cases[] = {
		{ 0, 12, 9 }, { 1, 1, 1 }, { 2, 2, 1 }, { 4, 4, 3 }, { 12, 12, 9 }, { 64, 64, 48 },
		{ 65535, 65535, 49151 },
	};
	struct fuse_init_in in = offer_618(true);
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		wish.max_background = cases[i].wish;
		negotiate_ok(&in, &wish, &out, &len, &ag);
		assert_int_equal(out.max_background, cases[i].bg);
		assert_int_equal(out.congestion_threshold, cases[i].congestion);
	}
}

/* Offer each bit alone, then many random offers and wishes: the reply is
 * always offered & wanted (check_invariants). */
static void test_never_unoffered_bit(void **state)
{
	(void)state;
	struct fuse_init_in in;
	struct fu_init_wish wish = wish_default();
	struct fuse_init_out out;
	struct fu_init_agreed ag;
	size_t len;

	for (int with_ext = 0; with_ext < 2; with_ext++)
		for (int bit = 0; bit < 64; bit++) {
			memset(&in, 0, sizeof(in));
			in.major = 7;
			in.minor = 45;
			if (bit < 32)
				in.flags = 1u << bit;
			else
				in.flags2 = 1u << (bit - 32);
			if (with_ext)
				in.flags |= FUSE_INIT_EXT;
			wish.want |= WANT_DIO_MMAP;
			negotiate_ok(&in, &wish, &out, &len, &ag);
			const uint64_t reply = out.flags | (uint64_t)out.flags2 << 32;
			const uint64_t offered = in.flags | (uint64_t)in.flags2 << 32;
			assert_int_equal(reply & ~offered, 0);
		}

	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memset(&in, 0, sizeof(in));
		in.major = 7;
		in.minor = 13 + (uint32_t)(x % 40);
		in.flags = (uint32_t)x;
		in.flags2 = (uint32_t)(x >> 32);
		in.max_readahead = (uint32_t)(x >> 17);
		wish.over_io_uring = (x >> 3) & 1;
		wish.want = WANT_FS | ((x >> 5) & 1 ? WANT_DIO_MMAP : 0);
		wish.max_write = (uint32_t)(x >> 23);
		wish.max_background = (uint16_t)(x >> 41);
		wish.page_size = (x >> 9) & 1 ? 4096 : (uint32_t)(x >> 50);
		negotiate_ok(&in, &wish, &out, &len, &ag);
	}
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_618_with_uring),
		cmocka_unit_test(test_618_without_uring),
		cmocka_unit_test(test_uring_offered_not_wished),
		cmocka_unit_test(test_dio_mmap_not_offered),
		cmocka_unit_test(test_minor31_no_init_ext),
		cmocka_unit_test(test_major8_retry),
		cmocka_unit_test(test_major6_and_old_minor),
		cmocka_unit_test(test_out_len_by_minor),
		cmocka_unit_test(test_max_pages),
		cmocka_unit_test(test_max_background),
		cmocka_unit_test(test_never_unoffered_bit),
	};
	return cmocka_run_group_tests_name("init", tests, NULL, NULL);
}
