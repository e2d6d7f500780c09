/* See daemon_config.h. jansson reads the file (the same library and the
 * same argument code as export-add: an entry means what that request
 * means); this file checks its shape and works out what a reload changes. */
#include "daemon_config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon_args.h"

struct daemon_config {
	const char *path;
	json_t *entries; /* the file as read by daemon_config_open, until started */
	json_t *owned;   /* id -> the arguments of each export the file started */
};

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "exports[1] (id 'vm1')": how a message names an entry, by its place
 * (always there) and its id (when it has one). */
static void entry_name(json_t *entry, size_t i, char *buf, size_t len)
{
	const char *id = json_string_value(json_object_get(entry, "id"));

	if (id)
		snprintf(buf, len, "exports[%zu] (id '%s')", i, id);
	else
		snprintf(buf, len, "exports[%zu]", i);
}

/* An id that is not the file's: an export added over the socket, or one
 * the file started and someone replaced since. */
static bool taken_by_other(struct daemon_exports *x, json_t *owned, const char *id)
{
	const json_t *live = x ? daemon_exports_args(x, id) : NULL;
	json_t *mine = json_object_get(owned, id);

	return live && !(mine && json_equal(live, mine));
}

/* The mountpoints of the exports the file does not own (an object of
 * path -> id), as query-exports shows them (their real paths), so that a
 * reload can refuse an entry that would only fail to mount. */
static json_t *others_mountpoints(struct daemon_exports *x, json_t *owned)
{
	json_t *out = json_object();
	json_t *all = json_object();
	struct control_error e;
	json_t *q = x && all ? daemon_exports_query(x, all, &e) : NULL;
	size_t i;
	json_t *d;

	json_decref(all);
	if (x && !q) {
		json_decref(out);
		return NULL;
	}

	json_array_foreach(json_object_get(q, "exports"), i, d) {
		const char *id = json_string_value(json_object_get(d, "id"));
		if (taken_by_other(x, owned, id))
			json_object_set(out, json_string_value(json_object_get(d, "mountpoint")), json_object_get(d, "id"));
	}
	json_decref(q);
	return out;
}

/* @mp, or the file it names, among @others: the id serving it, or NULL. */
static const char *other_at(json_t *others, const char *mp)
{
	json_t *id = json_object_get(others, mp);
	char *abs = id ? NULL : realpath(mp, NULL);

	if (abs)
		id = json_object_get(others, abs);
	free(abs);
	return json_string_value(id);
}

/* One entry as export-add would check it, short of opening anything. */
static int check_entry(json_t *entry, struct control_error *e)
{
	struct furing_config cfg;
	struct daemon_args spec;

	if (!json_is_object(entry))
		return control_fail(e, CONTROL_ERR_ARGUMENT, "an export is an object of export-add's arguments");
	cli_config_defaults(&cfg);
	return daemon_args_parse(entry, &cfg, &spec, e);
}

/* Reads @path and checks all of it: the exports array (new reference) or
 * NULL with one line in @err. With @x, an id that is an export the file
 * does not own is an error too: a reload must not take one over. */
static json_t *load(const char *path, struct daemon_exports *x, json_t *owned, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);

	if (!root) {
		if (je.line > 0)
			say(err, errlen, "config %s: line %d column %d: %s", path, je.line, je.column, je.text);
		else
			say(err, errlen, "config %s: %s", path, je.text);
		return NULL;
	}
	json_t *exports = json_object_get(root, "exports");
	const char *key;
	json_t *value;
	if (!json_is_object(root) || !json_is_array(exports)) {
		say(err, errlen, "config %s: must be an object with an array \"exports\"", path);
		goto fail;
	}
	json_object_foreach(root, key, value) {
		if (strcmp(key, "exports")) {
			say(err, errlen, "config %s: unknown member '%s' (there is only \"exports\")", path, key);
			goto fail;
		}
	}
	json_t *ids = json_object();
	json_t *mountpoints = json_object();
	json_t *others = others_mountpoints(x, owned);
	size_t i;
	bool bad = !ids || !mountpoints || !others;
	if (bad)
		say(err, errlen, "config %s: out of memory", path);
	json_array_foreach(exports, i, value) {
		struct control_error e;
		char name[128];
		if (bad)
			break;
		entry_name(value, i, name, sizeof(name));
		bad = true;
		if (check_entry(value, &e) < 0) {
			say(err, errlen, "config %s: %s: %s", path, name, e.desc);
			continue;
		}
		const char *id = json_string_value(json_object_get(value, "id"));
		const char *mp = json_string_value(json_object_get(value, "mountpoint"));
		if (json_object_get(ids, id))
			say(err, errlen, "config %s: %s: another export of the file has this id", path, name);
		else if (json_object_get(mountpoints, mp))
			say(err, errlen, "config %s: %s: another export of the file has mountpoint %s", path, name, mp);
		else if (taken_by_other(x, owned, id))
			say(err, errlen, "config %s: %s: the id is an export added over the control socket", path, name);
		else if (other_at(others, mp))
			say(err, errlen, "config %s: %s: mountpoint %s is served by export '%s', added over the control socket",
			    path, name, mp, other_at(others, mp));
		else
			bad = json_object_set_new(ids, id, json_true()) < 0 || json_object_set_new(mountpoints, mp, json_true()) < 0;
	}
	json_decref(ids);
	json_decref(mountpoints);
	json_decref(others);
	if (bad)
		goto fail;
	json_incref(exports);
	json_decref(root);
	return exports;
fail:
	json_decref(root);
	return NULL;
}

struct daemon_config *daemon_config_open(const char *path, char *err, size_t errlen)
{
	struct daemon_config *c = calloc(1, sizeof(*c));

	if (!c || !(c->owned = json_object())) {
		free(c);
		say(err, errlen, "config %s: out of memory", path);
		return NULL;
	}
	c->path = path;
	c->entries = load(path, NULL, NULL, err, errlen);
	if (!c->entries) {
		daemon_config_free(c);
		return NULL;
	}
	return c;
}

const char *daemon_config_path(const struct daemon_config *c)
{
	return c->path;
}

/* export-add with @entry; the file owns the export once it runs. */
static int add_entry(struct daemon_config *c, struct daemon_exports *x, json_t *entry, struct control_error *e)
{
	json_t *ret = daemon_exports_add(x, entry, e);

	if (!ret)
		return -1;
	json_decref(ret);
	return json_object_set(c->owned, json_string_value(json_object_get(entry, "id")), entry) < 0 ? -1 : 0;
}

int daemon_config_start(struct daemon_config *c, struct daemon_exports *x, char *err, size_t errlen)
{
	size_t i;
	json_t *entry;
	int r = 0;

	json_array_foreach(c->entries, i, entry) {
		struct control_error e;
		char name[128];
		if (add_entry(c, x, entry, &e) < 0) {
			entry_name(entry, i, name, sizeof(name));
			say(err, errlen, "config %s: %s: cannot start: %s", c->path, name, e.desc);
			r = -1;
			break;
		}
	}
	json_decref(c->entries);
	c->entries = NULL;
	return r;
}

static json_t *find_entry(json_t *entries, const char *id)
{
	size_t i;
	json_t *entry;

	json_array_foreach(entries, i, entry)
		if (!strcmp(json_string_value(json_object_get(entry, "id")), id))
			return entry;
	return NULL;
}

/* What a reload could not do, gathered for one error line. */
struct failures {
	char text[sizeof(((struct control_error *)0)->desc)];
	size_t len;
};

static void failed(struct failures *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failed(struct failures *f, const char *fmt, ...)
{
	va_list ap;

	if (f->len && f->len + 2 < sizeof(f->text))
		f->len += (size_t)snprintf(f->text + f->len, sizeof(f->text) - f->len, "; ");
	if (f->len >= sizeof(f->text))
		return;
	va_start(ap, fmt);
	int n = vsnprintf(f->text + f->len, sizeof(f->text) - f->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		f->len += (size_t)n < sizeof(f->text) - f->len ? (size_t)n : sizeof(f->text) - f->len - 1;
}

/* export-del mode safe: a reload does not take a file from under its
 * users; a busy export stays and the reload says so. */
static int remove_export(struct daemon_exports *x, const char *id, struct control_error *e)
{
	json_t *args = json_pack("{s:s, s:s}", "id", id, "mode", "safe");
	json_t *ret = args ? daemon_exports_del(x, args, e) : NULL;

	if (!args)
		control_fail(e, CONTROL_ERR_FAILED, "out of memory");
	json_decref(args);
	if (!ret)
		return -1;
	json_decref(ret);
	return 0;
}

/* The file's exports that it no longer names, or names with other
 * arguments, removed (first, so that a mountpoint they free can be taken). */
static void remove_stale(struct daemon_config *c, struct daemon_exports *x, json_t *entries, json_t *done,
			 struct failures *f)
{
	const char *key;
	json_t *args;
	void *tmp;

	json_object_foreach_safe(c->owned, tmp, key, args) {
		char id[80];
		snprintf(id, sizeof(id), "%s", key); /* @key goes with its member */
		const json_t *live = daemon_exports_args(x, id);
		json_t *want = find_entry(entries, id);
		struct control_error e;
		if (!live || !json_equal(live, args)) {
			/* Gone (export-del, or its session ended), or replaced
			 * over the socket: no longer the file's. */
			json_object_del(c->owned, id);
			continue;
		}
		if (want && json_equal(want, args))
			continue;
		if (remove_export(x, id, &e) < 0) {
			failed(f, "export '%s' not %s: %s", id, want ? "replaced" : "removed", e.desc);
			continue;
		}
		fprintf(stderr, "furing: reload: export '%s' %s\n", id, want ? "removed to be replaced" : "removed");
		json_array_append_new(json_object_get(done, want ? "replaced" : "removed"), json_string(id));
		json_object_del(c->owned, id);
	}
}

json_t *daemon_config_reload(struct daemon_config *c, struct daemon_exports *x, struct control_error *e)
{
	char err[sizeof(e->desc)];
	json_t *entries = load(c->path, x, c->owned, err, sizeof(err));

	if (!entries) {
		control_fail(e, CONTROL_ERR_ARGUMENT, "%s: nothing changed", err);
		return NULL;
	}
	json_t *done = json_pack("{s:s, s:[], s:[], s:[], s:[]}", "config", c->path, "added", "removed", "replaced",
				 "unchanged");
	if (!done) {
		json_decref(entries);
		control_fail(e, CONTROL_ERR_FAILED, "out of memory: nothing changed");
		return NULL;
	}
	struct failures f = {.len = 0};
	f.text[0] = 0;
	remove_stale(c, x, entries, done, &f);
	size_t i;
	json_t *entry;
	json_array_foreach(entries, i, entry) {
		const char *id = json_string_value(json_object_get(entry, "id"));
		struct control_error ae;
		json_t *mine = json_object_get(c->owned, id);
		if (mine && json_equal(mine, entry)) {
			json_array_append_new(json_object_get(done, "unchanged"), json_string(id));
			continue;
		}
		if (daemon_exports_args(x, id))
			continue; /* its old self could not be removed: said above */
		if (add_entry(c, x, entry, &ae) < 0) {
			failed(&f, "export '%s' not added: %s", id, ae.desc);
			continue;
		}
		bool replaced = false;
		size_t j;
		json_t *r;
		json_array_foreach(json_object_get(done, "replaced"), j, r)
			replaced |= !strcmp(json_string_value(r), id);
		fprintf(stderr, "furing: reload: export '%s' %s\n", id, replaced ? "started again" : "added");
		if (!replaced)
			json_array_append_new(json_object_get(done, "added"), json_string(id));
	}
	json_decref(entries);
	if (f.len) {
		json_decref(done);
		control_fail(e, CONTROL_ERR_FAILED, "config %s: reload partly done: %s", c->path, f.text);
		return NULL;
	}
	return done;
}

void daemon_config_free(struct daemon_config *c)
{
	if (!c)
		return;
	json_decref(c->entries);
	json_decref(c->owned);
	free(c);
}
