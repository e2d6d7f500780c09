/* Request counters. Each worker owns its own fu_stats and is its only writer;
 * the main thread reads them for SIGUSR1 and the exit summary. Relaxed atomic
 * stores/loads keep that race well-defined without a locked instruction on
 * the hot path. */
#ifndef FURING_STATS_H
#define FURING_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/fuse_kernel.h"

struct fu_stats {
	uint64_t ops[2][FUSE_OPCODE_MAX + 1]; /* [transport][opcode]; the last slot counts unknown opcodes */
	uint64_t errors;
	uint64_t bytes_read;
	uint64_t bytes_written;
};

#define FU_STAT_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define FU_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

struct fu_session;
struct furing_stats;
/* furing_session_stats. */
int fu_stats_get(struct fu_session *s, struct furing_stats *out, size_t out_size, uint64_t *queues,
		 unsigned int max_queues);
/* The line names at most this many queues (one per possible CPU). */
#define FU_STATS_LINE_QUEUES 1024
/* "requests=... errors=... ..." on one line, no newline. */
void fu_stats_line(struct fu_session *s, char *buf, size_t len);

#endif
