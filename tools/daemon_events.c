/* See daemon_events.h. */
#include "daemon_events.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

const char *const daemon_event_names[] = {"export-deleted", "backend-failed", "backend-recovered", NULL};

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

/* Ids, each malloc'd; a handful at most, so a plain array. */
struct ids {
	char **v;
	size_t n;
};

struct daemon_watch {
	struct ids down; /* unreachable at the last look */
};

static bool ids_has(const struct ids *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], id))
			return true;
	return false;
}

static void ids_clear(struct ids *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

struct daemon_watch *daemon_watch_new(void)
{
	return calloc(1, sizeof(struct daemon_watch));
}

void daemon_watch_free(struct daemon_watch *w)
{
	if (w)
		ids_clear(&w->down);
	free(w);
}

struct look {
	struct ids down, all; /* now; all is borrowed (valid during the look) */
	bool failed;
};

static void look_at(void *data, const char *id, const char *type, struct furing_session *s, bool ended,
		    bool unreachable)
{
	struct look *l = data;
	(void)type;
	(void)s;

	/* Ended, not yet reaped: gone, as far as its backend goes. */
	if (ended)
		return;
	char **all = realloc(l->all.v, (l->all.n + 1) * sizeof(*all));
	if (!all) {
		l->failed = true;
		return;
	}
	l->all.v = all;
	l->all.v[l->all.n++] = (char *)id;
	if (!unreachable)
		return;
	char **down = realloc(l->down.v, (l->down.n + 1) * sizeof(*down));
	char *copy = down ? strdup(id) : NULL;
	if (down)
		l->down.v = down;
	if (!copy) {
		l->failed = true;
		return;
	}
	l->down.v[l->down.n++] = copy;
}

static void send_backend(const char *name, const char *id, const char *desc, void (*send)(void *, json_t *),
			 void *data)
{
	json_t *d = json_pack("{s:s, s:s}", "id", id, "desc", desc);
	json_t *ev = d ? daemon_event(name, d) : NULL;

	if (ev)
		send(data, ev);
}

void daemon_watch_backends(struct daemon_watch *w, struct daemon_exports *x, void (*send)(void *data, json_t *ev),
			   void *data)
{
	struct look l = {0};

	daemon_exports_each(x, NULL, look_at, &l);
	if (l.failed) {
		/* Out of memory: look again next time rather than report
		 * changes that did not happen. */
		ids_clear(&l.down);
		free(l.all.v);
		return;
	}
	for (size_t i = 0; i < l.down.n; i++)
		if (!ids_has(&w->down, l.down.v[i]))
			send_backend("backend-failed", l.down.v[i],
				     "the backend cannot reach its storage: requests fail with EIO until it is back", send,
				     data);
	for (size_t i = 0; i < w->down.n; i++)
		if (!ids_has(&l.down, w->down.v[i]) && ids_has(&l.all, w->down.v[i]))
			send_backend("backend-recovered", w->down.v[i], "the backend reaches its storage again", send,
				     data);
	ids_clear(&w->down);
	w->down = l.down;
	free(l.all.v);
}
