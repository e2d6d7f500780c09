/* The daemon's statistics commands: query-stats (the counters of each
 * export and each of its queues, as JSON) and metrics (the same in the
 * Prometheus text format, for a scraper). doc/control.md describes both. */
#ifndef FURING_TOOLS_DAEMON_STATS_H
#define FURING_TOOLS_DAEMON_STATS_H

#include <jansson.h>

#include "control_proto.h"
#include "daemon_exports.h"

/* The commands: a return value (new reference) or NULL with @e. */
json_t *daemon_stats_query(struct daemon_exports *x, json_t *args, struct control_error *e);
json_t *daemon_stats_metrics(struct daemon_exports *x, json_t *args, struct control_error *e);

#endif
