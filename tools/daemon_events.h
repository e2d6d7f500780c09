/* The daemon's asynchronous events (doc/control.md): messages sent to every
 * connected client, unasked, when something happens to an export that no
 * request caused. Building them; daemon.c sends them. */
#ifndef FURING_TOOLS_DAEMON_EVENTS_H
#define FURING_TOOLS_DAEMON_EVENTS_H

#include <stdbool.h>

#include <jansson.h>

/* The event names, in the order the greeting lists them. */
extern const char *const daemon_event_names[];

/* {"event": @name, "data": @data (stolen), "timestamp": {"seconds": S,
 * "microseconds": U}} with the wall-clock time now; NULL when out of
 * memory. */
json_t *daemon_event(const char *name, json_t *data);

/* export-deleted for an export whose session ended without export-del:
 * @error says whether the session ended with an error (else it was
 * unmounted from outside); @removed is what export-del would have
 * returned for it (borrowed: its summary and clean are copied). */
json_t *daemon_event_export_gone(const char *id, bool error, json_t *removed);

#endif
