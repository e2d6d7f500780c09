/* The daemon's exports: each with its own session (its own workers) and a
 * thread that waits for the session's end, added, removed and listed by
 * the control loop (daemon.c), which is the only thread touching the list. */
#ifndef FURING_TOOLS_DAEMON_EXPORTS_H
#define FURING_TOOLS_DAEMON_EXPORTS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct furing_session;

#include "control_proto.h"

struct daemon_exports;

/* NULL with errno on failure. */
struct daemon_exports *daemon_exports_new(void);
/* The most request-buffer memory (furing_config_buffer_bytes) all exports
 * together may take: export-add refuses one past it. No limit until set. */
void daemon_exports_set_buffer_limit(struct daemon_exports *x, uint64_t bytes);
/* Readable (an eventfd) when an export's session ended on its own (someone
 * unmounted it, a fatal error) or a start under way is done: call
 * daemon_exports_reap. */
int daemon_exports_wake_fd(const struct daemon_exports *x);
/* Tidies away every export whose session ended, and completes every
 * start that is done (the on_added function hears of each). */
void daemon_exports_reap(struct daemon_exports *x);

/* The commands: a return value (new reference) or NULL with @e. */
json_t *daemon_exports_add(struct daemon_exports *x, json_t *args, struct control_error *e);
json_t *daemon_exports_del(struct daemon_exports *x, json_t *args, struct control_error *e);

/* export-add without holding the caller up while the export starts (an
 * NBD server's connect, qemu-nbd, the mount: seconds at worst): what can
 * be checked at once is, and -1 with @e when that fails; else 0, the
 * export is listed as starting (its id and mountpoint taken; export-del
 * refuses it with Busy) and starts on a thread of its own. Its end comes
 * through daemon_exports_reap, which calls the on_added function with
 * @token and export-add's return or error. */
int daemon_exports_add_async(struct daemon_exports *x, json_t *args, uint64_t token, struct control_error *e);
/* @ret: export-add's return (a new reference, the callee's), or NULL and @e. */
typedef void daemon_added_fn(void *data, uint64_t token, json_t *ret, const struct control_error *e);
void daemon_exports_on_added(struct daemon_exports *x, daemon_added_fn *fn, void *data);
json_t *daemon_exports_query(struct daemon_exports *x, json_t *args, struct control_error *e);

/* The export-add arguments export @id was started with (borrowed, valid
 * until it goes), or NULL when no export has that id. */
const json_t *daemon_exports_args(struct daemon_exports *x, const char *id);

/* For the statistics and the events (daemon_stats.c, daemon_events.c):
 * @fn on every export in the order they were added, or on @id's only; its
 * session is valid during the call (possibly ended, not yet reaped);
 * @unreachable: its backend cannot reach its storage now (an NBD server
 * lost). -1 when @id names none. */
typedef void daemon_export_fn(void *data, const char *id, const char *type, struct furing_session *s, bool ended,
			      bool unreachable);
int daemon_exports_each(struct daemon_exports *x, const char *id, daemon_export_fn *fn, void *data);

/* Whether some export's backend can lose its storage (NBD): only then
 * must the loop look at the backends every DAEMON_WATCH_INTERVAL_MS; an
 * idle daemon of image files sleeps until something happens. */
bool daemon_exports_watched(const struct daemon_exports *x);

/* For the events (daemon_events.c): called by daemon_exports_reap for each
 * export whose session ended on its own, with @id, whether it ended with
 * an error, and export-del's return for it (borrowed). */
typedef void daemon_gone_fn(void *data, const char *id, bool error, json_t *removed);
void daemon_exports_on_gone(struct daemon_exports *x, daemon_gone_fn *fn, void *data);

/* SIGUSR1: every export's counters on stderr. */
void daemon_exports_log_stats(struct daemon_exports *x);
/* Stops every export, waits for each and frees everything. */
void daemon_exports_free(struct daemon_exports *x);

#endif
