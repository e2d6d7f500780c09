/* The daemon's exports: each with its own session (its own workers) and a
 * thread that waits for the session's end, added, removed and listed by
 * the control loop (daemon.c), which is the only thread touching the list. */
#ifndef FURING_TOOLS_DAEMON_EXPORTS_H
#define FURING_TOOLS_DAEMON_EXPORTS_H

#include <jansson.h>

#include "control_proto.h"

struct daemon_exports;

/* NULL with errno on failure. */
struct daemon_exports *daemon_exports_new(void);
/* Readable (an eventfd) when an export's session ended on its own (someone
 * unmounted it, a fatal error): call daemon_exports_reap. */
int daemon_exports_wake_fd(const struct daemon_exports *x);
/* Tidies away every export whose session ended. */
void daemon_exports_reap(struct daemon_exports *x);

/* The commands: a return value (new reference) or NULL with @e. */
json_t *daemon_exports_add(struct daemon_exports *x, json_t *args, struct control_error *e);
json_t *daemon_exports_del(struct daemon_exports *x, json_t *args, struct control_error *e);
json_t *daemon_exports_query(struct daemon_exports *x, json_t *args, struct control_error *e);

/* The export-add arguments export @id was started with (borrowed, valid
 * until it goes), or NULL when no export has that id. */
const json_t *daemon_exports_args(struct daemon_exports *x, const char *id);

/* SIGUSR1: every export's counters on stderr. */
void daemon_exports_log_stats(struct daemon_exports *x);
/* Stops every export, waits for each and frees everything. */
void daemon_exports_free(struct daemon_exports *x);

#endif
