/* The one-line counters report: requests per transport, per ring queue and
 * per opcode, errors and data bytes, as key=value pairs a script can parse. */
#include "stats.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

struct line {
	char *buf;
	size_t len, used;
};

static void put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct line *l, const char *fmt, ...)
{
	va_list ap;

	if (l->used >= l->len)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(l->buf + l->used, l->len - l->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->used += (size_t)n;
	if (l->used >= l->len)
		l->used = l->len - 1;
}

static const char *op_label(unsigned int op)
{
	return op == FUSE_OPCODE_MAX ? "UNKNOWN" : fu_opcode_name(op);
}

static void put_ops(struct line *l, const char *key, const uint64_t *ops)
{
	bool first = true;

	put(l, " %s=", key);
	for (unsigned int op = 0; op <= FUSE_OPCODE_MAX; op++) {
		if (!ops[op])
			continue;
		put(l, "%s%s:%llu", first ? "" : ",", op_label(op), (unsigned long long)ops[op]);
		first = false;
	}
}

/* One pass over the workers' counters: the totals, the requests of each
 * ring queue (the first @max_queues) and, when @ops is not NULL, the
 * requests per transport and opcode. Shared by the line and the public
 * structured form, so that the two never disagree on what a counter is. */
static void collect(struct fu_session *s, struct furing_stats *st, uint64_t *queues, unsigned int max_queues,
		    uint64_t (*ops)[FUSE_OPCODE_MAX + 1])
{
	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; s->workers && i < s->nworkers; i++) {
		struct fu_stats *ws = &s->workers[i].stats;

		for (int t = 0; t < 2; t++)
			for (unsigned int op = 0; op <= FUSE_OPCODE_MAX; op++) {
				uint64_t n = FU_STAT_GET(ws->ops[t][op]);
				if (ops)
					ops[t][op] += n;
				if (t == FU_DEV)
					st->dev_requests += n;
				else
					st->ring_requests += n;
			}
		st->errors += FU_STAT_GET(ws->errors);
		st->busy_polls += FU_STAT_GET(s->workers[i].loop.spins);
		st->busy_poll_hits += FU_STAT_GET(s->workers[i].loop.spin_hits);
		st->placement_changes += FU_STAT_GET(s->workers[i].place.changes);
		st->bytes_read += FU_STAT_GET(ws->bytes_read);
		st->bytes_written += FU_STAT_GET(ws->bytes_written);
	}
	st->requests = st->dev_requests + st->ring_requests;
	st->nqueues = s->over_ring ? s->nqueues : 0;
	for (unsigned int q = 0; q < st->nqueues && q < max_queues; q++) {
		uint64_t n = 0;
		for (unsigned int i = 0; s->workers && i < s->nworkers; i++)
			for (unsigned int k = 0; k < s->workers[i].nqueues; k++)
				if (ring_queue_qid(s->workers[i].queues[k]) == q)
					n += ring_queue_served(s->workers[i].queues[k]);
		queues[q] = n;
	}
}

int fu_stats_get(struct fu_session *s, struct furing_stats *out, size_t out_size, uint64_t *queues,
		 unsigned int max_queues)
{
	struct furing_stats st;

	if (!s || !out || (max_queues && !queues))
		return -EINVAL;
	collect(s, &st, queues, max_queues, NULL);
	memcpy(out, &st, out_size < sizeof(st) ? out_size : sizeof(st));
	return (int)st.nqueues;
}

void fu_stats_line(struct fu_session *s, char *buf, size_t len)
{
	uint64_t ops[2][FUSE_OPCODE_MAX + 1];
	uint64_t queues[FU_STATS_LINE_QUEUES];
	struct furing_stats st;
	struct line l = {buf, len, 0};

	memset(ops, 0, sizeof(ops));
	buf[0] = '\0';
	collect(s, &st, queues, FU_STATS_LINE_QUEUES, ops);
	put(&l, "requests=%llu errors=%llu bytes_read=%llu bytes_written=%llu dev=%llu ring=%llu",
	    (unsigned long long)st.requests, (unsigned long long)st.errors, (unsigned long long)st.bytes_read,
	    (unsigned long long)st.bytes_written, (unsigned long long)st.dev_requests,
	    (unsigned long long)st.ring_requests);
	for (unsigned int q = 0; q < st.nqueues && q < FU_STATS_LINE_QUEUES; q++)
		put(&l, " q%u=%llu", q, (unsigned long long)queues[q]);
	put(&l, " busy_polls=%llu busy_poll_hits=%llu placement_changes=%llu", (unsigned long long)st.busy_polls,
	    (unsigned long long)st.busy_poll_hits, (unsigned long long)st.placement_changes);
	put_ops(&l, "dev_ops", ops[FU_DEV]);
	put_ops(&l, "ring_ops", ops[FU_RING]);
}
