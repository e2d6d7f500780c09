/* Unit tests of the answer encoders (lib/proto/encode.c) and of the public
 * directory-listing builder over a buffer (furing_dirbuf_*, lib/reply.c),
 * and the SETATTR time helper (furing_setattr_times, lib/attr.c).
 *
 * Every builder test writes into a buffer pre-filled with a sentinel byte,
 * so that what an encoder must not touch (past the entry, or anything when
 * it refuses) can be checked, and padding must be written as zeros. */
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include <cmocka.h>

#include "furing/furing.h"
#include "proto/encode.h"

#define SENTINEL 0xA5
#define OFFSET_MAX ((uint64_t)INT64_MAX)
#define DIRENT (sizeof(struct fuse_dirent))
#define DIRENTPLUS (sizeof(struct fuse_direntplus))

static void assert_all(const void *p, size_t n, uint8_t byte)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != byte)
			fail_msg("byte %zu is %#x, not %#x", i, b[i], byte);
}

/* ------------------------------------------------------------------------ */
/* Timeouts                                                                  */

static void expect_timeout(double t, uint64_t sec, uint32_t nsec)
{
	uint64_t s = 12345;
	uint32_t ns = 12345;
	fu_encode_timeout(t, &s, &ns);
	assert_int_equal(s, sec);
	assert_int_equal(ns, nsec);
}

static void test_timeout(void **state)
{
	(void)state;
	/* nothing to cache */
	expect_timeout(0, 0, 0);
	expect_timeout(-0.0, 0, 0);
	expect_timeout(-1, 0, 0);
	expect_timeout(-INFINITY, 0, 0);
	expect_timeout(NAN, 0, 0);
	expect_timeout(-NAN, 0, 0);
	/* ordinary values */
	expect_timeout(1, 1, 0);
	expect_timeout(1.5, 1, 500000000);
	expect_timeout(0.25, 0, 250000000);
	expect_timeout(4294967296.25, 4294967296ull, 250000000);
	/* below a nanosecond: zero, but never negative or wrapped */
	expect_timeout(DBL_MIN, 0, 0);
	expect_timeout(1e-10, 0, 0);
	/* the fraction never reaches a whole second */
	uint64_t s;
	uint32_t ns;
	fu_encode_timeout(0.99999999999, &s, &ns);
	assert_int_equal(s, 0);
	assert_true(ns <= 999999999);
	fu_encode_timeout(nextafter(2.0, 0), &s, &ns);
	assert_int_equal(s, 1);
	assert_true(ns <= 999999999);
	/* large values stay exact while a double holds them */
	expect_timeout(9007199254740992.0, 9007199254740992ull, 0); /* 2^53 */
	expect_timeout(9223372036854775808.0, 9223372036854775808ull, 0); /* 2^63 */
	/* huge ones saturate instead of overflowing the conversion */
	expect_timeout(18446744073709549568.0, UINT64_MAX, 999999999); /* the largest double below 2^64 */
	expect_timeout(18446744073709551616.0, UINT64_MAX, 999999999); /* 2^64 */
	expect_timeout(1e300, UINT64_MAX, 999999999);
	expect_timeout(DBL_MAX, UINT64_MAX, 999999999);
	expect_timeout(INFINITY, UINT64_MAX, 999999999);
	/* the largest double that still converts */
	expect_timeout(nextafter(18446744073709549568.0, 0), 18446744073709547520ull, 0);
}

/* ------------------------------------------------------------------------ */
/* Attributes and entries                                                    */

static void sample_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = 0x1122334455667788ull;
	st->st_size = 0x123456789aLL;
	st->st_blocks = 0x2000;
	st->st_atim = (struct timespec){1700000000, 1};
	st->st_mtim = (struct timespec){1700000001, 999999999};
	st->st_ctim = (struct timespec){-5, 500};
	st->st_mode = S_IFREG | 04755;
	st->st_nlink = 3;
	st->st_uid = 1000;
	st->st_gid = 4294967294u;
	st->st_rdev = makedev(8, 1);
	st->st_blksize = 4096;
}

static void test_attr(void **state)
{
	(void)state;
	struct stat st;
	struct fuse_attr a;

	sample_stat(&st);
	memset(&a, SENTINEL, sizeof(a));
	fu_encode_attr(&a, &st);
	assert_int_equal(a.ino, 0x1122334455667788ull);
	assert_int_equal(a.size, 0x123456789aull);
	assert_int_equal(a.blocks, 0x2000);
	assert_int_equal(a.atime, 1700000000);
	assert_int_equal(a.atimensec, 1);
	assert_int_equal(a.mtime, 1700000001);
	assert_int_equal(a.mtimensec, 999999999);
	assert_int_equal(a.ctime, (uint64_t)-5); /* before 1970: the kernel reads it as signed */
	assert_int_equal(a.ctimensec, 500);
	assert_int_equal(a.mode, S_IFREG | 04755);
	assert_int_equal(a.nlink, 3);
	assert_int_equal(a.uid, 1000);
	assert_int_equal(a.gid, 4294967294u);
	assert_int_equal(a.blksize, 4096);
	assert_int_equal(a.flags, 0);
	/* the kernel's 32-bit device numbers (new_encode_dev):
	 * minor bits 0-7, major bits 8-19, minor bits 8-19 at 20-31 */
	assert_int_equal(a.rdev, 0x801);
	static const struct {
		unsigned int maj, min;
		uint32_t want;
	} devs[] = {
		{0, 0, 0},
		{1, 3, 0x103},               /* /dev/null */
		{259, 0x12345, 0x12310345},  /* a large minor: its high bits go on top */
		{4095, 255, 0xfffff},        /* the largest major */
		{4095, 0xfffff, 0xffffffff}, /* everything */
		{0, 256, 0x100000},          /* the first minor that needs the high part */
	};
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		st.st_rdev = makedev(devs[i].maj, devs[i].min);
		fu_encode_attr(&a, &st);
		assert_int_equal(a.rdev, devs[i].want);
		/* ... which decodes back the way the kernel's new_decode_dev does */
		uint32_t d = a.rdev;
		assert_int_equal((d & 0xfff00) >> 8, devs[i].maj);
		assert_int_equal((d & 0xff) | ((d >> 12) & 0xfff00), devs[i].min);
	}
	/* negative sizes and out-of-range fields are passed on bit for bit */
	st.st_size = -1;
	st.st_nlink = (nlink_t)0x100000001ull;
	fu_encode_attr(&a, &st);
	assert_int_equal(a.size, UINT64_MAX);
	assert_int_equal(a.nlink, 1);
}

static void test_entry(void **state)
{
	(void)state;
	struct furing_entry e;
	struct fuse_entry_out out;

	memset(&e, 0, sizeof(e));
	sample_stat(&e.attr);
	e.ino = 42;
	e.generation = 7;
	e.entry_timeout = 2.5;
	e.attr_timeout = NAN;
	memset(&out, SENTINEL, sizeof(out));
	fu_encode_entry(&out, &e);
	assert_int_equal(out.nodeid, 42);
	assert_int_equal(out.generation, 7);
	assert_int_equal(out.entry_valid, 2);
	assert_int_equal(out.entry_valid_nsec, 500000000);
	assert_int_equal(out.attr_valid, 0);
	assert_int_equal(out.attr_valid_nsec, 0);
	/* the node id names the inode: st_ino is replaced */
	assert_int_equal(out.attr.ino, 42);
	assert_int_equal(out.attr.mode, S_IFREG | 04755);
	assert_int_equal(out.attr.rdev, 0x801);

	/* a negative entry: node id 0, cached for entry_timeout */
	e.ino = 0;
	e.entry_timeout = 1;
	fu_encode_entry(&out, &e);
	assert_int_equal(out.nodeid, 0);
	assert_int_equal(out.attr.ino, 0);
	assert_int_equal(out.entry_valid, 1);
}

static void test_open(void **state)
{
	(void)state;
	struct furing_open o = {.fh = 0xfeedfacecafebeefull, .flags = FURING_OPEN_DIRECT_IO | FURING_OPEN_KEEP_CACHE,
				.backing_id = 5};
	struct fuse_open_out out;

	memset(&out, SENTINEL, sizeof(out));
	fu_encode_open(&out, &o);
	assert_int_equal(out.fh, 0xfeedfacecafebeefull);
	assert_int_equal(out.open_flags, FOPEN_DIRECT_IO | FOPEN_KEEP_CACHE);
	/* a backing id means something only with PASSTHROUGH */
	assert_int_equal(out.backing_id, 0);

	o.flags |= FURING_OPEN_PASSTHROUGH;
	fu_encode_open(&out, &o);
	assert_int_equal(out.open_flags, FOPEN_DIRECT_IO | FOPEN_KEEP_CACHE | FOPEN_PASSTHROUGH);
	assert_int_equal(out.backing_id, 5);
	o.backing_id = -1;
	fu_encode_open(&out, &o);
	assert_int_equal(out.backing_id, -1);

	/* every flag is passed on, known or not */
	o = (struct furing_open){.fh = 0, .flags = UINT32_MAX & ~FURING_OPEN_PASSTHROUGH, .backing_id = 9};
	fu_encode_open(&out, &o);
	assert_int_equal(out.open_flags, UINT32_MAX & ~FURING_OPEN_PASSTHROUGH);
	assert_int_equal(out.backing_id, 0);
}

static void test_statfs(void **state)
{
	(void)state;
	struct statvfs st;
	struct fuse_kstatfs out;

	memset(&st, 0, sizeof(st));
	st.f_blocks = 1000000;
	st.f_bfree = 500000;
	st.f_bavail = 400000;
	st.f_files = 65536;
	st.f_ffree = 60000;
	st.f_bsize = 4096;
	st.f_frsize = 512;
	st.f_namemax = 255;
	memset(&out, SENTINEL, sizeof(out));
	fu_encode_statfs(&out, &st);
	assert_int_equal(out.blocks, 1000000);
	assert_int_equal(out.bfree, 500000);
	assert_int_equal(out.bavail, 400000);
	assert_int_equal(out.files, 65536);
	assert_int_equal(out.ffree, 60000);
	assert_int_equal(out.bsize, 4096);
	assert_int_equal(out.frsize, 512);
	assert_int_equal(out.namelen, 255);
	assert_int_equal(out.padding, 0);
	assert_all(out.spare, sizeof(out.spare), 0);
}

static void test_statx(void **state)
{
	(void)state;
	struct statx stx;
	struct fuse_statx out;

	memset(&stx, 0, sizeof(stx));
	stx.stx_mask = STATX_BASIC_STATS | STATX_BTIME;
	stx.stx_blksize = 4096;
	stx.stx_attributes = 0x20;
	stx.stx_nlink = 2;
	stx.stx_uid = 1;
	stx.stx_gid = 2;
	stx.stx_mode = S_IFDIR | 0700;
	stx.stx_ino = 99;
	stx.stx_size = 1ull << 40;
	stx.stx_blocks = 8;
	stx.stx_attributes_mask = 0x7fff;
	stx.stx_atime = (struct statx_timestamp){.tv_sec = -1, .tv_nsec = 1};
	stx.stx_btime = (struct statx_timestamp){.tv_sec = 2, .tv_nsec = 3};
	stx.stx_ctime = (struct statx_timestamp){.tv_sec = 4, .tv_nsec = 5};
	stx.stx_mtime = (struct statx_timestamp){.tv_sec = 6, .tv_nsec = 999999999};
	stx.stx_rdev_major = 8;
	stx.stx_rdev_minor = 16;
	stx.stx_dev_major = 259;
	stx.stx_dev_minor = 3;
	memset(&out, SENTINEL, sizeof(out));
	fu_encode_statx(&out, &stx);
	assert_int_equal(out.mask, STATX_BASIC_STATS | STATX_BTIME);
	assert_int_equal(out.blksize, 4096);
	assert_int_equal(out.attributes, 0x20);
	assert_int_equal(out.nlink, 2);
	assert_int_equal(out.uid, 1);
	assert_int_equal(out.gid, 2);
	assert_int_equal(out.mode, S_IFDIR | 0700);
	assert_int_equal(out.ino, 99);
	assert_int_equal(out.size, 1ull << 40);
	assert_int_equal(out.blocks, 8);
	assert_int_equal(out.attributes_mask, 0x7fff);
	assert_int_equal(out.atime.tv_sec, -1);
	assert_int_equal(out.atime.tv_nsec, 1);
	assert_int_equal(out.btime.tv_sec, 2);
	assert_int_equal(out.btime.tv_nsec, 3);
	assert_int_equal(out.ctime.tv_sec, 4);
	assert_int_equal(out.ctime.tv_nsec, 5);
	assert_int_equal(out.mtime.tv_sec, 6);
	assert_int_equal(out.mtime.tv_nsec, 999999999);
	assert_int_equal(out.atime.reserved, 0);
	assert_int_equal(out.mtime.reserved, 0);
	assert_int_equal(out.rdev_major, 8);
	assert_int_equal(out.rdev_minor, 16);
	assert_int_equal(out.dev_major, 259);
	assert_int_equal(out.dev_minor, 3);
	/* the reserved words are zero, not left over */
	assert_int_equal(out.spare0, 0);
	assert_all(out.spare2, sizeof(out.spare2), 0);
}

/* ------------------------------------------------------------------------ */
/* POSIX locks                                                               */

static struct flock to_flock(uint64_t start, uint64_t end, uint32_t type)
{
	struct fuse_file_lock in = {.start = start, .end = end, .type = type, .pid = 4242};
	struct flock out;
	memset(&out, SENTINEL, sizeof(out));
	fu_lock_to_flock(&in, &out);
	assert_int_equal(out.l_type, (short)type);
	assert_int_equal(out.l_whence, SEEK_SET);
	assert_int_equal(out.l_pid, 4242);
	return out;
}

static struct fuse_file_lock to_lock(off_t start, off_t len, short type)
{
	struct flock in;
	struct fuse_file_lock out;
	memset(&in, 0, sizeof(in));
	in.l_type = type;
	in.l_whence = SEEK_SET;
	in.l_start = start;
	in.l_len = len;
	in.l_pid = 77;
	memset(&out, SENTINEL, sizeof(out));
	fu_flock_to_lock(&in, &out);
	assert_int_equal(out.type, (uint32_t)type);
	assert_int_equal(out.pid, 77);
	return out;
}

static void test_lock_to_flock(void **state)
{
	(void)state;
	struct flock f;

	/* the whole file: OFFSET_MAX is "to the end", l_len 0 */
	f = to_flock(0, OFFSET_MAX, F_WRLCK);
	assert_int_equal(f.l_start, 0);
	assert_int_equal(f.l_len, 0);
	/* an inclusive range */
	f = to_flock(100, 199, F_RDLCK);
	assert_int_equal(f.l_start, 100);
	assert_int_equal(f.l_len, 100);
	f = to_flock(5, 5, F_RDLCK);
	assert_int_equal(f.l_len, 1);
	/* one byte short of OFFSET_MAX is a real length */
	f = to_flock(10, OFFSET_MAX - 1, F_WRLCK);
	assert_int_equal(f.l_len, (off_t)(OFFSET_MAX - 10));
	f = to_flock(0, OFFSET_MAX - 1, F_WRLCK);
	assert_int_equal(f.l_len, INT64_MAX);
	/* beyond OFFSET_MAX (a kernel would not send it): to the end */
	f = to_flock(10, UINT64_MAX, F_WRLCK);
	assert_int_equal(f.l_len, 0);
	/* an end before the start: to the end, never a negative length */
	f = to_flock(200, 100, F_WRLCK);
	assert_int_equal(f.l_start, 200);
	assert_int_equal(f.l_len, 0);
	/* a start past OFFSET_MAX is clamped into off_t */
	f = to_flock(UINT64_MAX, UINT64_MAX, F_UNLCK);
	assert_int_equal(f.l_start, INT64_MAX);
	assert_int_equal(f.l_len, 0);
	f = to_flock(OFFSET_MAX, OFFSET_MAX, F_RDLCK);
	assert_int_equal(f.l_start, INT64_MAX);
	assert_int_equal(f.l_len, 0);
}

static void test_flock_to_lock(void **state)
{
	(void)state;
	struct fuse_file_lock l;

	l = to_lock(0, 0, F_WRLCK); /* l_len 0: to the end */
	assert_int_equal(l.start, 0);
	assert_int_equal(l.end, OFFSET_MAX);
	l = to_lock(100, 100, F_RDLCK);
	assert_int_equal(l.start, 100);
	assert_int_equal(l.end, 199);
	l = to_lock(7, 1, F_RDLCK);
	assert_int_equal(l.end, 7);
	/* the boundary: a length that ends exactly at OFFSET_MAX - 1, at
	 * OFFSET_MAX, and past it */
	l = to_lock(10, (off_t)(OFFSET_MAX - 10), F_WRLCK);
	assert_int_equal(l.end, OFFSET_MAX - 1);
	l = to_lock(10, (off_t)(OFFSET_MAX - 9), F_WRLCK);
	assert_int_equal(l.end, OFFSET_MAX);
	l = to_lock(10, INT64_MAX, F_WRLCK);
	assert_int_equal(l.end, OFFSET_MAX);
	l = to_lock(INT64_MAX, INT64_MAX, F_WRLCK);
	assert_int_equal(l.start, OFFSET_MAX);
	assert_int_equal(l.end, OFFSET_MAX);
	/* a negative length (POSIX: the bytes before l_start) is taken as to the end */
	l = to_lock(100, -10, F_WRLCK);
	assert_int_equal(l.start, 100);
	assert_int_equal(l.end, OFFSET_MAX);
	/* a negative start is clamped to 0 */
	l = to_lock(-5, 10, F_RDLCK);
	assert_int_equal(l.start, 0);
	assert_int_equal(l.end, 9);
	/* no conflict: the range means nothing and is zero */
	l = to_lock(100, 5, F_UNLCK);
	assert_int_equal(l.start, 0);
	assert_int_equal(l.end, 0);
}

static void test_lock_round_trip(void **state)
{
	(void)state;
	static const struct {
		uint64_t start, end;
	} ranges[] = {
		{0, OFFSET_MAX}, {0, 0}, {1, 1}, {0, 4095}, {4096, 8191}, {1ull << 40, OFFSET_MAX},
		{10, OFFSET_MAX - 1}, {0, OFFSET_MAX - 1}, {OFFSET_MAX - 1, OFFSET_MAX - 1}, {OFFSET_MAX - 1, OFFSET_MAX},
	};
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		for (short type = F_RDLCK; type <= F_WRLCK; type++) {
			struct fuse_file_lock in = {.start = ranges[i].start, .end = ranges[i].end, .type = (uint32_t)type,
						    .pid = 9};
			struct flock f;
			struct fuse_file_lock back;
			fu_lock_to_flock(&in, &f);
			fu_flock_to_lock(&f, &back);
			assert_int_equal(back.start, in.start);
			assert_int_equal(back.end, in.end);
			assert_int_equal(back.type, in.type);
			assert_int_equal(back.pid, in.pid);
		}
	}
	/* and the other way, for lengths that do not reach OFFSET_MAX */
	static const struct {
		off_t start, len;
	} flocks[] = {{0, 0}, {0, 1}, {100, 100}, {1 << 20, 0}, {5, INT64_MAX - 5}};
	for (size_t i = 0; i < sizeof(flocks) / sizeof(flocks[0]); i++) {
		struct flock f, back;
		struct fuse_file_lock l;
		memset(&f, 0, sizeof(f));
		f.l_type = F_WRLCK;
		f.l_start = flocks[i].start;
		f.l_len = flocks[i].len;
		fu_flock_to_lock(&f, &l);
		fu_lock_to_flock(&l, &back);
		assert_int_equal(back.l_start, f.l_start);
		assert_int_equal(back.l_len, f.l_len);
	}
}

/* ------------------------------------------------------------------------ */
/* Directory entries: fu_dirent_add, fu_direntplus_add                      */

static void test_dirent_size(void **state)
{
	(void)state;
	assert_int_equal(fu_dirent_size(1, false), 32);
	assert_int_equal(fu_dirent_size(8, false), 32);
	assert_int_equal(fu_dirent_size(9, false), 40);
	assert_int_equal(fu_dirent_size(255, false), 280);
	assert_int_equal(fu_dirent_size(1, true), 160);
	assert_int_equal(fu_dirent_size(8, true), 160);
	assert_int_equal(fu_dirent_size(9, true), 168);
	for (size_t n = 1; n < 300; n++) {
		assert_int_equal(fu_dirent_size(n, false) % 8, 0);
		assert_true(fu_dirent_size(n, false) >= DIRENT + n && fu_dirent_size(n, false) < DIRENT + n + 8);
		assert_true(fu_dirent_size(n, true) >= DIRENTPLUS + n && fu_dirent_size(n, true) < DIRENTPLUS + n + 8);
	}
}

/* One plain entry at @p: its fields, its name, zero padding; returns its size. */
static size_t check_dirent(const uint8_t *p, const char *name, uint64_t ino, uint64_t off, uint32_t type)
{
	struct fuse_dirent d;
	size_t n = strlen(name), total = fu_dirent_size(n, false);

	memcpy(&d, p, sizeof(d));
	assert_int_equal(d.ino, ino);
	assert_int_equal(d.off, off);
	assert_int_equal(d.namelen, n);
	assert_int_equal(d.type, type);
	assert_memory_equal(p + DIRENT, name, n);
	assert_all(p + DIRENT + n, total - DIRENT - n, 0);
	return total;
}

static void test_dirent_add(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t used = 0;

	memset(buf, SENTINEL, sizeof(buf));
	assert_true(fu_dirent_add((char *)buf, sizeof(buf), &used, "a", 10, DT_REG, 1));
	assert_int_equal(used, 32);
	assert_true(fu_dirent_add((char *)buf, sizeof(buf), &used, "eightchr", 11, DT_DIR, 2)); /* no padding */
	assert_int_equal(used, 64);
	assert_true(fu_dirent_add((char *)buf, sizeof(buf), &used, "ninechars", 12, DT_LNK, UINT64_MAX));
	assert_int_equal(used, 104);
	size_t at = 0;
	at += check_dirent(buf + at, "a", 10, 1, DT_REG);
	at += check_dirent(buf + at, "eightchr", 11, 2, DT_DIR);
	at += check_dirent(buf + at, "ninechars", 12, UINT64_MAX, DT_LNK);
	assert_int_equal(at, used);
	assert_all(buf + used, sizeof(buf) - used, SENTINEL);

	/* an empty name is refused and writes nothing */
	assert_false(fu_dirent_add((char *)buf, sizeof(buf), &used, "", 1, DT_REG, 1));
	assert_int_equal(used, 104);
	assert_all(buf + used, sizeof(buf) - used, SENTINEL);
	/* a used count past the size (a caller's bug) is refused too */
	size_t bogus = sizeof(buf) + 8;
	assert_false(fu_dirent_add((char *)buf, sizeof(buf), &bogus, "a", 1, DT_REG, 1));
	assert_int_equal(bogus, sizeof(buf) + 8);
}

/* "Full" at exact boundaries: an entry that fits exactly is taken, one
 * byte less is refused without writing anything. */
static void test_dirent_full(void **state)
{
	(void)state;
	uint8_t buf[128];

	for (size_t n = 1; n <= 20; n++) {
		char name[32];
		memset(name, 'x', n);
		name[n] = '\0';
		const size_t need = fu_dirent_size(n, false);
		for (size_t room = need - 1; room <= need; room++) {
			for (size_t start = 0; start <= 32; start += 8) {
				size_t used = start;
				memset(buf, SENTINEL, sizeof(buf));
				bool ok = fu_dirent_add((char *)buf, start + room, &used, name, 5, DT_REG, 6);
				assert_int_equal(ok, room == need);
				if (ok) {
					assert_int_equal(used, start + need);
					check_dirent(buf + start, name, 5, 6, DT_REG);
				} else {
					assert_int_equal(used, start);
					assert_all(buf, sizeof(buf), SENTINEL);
				}
				assert_all(buf + start + need, sizeof(buf) - start - need, SENTINEL);
			}
		}
	}
	/* size 0 and a size that is not a multiple of 8 */
	size_t used = 0;
	assert_false(fu_dirent_add((char *)buf, 0, &used, "a", 1, DT_REG, 1));
	assert_true(fu_dirent_add((char *)buf, 37, &used, "a", 1, DT_REG, 1));
	assert_false(fu_dirent_add((char *)buf, 37, &used, "a", 1, DT_REG, 1)); /* 5 bytes left */
	assert_int_equal(used, 32);
}

static void plus_entry(struct furing_entry *e, uint64_t ino, ino_t st_ino, mode_t mode)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->generation = 3;
	e->attr.st_ino = st_ino;
	e->attr.st_mode = mode;
	e->attr.st_size = 4096;
	e->attr_timeout = 1;
	e->entry_timeout = 2;
}

static size_t check_direntplus(const uint8_t *p, const char *name, const struct furing_entry *e, uint64_t dirent_ino,
			       uint64_t off, uint32_t type)
{
	struct fuse_direntplus d;
	struct fuse_entry_out want;
	size_t n = strlen(name), total = fu_dirent_size(n, true);

	memcpy(&d, p, sizeof(d));
	fu_encode_entry(&want, e);
	assert_memory_equal(&d.entry_out, &want, sizeof(want));
	assert_int_equal(d.dirent.ino, dirent_ino);
	assert_int_equal(d.dirent.off, off);
	assert_int_equal(d.dirent.namelen, n);
	assert_int_equal(d.dirent.type, type);
	assert_memory_equal(p + DIRENTPLUS, name, n);
	assert_all(p + DIRENTPLUS + n, total - DIRENTPLUS - n, 0);
	return total;
}

static void test_direntplus_add(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct furing_entry e1, e2;
	size_t used = 0;

	plus_entry(&e1, 7, 0, S_IFREG | 0644);    /* dirent.ino from the node id */
	plus_entry(&e2, 8, 1234, S_IFDIR | 0755); /* ... or st_ino when given */
	memset(buf, SENTINEL, sizeof(buf));
	assert_true(fu_direntplus_add((char *)buf, sizeof(buf), &used, "file", &e1, 1));
	assert_true(fu_direntplus_add((char *)buf, sizeof(buf), &used, "directory", &e2, 2));
	size_t at = check_direntplus(buf, "file", &e1, 7, 1, DT_REG);
	at += check_direntplus(buf + at, "directory", &e2, 1234, 2, DT_DIR);
	assert_int_equal(at, used);
	assert_int_equal(used % 8, 0);
	assert_all(buf + used, sizeof(buf) - used, SENTINEL);
	/* the entry_out carries the node id as the attributes' inode */
	struct fuse_direntplus d;
	memcpy(&d, buf + fu_dirent_size(4, true), sizeof(d));
	assert_int_equal(d.entry_out.nodeid, 8);
	assert_int_equal(d.entry_out.attr.ino, 8);

	/* exact fit, one byte short */
	const size_t need = fu_dirent_size(4, true);
	used = 0;
	memset(buf, SENTINEL, sizeof(buf));
	assert_false(fu_direntplus_add((char *)buf, need - 1, &used, "file", &e1, 1));
	assert_int_equal(used, 0);
	assert_all(buf, sizeof(buf), SENTINEL);
	assert_true(fu_direntplus_add((char *)buf, need, &used, "file", &e1, 1));
	assert_int_equal(used, need);
	assert_false(fu_direntplus_add((char *)buf, need, &used, "f", &e1, 1));
	assert_false(fu_direntplus_add((char *)buf, sizeof(buf), &used, "", &e1, 1));
	assert_int_equal(used, need);
}

/* ------------------------------------------------------------------------ */
/* The public builder: furing_dirbuf_*                                       */

static void test_dirbuf_types(void **state)
{
	(void)state;
	static const struct {
		mode_t mode;
		uint32_t type;
	} types[] = {
		{S_IFREG | 0644, DT_REG}, {S_IFDIR | 0755, DT_DIR}, {S_IFLNK | 0777, DT_LNK}, {S_IFCHR, DT_CHR},
		{S_IFBLK, DT_BLK},        {S_IFIFO, DT_FIFO},       {S_IFSOCK, DT_SOCK},     {0644, DT_UNKNOWN},
	};
	uint8_t buf[64];

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct furing_dirbuf d;
		struct stat st;
		memset(&st, 0, sizeof(st));
		st.st_ino = 100 + i;
		st.st_mode = types[i].mode;
		furing_dirbuf_init_buf(&d, buf, sizeof(buf), false);
		assert_true(furing_dirbuf_add(&d, "n", &st, 9));
		check_dirent(buf, "n", 100 + i, 9, types[i].type);
	}
}

static void test_dirbuf(void **state)
{
	(void)state;
	uint8_t buf[1024];
	struct furing_dirbuf d;
	struct stat st;
	struct furing_entry e;

	memset(buf, SENTINEL, sizeof(buf));
	furing_dirbuf_init_buf(&d, buf, 100, false);
	assert_ptr_equal(d.buf, buf);
	assert_int_equal(d.size, 100);
	assert_int_equal(d.used, 0);
	assert_false(d.plus);

	/* a plain listing: add, and add_plus with st_ino or else the node id */
	memset(&st, 0, sizeof(st));
	st.st_ino = 5;
	st.st_mode = S_IFDIR | 0755;
	assert_true(furing_dirbuf_add(&d, ".", &st, 1));
	plus_entry(&e, 77, 0, S_IFREG | 0600);
	assert_true(furing_dirbuf_add_plus(&d, "file", &e, 2));
	plus_entry(&e, 78, 300, S_IFLNK | 0777);
	assert_false(furing_dirbuf_add_plus(&d, "longer-name", &e, 3)); /* 40 bytes, 36 left */
	assert_true(furing_dirbuf_add_plus(&d, "sym", &e, 3));           /* 32: fits exactly */
	assert_int_equal(d.used, 96);
	size_t at = check_dirent(buf, ".", 5, 1, DT_DIR);
	at += check_dirent(buf + at, "file", 77, 2, DT_REG);
	at += check_dirent(buf + at, "sym", 300, 3, DT_LNK);
	assert_int_equal(at, d.used);
	/* full: refused, nothing written */
	assert_false(furing_dirbuf_add(&d, "x", &st, 4));
	assert_int_equal(d.used, 96);
	assert_all(buf + 96, sizeof(buf) - 96, SENTINEL);

	/* a plus listing: add_plus carries the entry; add gives an entry with
	 * node id 0 (the kernel lists the name without looking it up) */
	memset(buf, SENTINEL, sizeof(buf));
	furing_dirbuf_init_buf(&d, buf, sizeof(buf), true);
	assert_true(d.plus);
	plus_entry(&e, 77, 0, S_IFREG | 0600);
	assert_true(furing_dirbuf_add_plus(&d, "file", &e, 10));
	st.st_ino = 5;
	st.st_mode = S_IFDIR | 0755;
	assert_true(furing_dirbuf_add(&d, "..", &st, 11));
	at = check_direntplus(buf, "file", &e, 77, 10, DT_REG);
	struct furing_entry bare;
	memset(&bare, 0, sizeof(bare));
	bare.attr.st_ino = 5;
	bare.attr.st_mode = S_IFDIR;
	at += check_direntplus(buf + at, "..", &bare, 5, 11, DT_DIR);
	assert_int_equal(at, d.used);
	struct fuse_direntplus dp;
	memcpy(&dp, buf + fu_dirent_size(4, true), sizeof(dp));
	assert_int_equal(dp.entry_out.nodeid, 0);
	assert_int_equal(dp.entry_out.entry_valid, 0);
	assert_int_equal(dp.entry_out.attr.mode, S_IFDIR); /* the type, not the permissions */

	/* filling a listing to the last byte */
	furing_dirbuf_init_buf(&d, buf, 5 * 32 + 7, false);
	unsigned int n = 0;
	while (furing_dirbuf_add(&d, "entry", &st, n + 1))
		n++;
	assert_int_equal(n, 5);
	assert_int_equal(d.used, 160);
}

/* ------------------------------------------------------------------------ */
/* SETATTR times for utimensat                                               */

static void test_setattr_times(void **state)
{
	(void)state;
	struct furing_setattr a = {.valid = FURING_SET_MODE | FURING_SET_SIZE};
	struct timespec ts[2] = {{1, 1}, {2, 2}};

	/* neither time: both omitted, and false */
	assert_false(furing_setattr_times(&a, ts));
	assert_int_equal(ts[0].tv_nsec, UTIME_OMIT);
	assert_int_equal(ts[1].tv_nsec, UTIME_OMIT);

	/* touch -a -d: an explicit access time, modification time kept */
	a.valid = FURING_SET_ATIME;
	a.atime = (struct timespec){.tv_sec = 1000, .tv_nsec = 5};
	a.mtime = (struct timespec){.tv_sec = 2000, .tv_nsec = 6};
	assert_true(furing_setattr_times(&a, ts));
	assert_int_equal(ts[0].tv_sec, 1000);
	assert_int_equal(ts[0].tv_nsec, 5);
	assert_int_equal(ts[1].tv_nsec, UTIME_OMIT);

	/* touch: both now; NOW wins over the explicit value sent along */
	a.valid = FURING_SET_ATIME | FURING_SET_ATIME_NOW | FURING_SET_MTIME | FURING_SET_MTIME_NOW;
	assert_true(furing_setattr_times(&a, ts));
	assert_int_equal(ts[0].tv_nsec, UTIME_NOW);
	assert_int_equal(ts[1].tv_nsec, UTIME_NOW);

	/* only the modification time, explicit */
	a.valid = FURING_SET_MTIME;
	assert_true(furing_setattr_times(&a, ts));
	assert_int_equal(ts[0].tv_nsec, UTIME_OMIT);
	assert_int_equal(ts[1].tv_sec, 2000);
	assert_int_equal(ts[1].tv_nsec, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_attr),
		cmocka_unit_test(test_entry),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_statfs),
		cmocka_unit_test(test_statx),
		cmocka_unit_test(test_lock_to_flock),
		cmocka_unit_test(test_flock_to_lock),
		cmocka_unit_test(test_lock_round_trip),
		cmocka_unit_test(test_dirent_size),
		cmocka_unit_test(test_dirent_add),
		cmocka_unit_test(test_dirent_full),
		cmocka_unit_test(test_direntplus_add),
		cmocka_unit_test(test_dirbuf_types),
		cmocka_unit_test(test_dirbuf),
		cmocka_unit_test(test_setattr_times),
	};
	return cmocka_run_group_tests_name("encode", tests, NULL, NULL);
}
