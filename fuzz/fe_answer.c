/* The answers of the engine fuzzer's filesystem: for each operation a
 * plausible answer through each reply call (entries, attributes, data from
 * the request's buffer, from elsewhere or gathered, listings filled to the
 * brim, xattr size probes and ERANGE, locks, ioctl data, statx, copies),
 * sometimes malformed in the ways the engine must refuse. Each is announced
 * to the fake kernel (fe_expect) just before the reply call, with the bytes
 * the protocol encoders (lib/proto/encode.c, unit-tested on their own) make
 * of it. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fe_answer.h"
#include "fe_input.h"
#include "fe_kernel.h"
#include "proto/encode.h"

static uint32_t payload_size;
static uint8_t pattern[FE_PAYLOAD_MAX]; /* data answered from elsewhere than the request */

void fe_fill(uint8_t *p, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 31);
}

const uint8_t *fe_pattern(void)
{
	return pattern;
}

void fe_answer_begin(uint32_t psize)
{
	payload_size = psize;
	if (pattern[1] == 0)
		fe_fill(pattern, sizeof(pattern), 11);
}

/* ---- values ---- */

static double timeout(void)
{
	switch (fe_choice8() % 8) {
	case 0: return 1.0;
	case 1: return 0;
	case 2: return -1;
	case 3: return NAN;
	case 4: return INFINITY;
	case 5: return 1e300;
	case 6: return 0.25;
	default: return (double)fe_choice64() / 1024.0;
	}
}

int fe_an_errno(void)
{
	static const int errs[] = {ENOENT, EIO, EACCES, EPERM, EINTR, ENOSPC, ERANGE, ENOSYS,
				   EAGAIN, EEXIST, 511,   512,    -5,     100000, 1,      EINVAL};
	return errs[fe_pick(16)];
}

static void make_stat(struct stat *st)
{
	static const mode_t modes[] = {S_IFREG | 0644, S_IFDIR | 0755, S_IFLNK | 0777, S_IFCHR | 0600};

	memset(st, 0, sizeof(*st));
	st->st_ino = fe_choice64();
	uint8_t m = fe_choice8();
	st->st_mode = m < 240 ? modes[m % 4] : (mode_t)fe_choice32();
	st->st_nlink = fe_choice32();
	st->st_uid = fe_choice32();
	st->st_gid = fe_choice32();
	st->st_rdev = fe_choice64();
	st->st_size = (off_t)fe_choice64();
	st->st_blksize = (blksize_t)fe_choice32();
	st->st_blocks = (blkcnt_t)fe_choice64();
	st->st_atim = (struct timespec){(time_t)fe_choice64(), fe_choice32() % 1000000000};
	st->st_mtim = (struct timespec){(time_t)fe_choice64(), (long)(int32_t)fe_choice32()};
	st->st_ctim = (struct timespec){(time_t)fe_choice64(), fe_choice32() % 1000000000};
}

static void make_entry(struct furing_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = fe_choice8() % 8 == 1 ? 0 : fe_choice64(); /* 0: a negative entry */
	e->generation = fe_choice64();
	make_stat(&e->attr);
	e->attr_timeout = timeout();
	e->entry_timeout = timeout();
}

static void make_open(struct furing_open *o)
{
	o->fh = fe_choice64();
	o->flags = fe_choice32();
	o->backing_id = (int32_t)fe_choice32();
}

/* ---- answers, each announced to the fake kernel first ---- */

static void say(struct furing_req *req, const void *p, size_t len)
{
	struct iovec iov = {(void *)p, len};
	fe_expect(req, 0, &iov, 1);
}

void fe_say_err(struct furing_req *req, int err)
{
	fe_expect(req, err, NULL, 0);
	furing_reply_err(req, err);
}

static void say_entry(struct furing_req *req)
{
	struct furing_entry e;
	struct fuse_entry_out out;

	make_entry(&e);
	fu_encode_entry(&out, &e);
	say(req, &out, sizeof(out));
	furing_reply_entry(req, &e);
}

static void say_attr(struct furing_req *req, const struct stat *st, double t)
{
	struct fuse_attr_out out;

	memset(&out, 0, sizeof(out));
	fu_encode_timeout(t, &out.attr_valid, &out.attr_valid_nsec);
	fu_encode_attr(&out.attr, st);
	say(req, &out, sizeof(out));
	furing_reply_attr(req, st, t);
}

/* What the kernel gets: the fuzzed session has no zero-copy queue, so the
 * library drops FURING_OPEN_ZERO_COPY from the answer. */
static void encode_granted_open(struct fuse_open_out *out, const struct furing_open *o)
{
	struct furing_open g = *o;

	g.flags &= ~FURING_OPEN_ZERO_COPY;
	fu_encode_open(out, &g);
}

static void say_open(struct furing_req *req)
{
	struct furing_open o;
	struct fuse_open_out out;

	make_open(&o);
	encode_granted_open(&out, &o);
	say(req, &out, sizeof(out));
	furing_reply_open(req, &o);
}

static void say_create(struct furing_req *req)
{
	struct furing_entry e;
	struct furing_open o;
	struct fuse_entry_out eo;
	struct fuse_open_out oo;

	make_entry(&e);
	make_open(&o);
	fu_encode_entry(&eo, &e);
	encode_granted_open(&oo, &o);
	struct iovec iov[2] = {{&eo, sizeof(eo)}, {&oo, sizeof(oo)}};
	fe_expect(req, 0, iov, 2);
	furing_reply_create(req, &e, &o);
}

/* Data from anywhere: more than the answer buffer holds is EIO. */
static void say_data(struct furing_req *req, const void *p, size_t len)
{
	if (len > payload_size)
		fe_expect(req, EIO, NULL, 0);
	else
		say(req, p, len);
	furing_reply_data(req, p, len);
}

/* Data already in the request's buffer. */
void fe_say_buf(struct furing_req *req, size_t len)
{
	if (len > furing_req_buf_size(req))
		fe_expect(req, EIO, NULL, 0);
	else
		say(req, furing_req_buf(req), len);
	furing_reply_buf(req, len);
}

static void say_iov(struct furing_req *req, const struct iovec *iov, int cnt)
{
	size_t total = 0;
	bool wraps = false;
	for (int i = 0; i < cnt; i++) {
		wraps |= total + iov[i].iov_len < total;
		total += iov[i].iov_len;
	}
	if (cnt > FURING_REPLY_IOV_MAX || wraps || total > payload_size)
		fe_expect(req, EIO, NULL, 0);
	else
		fe_expect(req, 0, iov, cnt);
	furing_reply_iov(req, iov, cnt);
}

void fe_say_write(struct furing_req *req, uint32_t count)
{
	struct fuse_write_out out = {.size = count, .padding = 0};
	say(req, &out, sizeof(out));
	furing_reply_write(req, count);
}

static void say_lseek(struct furing_req *req, uint64_t off)
{
	struct fuse_lseek_out out = {.offset = off};
	say(req, &out, sizeof(out));
	furing_reply_lseek(req, off);
}

static void say_copy(struct furing_req *req, uint64_t count)
{
	if (fe_ctx_of(req)->op == FUSE_COPY_FILE_RANGE_64) {
		struct fuse_copy_file_range_out out = {.bytes_copied = count};
		say(req, &out, sizeof(out));
	} else {
		struct fuse_write_out out = {.size = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count, .padding = 0};
		say(req, &out, sizeof(out));
	}
	furing_reply_copy(req, count);
}

static void say_statfs(struct furing_req *req)
{
	struct statvfs st;
	struct fuse_statfs_out out;

	memset(&st, 0, sizeof(st));
	st.f_bsize = fe_choice64();
	st.f_frsize = fe_choice64();
	st.f_blocks = fe_choice64();
	st.f_bfree = fe_choice64();
	st.f_bavail = fe_choice64();
	st.f_files = fe_choice64();
	st.f_ffree = fe_choice64();
	st.f_namemax = fe_choice64();
	fu_encode_statfs(&out.st, &st);
	say(req, &out, sizeof(out));
	furing_reply_statfs(req, &st);
}

void fe_say_statx(struct furing_req *req, const struct statx *stx)
{
	struct fuse_statx_out out;
	double t = timeout();

	memset(&out, 0, sizeof(out));
	fu_encode_timeout(t, &out.attr_valid, &out.attr_valid_nsec);
	fu_encode_statx(&out.stat, stx);
	say(req, &out, sizeof(out));
	furing_reply_statx(req, stx, t);
}

static void say_xattr_size(struct furing_req *req, size_t size)
{
	struct fuse_getxattr_out out = {.size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size, .padding = 0};
	say(req, &out, sizeof(out));
	furing_reply_xattr_size(req, size);
}

static void say_lock(struct furing_req *req)
{
	static const short types[] = {F_RDLCK, F_WRLCK, F_UNLCK, 77};
	struct flock lk;
	struct fuse_lk_out out;

	memset(&lk, 0, sizeof(lk));
	lk.l_type = types[fe_pick(4)];
	lk.l_whence = SEEK_SET;
	lk.l_start = (off_t)fe_choice64();
	lk.l_len = (off_t)fe_choice64();
	lk.l_pid = (pid_t)fe_choice32();
	fu_flock_to_lock(&lk, &out.lk);
	say(req, &out, sizeof(out));
	furing_reply_lock(req, &lk);
}

void fe_say_poll(struct furing_req *req, uint32_t revents)
{
	struct fuse_poll_out out = {.revents = revents, .padding = 0};
	say(req, &out, sizeof(out));
	furing_reply_poll(req, revents);
}

static void say_ioctl(struct furing_req *req, int result, const void *buf, size_t size)
{
	struct fuse_ioctl_out out = {.result = result};
	struct iovec iov[2] = {{&out, sizeof(out)}, {(void *)buf, size}};

	if (size > fe_ctx_of(req)->size)
		fe_expect(req, EINVAL, NULL, 0); /* more than the caller's buffer */
	else
		fe_expect(req, 0, iov, size ? 2 : 1);
	furing_reply_ioctl(req, result, buf, size);
}

/* ---- the natural answer of each operation ---- */

/* READ: from the request's buffer, from elsewhere, or gathered from pieces
 * of both (in any order: the answer must be their concatenation). */
static void answer_read(struct furing_req *req, uint32_t n)
{
	uint8_t *b = furing_req_buf(req);
	const size_t cap = furing_req_buf_size(req);
	struct iovec iov[FURING_REPLY_IOV_MAX + 1];

	switch (fe_choice8() % 8) {
	case 2:
		say_data(req, pattern, n);
		return;
	case 3:
	case 4: {
		int cnt = 1 + (int)fe_pick(6);
		fe_fill(b, cap, fe_choice8());
		size_t left = n;
		for (int i = 0; i < cnt; i++) {
			size_t len = i == cnt - 1 ? left : fe_choice32() % (left + 1);
			left -= len;
			if (fe_choice8() & 1)
				iov[i] = (struct iovec){b + fe_choice32() % (cap - len + 1), len};
			else
				iov[i] = (struct iovec){pattern + fe_choice32() % (sizeof(pattern) - len + 1), len};
		}
		say_iov(req, iov, cnt);
		return;
	}
	case 5: /* longer than the buffer */
		fe_say_buf(req, cap + 1 + fe_choice8());
		return;
	case 6: /* too many pieces, or lengths that wrap around */
		if (fe_choice8() & 1) {
			for (int i = 0; i <= FURING_REPLY_IOV_MAX; i++)
				iov[i] = (struct iovec){pattern, 1};
			say_iov(req, iov, FURING_REPLY_IOV_MAX + 1);
		} else {
			iov[0] = (struct iovec){pattern, SIZE_MAX - 7};
			iov[1] = (struct iovec){pattern, 16};
			say_iov(req, iov, 2);
		}
		return;
	default:
		fe_fill(b, n, fe_choice8());
		fe_say_buf(req, n);
		return;
	}
}

static void answer_xattr(struct furing_req *req)
{
	struct fe_ctx *c = fe_ctx_of(req);
	uint8_t k = fe_choice8();
	size_t len = k < 250 ? k % 64 : k == 255 ? SIZE_MAX : fe_choice32();

	if (c->size == 0) {
		say_xattr_size(req, len);
	} else if (len > c->size) {
		fe_say_err(req, ERANGE);
	} else if (c->in && (fe_choice8() & 1)) {
		/* the value is the name (as an echo): data from the request itself */
		size_t n = strlen(c->in) + 1;
		say_data(req, c->in, n <= c->size ? n : c->size);
	} else {
		say_data(req, pattern, len < sizeof(pattern) ? len : sizeof(pattern));
	}
}

static void answer_ioctl(struct furing_req *req)
{
	struct fe_ctx *c = fe_ctx_of(req);
	uint8_t *b = furing_req_buf(req);
	size_t cap = furing_req_buf_size(req);
	size_t max = c->size < sizeof(pattern) ? c->size : sizeof(pattern);
	size_t n = fe_choice32() % (max + 1);
	int result = (int)fe_choice32();

	switch (fe_choice8() % 4) {
	case 1: /* the _IOR data built in the request's own buffer */
		if (n > cap)
			n = cap;
		fe_fill(b, n, 3);
		say_ioctl(req, result, b, n);
		return;
	case 2: /* the _IOW input echoed back */
		if (n > c->in_len)
			n = c->in_len;
		say_ioctl(req, result, c->in, n);
		return;
	case 3: /* more than the caller asked for */
		say_ioctl(req, result, pattern, c->size < sizeof(pattern) ? c->size + 1 : sizeof(pattern));
		return;
	default:
		say_ioctl(req, result, pattern, n);
		return;
	}
}

void fe_make_name(char *name, unsigned int i)
{
	uint8_t k = fe_choice8();
	size_t len = k < 200 ? 1 + k % 16 : k < 250 ? 1 + fe_choice8() % 255 : 0;
	for (size_t j = 0; j < len; j++)
		name[j] = (char)('a' + (i + j) % 26);
	name[len] = '\0';
}

/* A listing filled up to the size asked for (or fewer entries), over the
 * request's buffer or a buffer of our own; "full" must mean full. */
static void answer_dir(struct furing_req *req)
{
	static char own[FE_PAYLOAD_MAX];
	struct fe_ctx *c = fe_ctx_of(req);
	const bool plus = c->op == FUSE_READDIRPLUS;
	const bool over_req = fe_choice8() % 4 != 3;
	struct furing_dirbuf d;

	if (over_req)
		furing_dirbuf_init(&d, req, c->size, plus);
	else
		furing_dirbuf_init_buf(&d, own, c->size < sizeof(own) ? c->size : sizeof(own), plus);
	FE_CHECK(d.used == 0 && d.size <= c->size && d.plus == plus);
	FE_CHECK(over_req ? d.buf == furing_req_buf(req) && d.size <= furing_req_buf_size(req) : d.buf == own);
	const unsigned int limit = fe_choice8();
	for (unsigned int i = 0; limit == 0 || i < limit; i++) {
		char name[260];
		fe_make_name(name, i);
		const size_t before = d.used, need = fu_dirent_size(strlen(name), plus);
		bool ok;
		if (fe_choice8() & 1) {
			struct stat st;
			make_stat(&st);
			ok = furing_dirbuf_add(&d, name, &st, fe_choice64());
		} else {
			struct furing_entry e;
			make_entry(&e);
			ok = furing_dirbuf_add_plus(&d, name, &e, fe_choice64());
		}
		if (ok) {
			FE_CHECK(d.used == before + need && d.used <= d.size && d.used % 8 == 0);
			continue;
		}
		FE_CHECK(d.used == before);
		if (name[0] == '\0')
			continue; /* refused: empty names cannot be listed */
		FE_CHECK(d.size - d.used < need);
		break;
	}
	if (d.buf == furing_req_buf(req))
		say(req, d.buf, d.used);
	else if (d.used > payload_size)
		fe_expect(req, EIO, NULL, 0);
	else
		say(req, d.buf, d.used);
	furing_reply_dirbuf(req, &d);
}

void fe_answer(struct furing_req *req)
{
	struct fe_ctx *c = fe_ctx_of(req);

	if (furing_req_interrupted(req) && (fe_choice8() & 1)) {
		fe_say_err(req, EINTR);
		return;
	}
	switch (c->op) {
	case FUSE_LOOKUP: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK:
		say_entry(req);
		return;
	case FUSE_GETATTR: case FUSE_SETATTR: {
		struct stat st;
		make_stat(&st);
		say_attr(req, &st, timeout());
		return;
	}
	case FUSE_READLINK: {
		char target[300];
		fe_make_name(target, 7);
		if (target[0] == '\0')
			strcpy(target, "/");
		say(req, target, strlen(target));
		furing_reply_readlink(req, target);
		return;
	}
	case FUSE_OPEN: case FUSE_OPENDIR:
		say_open(req);
		return;
	case FUSE_CREATE: case FUSE_TMPFILE:
		say_create(req);
		return;
	case FUSE_READ:
		answer_read(req, fe_choice8() % 4 == 1 ? fe_choice32() % (c->size + 1) : c->size);
		return;
	case FUSE_WRITE:
		fe_say_write(req, fe_choice8() % 4 == 1 ? fe_choice32() % (c->size + 1) : c->size);
		return;
	case FUSE_STATFS:
		say_statfs(req);
		return;
	case FUSE_GETXATTR: case FUSE_LISTXATTR:
		answer_xattr(req);
		return;
	case FUSE_GETLK:
		say_lock(req);
		return;
	case FUSE_POLL:
		fe_say_poll(req, fe_choice32());
		return;
	case FUSE_IOCTL:
		answer_ioctl(req);
		return;
	case FUSE_LSEEK:
		say_lseek(req, fe_choice64());
		return;
	case FUSE_COPY_FILE_RANGE: case FUSE_COPY_FILE_RANGE_64:
		say_copy(req, fe_choice64());
		return;
	case FUSE_STATX: {
		struct statx stx;
		uint8_t *p = (uint8_t *)&stx;
		for (size_t i = 0; i < sizeof(stx); i++)
			p[i] = fe_choice8();
		fe_say_statx(req, &stx);
		return;
	}
	case FUSE_READDIR: case FUSE_READDIRPLUS:
		answer_dir(req);
		return;
	default: /* the ones answered with success and nothing else */
		fe_say_err(req, 0);
		return;
	}
}

