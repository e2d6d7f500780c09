/* See daemon_events.h. */
#include "daemon_events.h"

#include <sys/time.h>

const char *const daemon_event_names[] = {"export-deleted", NULL};

json_t *daemon_event(const char *name, json_t *data)
{
	struct timeval tv;

	/* Wall-clock time, as QMP's events carry it: a client correlates
	 * it with logs, not with its own monotonic clock. */
	gettimeofday(&tv, NULL);
	return json_pack("{s:s, s:o, s:{s:I, s:I}}", "event", name, "data", data, "timestamp", "seconds",
			 (json_int_t)tv.tv_sec, "microseconds", (json_int_t)tv.tv_usec);
}

json_t *daemon_event_export_gone(const char *id, bool error, json_t *removed)
{
	json_t *clean = json_object_get(removed, "clean");
	json_t *summary = json_object_get(removed, "summary");

	json_t *data = json_pack("{s:s, s:s, s:b, s:s}", "id", id, "reason", error ? "failed" : "unmounted", "clean",
				 json_is_true(clean), "summary", json_is_string(summary) ? json_string_value(summary) : "");
	return data ? daemon_event("export-deleted", data) : NULL;
}
