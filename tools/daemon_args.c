/* See daemon_args.h. */
#include "daemon_args.h"

#include <stdio.h>
#include <string.h>

#include "../export/rbd_spec.h"

#define ID_MAX 64

/* Options of the process on the command line, which mean nothing for one
 * export among many. */
static const char *const process_options[] = {"daemonize", "pidfile", "help", "version", NULL};

static bool is_process_option(const char *name)
{
	for (int i = 0; process_options[i]; i++)
		if (!strcmp(process_options[i], name))
			return true;
	return false;
}

static bool is_fixed(const char *name)
{
	return !strcmp(name, "id") || !strcmp(name, "type") || !strcmp(name, "source") || !strcmp(name, "mountpoint");
}

static const struct option *find_option(const struct option *table, const char *name)
{
	for (const struct option *o = table; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

/* An id is a name for people and scripts: letters, digits and ._- only, so
 * that it needs no quoting anywhere it is shown. */
static int check_id(const char *id, struct control_error *e)
{
	size_t n = strlen(id);

	if (n > ID_MAX || id[strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")])
		return control_fail(e, CONTROL_ERR_ARGUMENT,
				    "id must be 1 to %d letters, digits, '.', '_' or '-', not '%s'", ID_MAX, id);
	return 0;
}

/* A daemon's working directory is nobody's business: paths are absolute. */
static int check_absolute(const char *name, const char *path, struct control_error *e)
{
	if (path[0] != '/')
		return control_fail(e, CONTROL_ERR_ARGUMENT, "%s must be an absolute path, not '%s'", name, path);
	return 0;
}

/* The files an rbd: source names (conf=, keyring=), absolute as any path;
 * a malformed source is left to the backend's own message. */
static int check_rbd_paths(const char *source, struct control_error *e)
{
	struct rbd_spec s;
	char err[256];
	if (rbd_spec_parse(source, &s, err, sizeof(err)) < 0)
		return 0;
	int r = 0;
	if (s.conf && check_absolute("the rbd: source's conf", s.conf, e) < 0)
		r = -1;
	else if (s.keyring && check_absolute("the rbd: source's keyring", s.keyring, e) < 0)
		r = -1;
	rbd_spec_free(&s);
	return r;
}

/* One option argument as the command line's value: a flag takes true
 * (false: left at its default), a value a string or a whole number. */
static int apply_option(struct daemon_args *d, const struct option *o, json_t *v, struct control_error *e)
{
	char num[32];
	const char *value = NULL;
	char err[512];

	if (o->has_arg == no_argument || (o->has_arg == optional_argument && json_is_boolean(v))) {
		if (!json_is_boolean(v))
			return control_fail(e, CONTROL_ERR_ARGUMENT, "argument '%s' takes true or false", o->name);
		if (json_is_false(v))
			return 0;
	} else if (json_is_string(v)) {
		value = json_string_value(v);
	} else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		value = num;
	} else {
		return control_fail(e, CONTROL_ERR_ARGUMENT, "argument '%s' takes a string or a whole number", o->name);
	}
	int r = d->passthrough ? passthrough_args_option(&d->pt, o->val, value, err, sizeof(err))
			       : export_args_option(&d->ex, o->val, value, err, sizeof(err));
	if (r < 0)
		return control_fail(e, CONTROL_ERR_ARGUMENT, "%s", err);
	if (r == 0)
		return control_fail(e, CONTROL_ERR_ARGUMENT, "argument '%s' is not a mount's", o->name);
	return 0;
}

static int apply_options(json_t *args, struct daemon_args *d, struct control_error *e)
{
	const struct option *table = d->passthrough ? passthrough_options : export_options;
	const char *key;
	json_t *value;

	json_object_foreach(args, key, value) {
		if (is_fixed(key))
			continue;
		if (is_process_option(key))
			return control_fail(e, CONTROL_ERR_ARGUMENT, "'%s' is an option of a process, not of an export", key);
		const struct option *o = find_option(table, key);
		if (!o)
			return control_fail(e, CONTROL_ERR_ARGUMENT, "unknown argument '%s' for type %s", key, d->type);
		if (apply_option(d, o, value, e) < 0)
			return -1;
	}
	return 0;
}

static int finish_export(struct daemon_args *d, struct control_error *e)
{
	char err[512];

	d->ex.image = d->source;
	d->ex.mountpoint = d->mountpoint;
	if (export_args_check(&d->ex, err, sizeof(err)) < 0)
		return control_fail(e, CONTROL_ERR_ARGUMENT, "%s", err);
	return 0;
}

int daemon_args_parse(json_t *args, struct furing_config *cfg, struct daemon_args *d, struct control_error *e)
{
	memset(d, 0, sizeof(*d));
	export_args_init(&d->ex, cfg);
	passthrough_args_init(&d->pt, cfg);
	if (control_string_arg(args, "id", true, &d->id, e) < 0 || check_id(d->id, e) < 0)
		return -1;
	if (control_string_arg(args, "type", true, &d->type, e) < 0)
		return -1;
	d->passthrough = !strcmp(d->type, "passthrough");
	if (!d->passthrough && strcmp(d->type, "export"))
		return control_fail(e, CONTROL_ERR_ARGUMENT, "type must be export or passthrough, not '%s'", d->type);
	if (control_string_arg(args, "source", true, &d->source, e) < 0)
		return -1;
	/* An NBD URI names its own socket or host, an rbd: source its cluster
	 * (its conf= and keyring= files must then be absolute); any other
	 * source is a path, and the daemon's working directory means nothing
	 * to a client. */
	if (!d->passthrough && rbd_spec_is_rbd(d->source)) {
		if (check_rbd_paths(d->source, e) < 0)
			return -1;
	} else if ((d->passthrough || !export_is_nbd_uri(d->source)) && check_absolute("source", d->source, e) < 0)
		return -1;
	if (control_string_arg(args, "mountpoint", true, &d->mountpoint, e) < 0 ||
	    check_absolute("mountpoint", d->mountpoint, e) < 0)
		return -1;
	if (apply_options(args, d, e) < 0)
		return -1;
	if (d->passthrough) {
		d->pt.pt.source = d->source;
		d->pt.mountpoint = d->mountpoint;
		passthrough_args_finish(&d->pt);
		return 0;
	}
	return finish_export(d, e);
}
