/* The daemon's asynchronous events (doc/control.md): messages sent to every
 * connected client, unasked, when something happens to an export that no
 * request caused. Building them; daemon.c sends them. */
#ifndef FURING_TOOLS_DAEMON_EVENTS_H
#define FURING_TOOLS_DAEMON_EVENTS_H

#include <stdbool.h>

#include <jansson.h>

#include "daemon_exports.h"

/* The event names, in the order the greeting lists them. */
extern const char *const daemon_event_names[];

/* {"event": @name, "data": @data (stolen), "timestamp": {"seconds": S,
 * "microseconds": U}} with the wall-clock time now; NULL when out of
 * memory. */
json_t *daemon_event(const char *name, json_t *data);

/* What the backend events compare with: which exports' backends were
 * unreachable at the last look. */
struct daemon_watch;
struct daemon_watch *daemon_watch_new(void);
void daemon_watch_free(struct daemon_watch *w);
/* How often daemon.c looks, in milliseconds: an NBD connection notices a
 * dead server within about a second, so does the event. */
#define DAEMON_WATCH_INTERVAL_MS 1000
/* Looks at every export's backend now; @send gets (consumes) one
 * backend-failed or backend-recovered event per change since the last
 * look. An export removed meanwhile is forgotten without an event (its
 * removal has its own). */
void daemon_watch_backends(struct daemon_watch *w, struct daemon_exports *x, void (*send)(void *data, json_t *ev),
			   void *data);

/* export-deleted for an export whose session ended without export-del:
 * @error says whether the session ended with an error (else it was
 * unmounted from outside); @removed is what export-del would have
 * returned for it (borrowed: its summary and clean are copied). */
json_t *daemon_event_export_gone(const char *id, bool error, json_t *removed);

#endif
