/* The one-line counters report: requests per transport, per ring queue and
 * per opcode, errors and data bytes, as key=value pairs a script can parse. */
#include "stats.h"

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

void fu_stats_line(struct fu_session *s, char *buf, size_t len)
{
	uint64_t ops[2][FUSE_OPCODE_MAX + 1];
	uint64_t total[2] = {0, 0}, errors = 0, rd = 0, wr = 0, spins = 0, hits = 0, moves = 0;
	struct line l = {buf, len, 0};

	memset(ops, 0, sizeof(ops));
	buf[0] = '\0';
	for (unsigned int i = 0; s->workers && i < s->nworkers; i++) {
		struct fu_stats *st = &s->workers[i].stats;

		for (int t = 0; t < 2; t++)
			for (unsigned int op = 0; op <= FUSE_OPCODE_MAX; op++) {
				uint64_t n = FU_STAT_GET(st->ops[t][op]);
				ops[t][op] += n;
				total[t] += n;
			}
		errors += FU_STAT_GET(st->errors);
		spins += FU_STAT_GET(s->workers[i].loop.spins);
		hits += FU_STAT_GET(s->workers[i].loop.spin_hits);
		moves += FU_STAT_GET(s->workers[i].place.changes);
		rd += FU_STAT_GET(st->bytes_read);
		wr += FU_STAT_GET(st->bytes_written);
	}
	put(&l, "requests=%llu errors=%llu bytes_read=%llu bytes_written=%llu dev=%llu ring=%llu",
	    (unsigned long long)(total[FU_DEV] + total[FU_RING]), (unsigned long long)errors,
	    (unsigned long long)rd, (unsigned long long)wr, (unsigned long long)total[FU_DEV],
	    (unsigned long long)total[FU_RING]);
	for (unsigned int q = 0; s->over_ring && q < s->nqueues; q++) {
		uint64_t n = 0;
		for (unsigned int i = 0; s->workers && i < s->nworkers; i++)
			for (unsigned int k = 0; k < s->workers[i].nqueues; k++)
				if (ring_queue_qid(s->workers[i].queues[k]) == q)
					n += ring_queue_served(s->workers[i].queues[k]);
		put(&l, " q%u=%llu", q, (unsigned long long)n);
	}
	put(&l, " busy_polls=%llu busy_poll_hits=%llu placement_changes=%llu", (unsigned long long)spins,
	    (unsigned long long)hits, (unsigned long long)moves);
	put_ops(&l, "dev_ops", ops[FU_DEV]);
	put_ops(&l, "ring_ops", ops[FU_RING]);
}
