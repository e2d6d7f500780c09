/* See daemon_stats.h. Both commands take one snapshot of every export's
 * counters (furing_session_stats) and render it; the workers go on
 * counting meanwhile, so a snapshot is consistent per counter, not across
 * counters. */
#include "daemon_stats.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <furing/furing.h>

/* The line names the queues too; it is what export-del returns, and
 * carries the per-opcode counts the numbers below leave out. */
#define SUMMARY_MAX 4096

struct snap {
	const char *id, *type; /* borrowed from the export list, valid until the reply is built */
	bool ended;
	bool unreachable; /* the backend, now */
	struct furing_stats st;
	uint64_t *queues; /* st.nqueues of them */
	char summary[SUMMARY_MAX];
};

struct snaps {
	struct snap *v;
	size_t n, cap;
	bool failed; /* out of memory */
};

static void take(void *data, const char *id, const char *type, struct furing_session *s, bool ended,
		 bool unreachable)
{
	struct snaps *ss = data;

	if (ss->failed)
		return;
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? 2 * ss->cap : 8;
		struct snap *v = realloc(ss->v, cap * sizeof(*v));
		if (!v) {
			ss->failed = true;
			return;
		}
		ss->v = v;
		ss->cap = cap;
	}
	struct snap *p = &ss->v[ss->n];
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->type = type;
	p->ended = ended;
	p->unreachable = unreachable;
	/* First the number of queues, then them: the number is fixed at the
	 * start, so it cannot change between the two calls. */
	int nq = furing_session_stats(s, &p->st, sizeof(p->st), NULL, 0);
	if (nq < 0) {
		ss->failed = true;
		return;
	}
	if (nq > 0 && !(p->queues = calloc((size_t)nq, sizeof(*p->queues)))) {
		ss->failed = true;
		return;
	}
	furing_session_stats(s, &p->st, sizeof(p->st), p->queues, (unsigned int)nq);
	furing_session_stats_line(s, p->summary, sizeof(p->summary));
	ss->n++;
}

static void snaps_free(struct snaps *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		free(ss->v[i].queues);
	free(ss->v);
}

/* The snapshot of every export (or @id's), per the shared "id" argument. */
static int snapshot(struct daemon_exports *x, json_t *args, const char *command, struct snaps *ss,
		    struct control_error *e)
{
	static const char *const allowed[] = {"id", NULL};
	const char *id;

	memset(ss, 0, sizeof(*ss));
	if (control_known_args(args, allowed, command, e) < 0 || control_string_arg(args, "id", false, &id, e) < 0)
		return -1;
	if (daemon_exports_each(x, id, take, ss) < 0)
		return control_fail(e, CONTROL_ERR_NOT_FOUND, "no export has id '%s'", id);
	if (ss->failed) {
		snaps_free(ss);
		return control_fail(e, CONTROL_ERR_FAILED, "out of memory");
	}
	return 0;
}

/* ------------------------------------------------------------ query-stats */

static json_t *stats_json(const struct snap *p)
{
	json_t *queues = json_array();

	for (unsigned int q = 0; queues && q < p->st.nqueues; q++)
		json_array_append_new(queues, json_pack("{s:i, s:I}", "queue", (int)q, "requests",
							(json_int_t)p->queues[q]));
	/* json_int_t is signed 64 bits: a counter would need centuries of
	 * requests to pass it. */
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:s}", "id", p->id, "type",
			 p->type, "state", p->ended ? "ended" : "running", "backend",
			 p->unreachable ? "unreachable" : "ok", "requests", (json_int_t)p->st.requests,
			 "errors", (json_int_t)p->st.errors, "bytes-read", (json_int_t)p->st.bytes_read,
			 "bytes-written", (json_int_t)p->st.bytes_written, "dev-requests",
			 (json_int_t)p->st.dev_requests, "ring-requests", (json_int_t)p->st.ring_requests,
			 "busy-polls", (json_int_t)p->st.busy_polls, "busy-poll-hits",
			 (json_int_t)p->st.busy_poll_hits, "placement-changes", (json_int_t)p->st.placement_changes,
			 "queues", queues, "summary", p->summary);
}

json_t *daemon_stats_query(struct daemon_exports *x, json_t *args, struct control_error *e)
{
	struct snaps ss;

	if (snapshot(x, args, "query-stats", &ss, e) < 0)
		return NULL;
	json_t *list = json_array();
	for (size_t i = 0; list && i < ss.n; i++)
		if (json_array_append_new(list, stats_json(&ss.v[i])) < 0) {
			json_decref(list);
			list = NULL;
		}
	snaps_free(&ss);
	json_t *ret = list ? json_pack("{s:o}", "exports", list) : NULL;
	if (!ret)
		control_fail(e, CONTROL_ERR_FAILED, "out of memory");
	return ret;
}

/* ------------------------------------------------------------ metrics */

struct text {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;

	for (;;) {
		if (t->failed)
			return;
		va_start(ap, fmt);
		int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = 2 * t->cap + (size_t)n;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->failed = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

/* A label value as the exposition format quotes it. Ids are plain
 * (daemon_args.c allows A-Z a-z 0-9 . _ -), but the format's rule costs
 * little and keeps the output valid whatever a future id allows. */
static void put_label(struct text *t, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			put(t, "\\%c", *v);
		else if (*v == '\n')
			put(t, "\\n");
		else
			put(t, "%c", *v);
	}
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct text *t, const char *name, const struct snap *p, const char *extra, uint64_t v)
{
	put(t, "%s{export=\"", name);
	put_label(t, p->id);
	put(t, "\"%s} %llu\n", extra ? extra : "", (unsigned long long)v);
}

/* One counter of struct furing_stats, at @offset, as one family. */
static void counter(struct text *t, const struct snaps *ss, const char *name, const char *help, size_t offset)
{
	family(t, name, "counter", help);
	for (size_t i = 0; i < ss->n; i++) {
		uint64_t v;
		memcpy(&v, (const char *)&ss->v[i].st + offset, sizeof(v));
		sample(t, name, &ss->v[i], NULL, v);
	}
}

#define COUNTER(t, ss, name, help, field) counter(t, ss, name, help, offsetof(struct furing_stats, field))

static void render(struct text *t, const struct snaps *ss)
{
	char extra[64];

	family(t, "furing_export_info", "gauge", "An export the daemon serves (always 1), with its type and state.");
	for (size_t i = 0; i < ss->n; i++) {
		put(t, "furing_export_info{export=\"");
		put_label(t, ss->v[i].id);
		put(t, "\",type=\"%s\",state=\"%s\"} 1\n", ss->v[i].type, ss->v[i].ended ? "ended" : "running");
	}
	family(t, "furing_backend_up", "gauge",
	       "1 while the export's backend reaches its storage, 0 while not (an NBD server lost).");
	for (size_t i = 0; i < ss->n; i++)
		sample(t, "furing_backend_up", &ss->v[i], NULL, !ss->v[i].unreachable);
	family(t, "furing_requests_total", "counter", "Requests answered, by transport (dev: /dev/fuse).");
	for (size_t i = 0; i < ss->n; i++) {
		sample(t, "furing_requests_total", &ss->v[i], ",transport=\"dev\"", ss->v[i].st.dev_requests);
		sample(t, "furing_requests_total", &ss->v[i], ",transport=\"io_uring\"", ss->v[i].st.ring_requests);
	}
	COUNTER(t, ss, "furing_errors_total", "Requests answered with an error.", errors);
	COUNTER(t, ss, "furing_read_bytes_total", "Data bytes returned by READ.", bytes_read);
	COUNTER(t, ss, "furing_written_bytes_total", "Data bytes taken by WRITE.", bytes_written);
	COUNTER(t, ss, "furing_busy_polls_total", "Busy-poll rounds the workers spun.", busy_polls);
	COUNTER(t, ss, "furing_busy_poll_hits_total", "Busy-poll rounds that found work.", busy_poll_hits);
	COUNTER(t, ss, "furing_placement_changes_total", "Times a worker moved to another CPU.", placement_changes);
	family(t, "furing_queue_requests_total", "counter", "Requests each io_uring queue (one per CPU) served.");
	for (size_t i = 0; i < ss->n; i++)
		for (unsigned int q = 0; q < ss->v[i].st.nqueues; q++) {
			snprintf(extra, sizeof(extra), ",queue=\"%u\"", q);
			sample(t, "furing_queue_requests_total", &ss->v[i], extra, ss->v[i].queues[q]);
		}
}

json_t *daemon_stats_metrics(struct daemon_exports *x, json_t *args, struct control_error *e)
{
	struct snaps ss;
	struct text t = {0};

	if (snapshot(x, args, "metrics", &ss, e) < 0)
		return NULL;
	t.cap = 4096;
	t.buf = malloc(t.cap);
	t.failed = !t.buf;
	render(&t, &ss);
	snaps_free(&ss);
	/* json_stringn, not pack's "s%": the latter needs jansson 2.11. */
	json_t *text = t.failed ? NULL : json_stringn(t.buf, t.len);
	json_t *ret = text ? json_pack("{s:o}", "text", text) : NULL;
	free(t.buf);
	if (!ret)
		control_fail(e, CONTROL_ERR_FAILED, "out of memory");
	return ret;
}
