/* What the engine fuzzer knows about each request it handed to the engine,
 * and the checks of what the engine (and the filesystem) do with it: the
 * handle and buffers an operation gets, the answer it must send, the answer
 * that arrives, and the engine's log. See fe_kernel.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_kernel.h"

#define MAX_RECS 64

static struct fu_session *S;
static struct fu_worker *W;
static struct fe_kernel_cfg cfg;
static uintptr_t page;
static struct fe_rec recs[MAX_RECS];
static unsigned long warnings, errors, expected_warnings;

_Noreturn void fe_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "fuzz_engine: %s:%d: check failed: %s\n", file, line, what);
	abort();
}

/* ---- the engine's log ---- */

unsigned long fe_warnings(void)
{
	return warnings;
}

/* A --debug line names the request's name as it arrived, whatever the
 * answer has done to the buffer since. */
static void check_debug_line(const char *msg)
{
	const char *u = strstr(msg, " unique="), *n = strstr(msg, " name=");
	if (!u || !n)
		return;
	unsigned long long unique = strtoull(u + 8, NULL, 10);
	for (unsigned int i = 0; i < MAX_RECS; i++) {
		const struct fe_rec *r = &recs[i];
		if (!r->used || r->unique != unique || !r->name_at)
			continue;
		size_t len = strlen(r->name);
		FE_CHECK(strncmp(n + 6, r->name, len) == 0 && strncmp(n + 6 + len, " -> ", 4) == 0);
	}
}

void fe_log(void *data, enum furing_log_level level, const char *msg)
{
	FE_CHECK(strlen(msg) < 1024);
	/* The stand-in fd takes every answer: a failed write is the engine's. */
	FE_CHECK(strncmp(msg, "answering ", 10) != 0);
	if (level == FURING_LOG_WARNING)
		warnings++;
	else if (level == FURING_LOG_ERROR)
		errors++;
	else if (level == FURING_LOG_DEBUG)
		check_debug_line(msg);
}

/* ---- records of requests in flight ---- */

struct fe_rec *fe_rec_new(void)
{
	for (unsigned int i = 0; i < MAX_RECS; i++)
		if (!recs[i].used) {
			struct fe_rec *r = &recs[i];
			memset(r, 0, offsetof(struct fe_rec, exp));
			r->used = true;
			return r;
		}
	fe_fail(__FILE__, __LINE__, "more requests in flight than slots");
}

/* The slot a request came through is back with the kernel: the request
 * must be over. */
void fe_rec_retire(struct fe_rec *r)
{
	FE_CHECK(!r->expect_answer || r->answered);
	FE_CHECK(!r->called || r->exp_set || !r->expect_answer || fe_no_reply(r->opcode));
	r->used = false;
}

struct fe_rec *fe_rec_of(const struct furing_req *req)
{
	uint64_t u = furing_req_unique(req);
	for (unsigned int i = 0; i < MAX_RECS; i++)
		if (recs[i].used && !recs[i].answered && recs[i].unique == u)
			return &recs[i];
	fe_fail(__FILE__, __LINE__, "the filesystem got a request the kernel did not send (or one already answered)");
}

uint64_t fe_unique_in_flight(unsigned int which)
{
	unsigned int n = 0;
	for (unsigned int i = 0; i < MAX_RECS; i++)
		n += recs[i].used && !recs[i].answered;
	if (!n)
		return 0;
	which %= n;
	for (unsigned int i = 0; i < MAX_RECS; i++)
		if (recs[i].used && !recs[i].answered && which-- == 0)
			return recs[i].unique;
	return 0;
}

static bool inside(const void *p, size_t n, const void *lo, const void *hi)
{
	uintptr_t a = (uintptr_t)p, l = (uintptr_t)lo, h = (uintptr_t)hi;
	return a >= l && a <= h && n <= h - a;
}

static bool apart(const void *a, size_t an, const void *b, size_t bn)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
	return an == 0 || bn == 0 || x + an <= y || y + bn <= x;
}

struct fe_rec *fe_enter(struct furing_req *req)
{
	struct fe_rec *r = fe_rec_of(req);

	FE_CHECK(!r->called);
	r->called = true;
	FE_CHECK(furing_req_worker(req) == (struct furing_worker *)W);
	FE_CHECK(furing_req_session(req) == (struct furing_session *)S);
	FE_CHECK(furing_req_fs(req) == S->fs);
	const struct furing_ctx *c = furing_req_ctx(req);
	FE_CHECK(c->uid == r->uid && c->gid == r->gid && c->pid == (pid_t)r->pid);
	FE_CHECK(((uintptr_t)furing_req_scratch(req) & 15) == 0);
	/* The answer buffer: inside the slot's buffer, and as aligned as the
	 * header promises. */
	const uint8_t *b = furing_req_buf(req);
	size_t n = furing_req_buf_size(req);
	FE_CHECK(inside(b, n, r->ans_lo, r->ans_hi));
	if (n)
		FE_CHECK(((uintptr_t)b & 63) == 0);
	if (r->buf_no_tail) {
		FE_CHECK(((uintptr_t)b & (page - 1)) == 0);
		FE_CHECK(n >= cfg.max_write);
	}
	return r;
}

void fe_check_name(struct furing_req *req, const char *name)
{
	struct fe_rec *r = fe_rec_of(req);
	const uint8_t *end = r->region + r->region_len;

	FE_CHECK(name && inside(name, 1, r->region, end));
	const char *nul = memchr(name, '\0', (size_t)(end - (const uint8_t *)name));
	FE_CHECK(nul && nul != name);
	FE_CHECK(apart(name, (size_t)(nul - name) + 1, furing_req_buf(req), furing_req_buf_size(req)));
	if (!r->name_at || name < r->name_at) {
		r->name_at = name;
		snprintf(r->name, sizeof(r->name), "%s", name);
	}
}

void fe_check_data(struct furing_req *req, const void *p, size_t len)
{
	struct fe_rec *r = fe_rec_of(req);

	if (len == 0)
		return;
	FE_CHECK(p && inside(p, len, r->region, r->region + r->region_len));
	FE_CHECK(apart(p, len, furing_req_buf(req), furing_req_buf_size(req)));
}

void fe_expect(struct furing_req *req, int err, const struct iovec *iov, int cnt)
{
	struct fe_rec *r = fe_rec_of(req);
	size_t total = 0;

	FE_CHECK(r->called && !r->exp_set);
	r->exp_set = true;
	r->exp_err = err < 0 || err >= 512 ? EIO : err; /* the kernel takes only (-512, 0] */
	r->exp_len = 0;
	if (r->exp_err)
		return;
	for (int i = 0; i < cnt; i++) {
		FE_CHECK(iov[i].iov_len <= sizeof(r->exp) - total);
		memcpy(r->exp + total, iov[i].iov_base, iov[i].iov_len);
		total += iov[i].iov_len;
	}
	/* The ring has only the entry's payload for the out-args. */
	if (r->ring && total > cfg.payload_size) {
		r->exp_err = EIO;
		return;
	}
	r->exp_len = total;
}

void fe_expect_warning(void)
{
	expected_warnings++;
}

/* ---- answers ---- */

void fe_answer_seen(struct fe_rec *r, int error, const uint8_t *p, size_t len)
{
	FE_CHECK(r->expect_answer);
	FE_CHECK(!r->answered);
	r->answered = true;
	fe_check_shape(r, error, p, len);
	if (fe_no_reply(r->opcode)) {
		/* Only the ring answers these: the entry must go back. */
		FE_CHECK(r->ring && error == -EIO);
		return;
	}
	if (!r->called) {
		FE_CHECK(!r->exp_set);
		return;
	}
	FE_CHECK(r->exp_set);
	FE_CHECK(error == -r->exp_err);
	if (!error) {
		FE_CHECK(len == r->exp_len);
		FE_CHECK(memcmp(p, r->exp, len) == 0);
	}
}

/* ---- what the fake kernel asks ---- */

void fe_check_init(struct fu_session *s, struct fu_worker *w)
{
	S = s;
	W = w;
	page = (uintptr_t)sysconf(_SC_PAGESIZE);
}

void fe_check_begin(const struct fe_kernel_cfg *c)
{
	cfg = *c;
	warnings = errors = expected_warnings = 0;
	for (unsigned int i = 0; i < MAX_RECS; i++)
		recs[i].used = false;
}

struct fe_rec *fe_rec_find(uint64_t unique, bool ring)
{
	for (unsigned int i = 0; i < MAX_RECS; i++)
		if (recs[i].used && recs[i].ring == ring && recs[i].unique == unique)
			return &recs[i];
	return NULL;
}

bool fe_dev_answers_due(void)
{
	for (unsigned int i = 0; i < MAX_RECS; i++)
		if (recs[i].used && !recs[i].ring && recs[i].expect_answer && !recs[i].answered)
			return true;
	return false;
}

void fe_check_end(bool stopped, bool fatal_injected)
{
	for (unsigned int i = 0; i < MAX_RECS; i++) {
		struct fe_rec *r = &recs[i];
		/* After a forced stop a ring answer may stay uncommitted. */
		if (r->used && r->expect_answer && !(r->ring && stopped))
			FE_CHECK(r->answered);
	}
	/* Errors only where the input made the session fail; warnings exactly
	 * where the input asked for them. */
	FE_CHECK(errors == 0 || fatal_injected);
	FE_CHECK(warnings == expected_warnings);
}

