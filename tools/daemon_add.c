/* export-add (see daemon_exports.h): the checks, the start (the same as
 * the command line's, on the loop's thread or on one of its own) and the
 * export put to work or taken away again. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <furing/furing.h>

#include "cli.h"
#include "daemon_exports_priv.h"

/* The library's messages about one export, named by its id. */
static void export_log(void *data, enum furing_log_level level, const char *msg)
{
	const struct dexport *d = data;

	fprintf(stderr, "furing: [%s] %s\n", d->spec.id, msg);
}

/* What the start would refuse anyway, as the caller's mistake: an export
 * is served as one file (an existing regular file, or none yet), a
 * passthrough mount on an existing directory. Symlinks, devices, FIFOs are
 * neither. */
static int check_mountpoint(const struct daemon_args *spec, struct control_error *e)
{
	struct stat st;

	if (lstat(spec->mountpoint, &st) < 0) {
		if (spec->passthrough || errno != ENOENT)
			return control_fail(e, CONTROL_ERR_ARGUMENT, "mountpoint %s: %s", spec->mountpoint, strerror(errno));
		return 0;
	}
	if (spec->passthrough && !S_ISDIR(st.st_mode))
		return control_fail(e, CONTROL_ERR_ARGUMENT, "mountpoint %s is not a directory: a passthrough mount needs one",
				    spec->mountpoint);
	if (!spec->passthrough && !S_ISREG(st.st_mode))
		return control_fail(e, CONTROL_ERR_ARGUMENT, "mountpoint %s is not a regular file: an export is served as one file",
				    spec->mountpoint);
	return 0;
}

/* Each export's workers map request buffers for their whole queue depth,
 * which requests touch and keep resident (64 MiB at the defaults under
 * large I/O, on two CPUs): what bounds the daemon's memory is their sum,
 * checked before anything starts. */
static int check_buffers(struct daemon_exports *x, struct dexport *d, struct control_error *e)
{
	d->buffer_bytes = furing_config_buffer_bytes(&d->cfg, sizeof(d->cfg));
	if (x->buffer_bytes + d->buffer_bytes <= x->buffer_limit)
		return 0;
	return control_fail(e, CONTROL_ERR_FAILED,
			    "export '%s' needs %llu MiB of request buffers and %u exports hold %llu MiB of the "
			    "daemon's --max-buffer-memory %llu MiB: lower its queue-depth or payload-size, or remove one",
			    d->spec.id, (unsigned long long)(d->buffer_bytes >> 20), x->count,
			    (unsigned long long)(x->buffer_bytes >> 20), (unsigned long long)(x->buffer_limit >> 20));
}

/* The start shared with the command line, for either type. */
static int start(struct dexport *d, char *err, size_t errlen)
{
	if (d->spec.passthrough) {
		if (passthrough_run_start(&d->prun, &d->spec.pt, false, err, errlen) < 0)
			return -1;
		d->s = d->prun.s;
		d->mnt_abs = d->prun.mnt_abs;
	} else {
		if (export_run_start(&d->run, &d->spec.ex, false, err, errlen) < 0)
			return -1;
		d->s = d->run.s;
		d->mnt_abs = d->run.mnt_abs;
	}
	return 0;
}

/* Everything export-add checks before anything starts (NULL with @e when
 * one fails). From here the export is on the list, starting: its id, its
 * mountpoint and its buffers are taken, so that a second export-add
 * while it starts sees them. */
static struct dexport *add_prepare(struct daemon_exports *x, json_t *args, struct control_error *e)
{
	if (x->count >= EXPORTS_MAX) {
		control_fail(e, CONTROL_ERR_FAILED, "already %u exports, the most one daemon serves", x->count);
		return NULL;
	}
	struct dexport *d = calloc(1, sizeof(*d));
	if (!d || !(d->args = json_deep_copy(args))) {
		free(d);
		control_fail(e, CONTROL_ERR_FAILED, "out of memory");
		return NULL;
	}
	cli_config_defaults(&d->cfg);
	d->cfg.log = export_log;
	d->cfg.log_data = d;
	if (daemon_args_parse(d->args, &d->cfg, &d->spec, e) < 0)
		goto fail;
	/* The export's own messages while no session runs (an NBD export's
	 * final flush, qemu-nbd's stop) carry its id too. */
	d->spec.ex.ex.log = (struct export_log){.fn = export_log, .data = d};
	if (dexports_find(x, d->spec.id)) {
		control_fail(e, CONTROL_ERR_EXISTS, "an export with id '%s' exists", d->spec.id);
		goto fail;
	}
	struct dexport *other = dexports_find_mountpoint(x, d->spec.mountpoint);
	if (other) {
		control_fail(e, CONTROL_ERR_EXISTS, "export '%s' serves mountpoint %s", other->spec.id, d->spec.mountpoint);
		goto fail;
	}
	if (check_mountpoint(&d->spec, e) < 0)
		goto fail;
	if (check_buffers(x, d, e) < 0)
		goto fail;
	d->want_abs = realpath(d->spec.mountpoint, NULL);
	d->starting = true;
	d->wake_fd = x->wake_fd;
	/* At the end: query-exports lists them in the order they came. */
	struct dexport **tail = &x->head;
	while (*tail)
		tail = &(*tail)->next;
	*tail = d;
	x->count++;
	x->buffer_bytes += d->buffer_bytes;
	return d;
fail:
	dexport_free(d);
	return NULL;
}


/* Once start() is done: the export running (its waiter started) and
 * described, or off the list again with @e saying why. */
static json_t *add_complete(struct daemon_exports *x, struct dexport *d, struct control_error *e)
{
	char err[2048];

	d->starting = false;
	if (d->start_result < 0) {
		control_fail(e, CONTROL_ERR_FAILED, "%s", d->start_err);
		dexports_unlist(x, d);
		return NULL;
	}
	int ret = pthread_create(&d->waiter, NULL, dexport_wait_for_end, d);
	if (ret) {
		control_fail(e, CONTROL_ERR_FAILED, "cannot start a thread: %s", strerror(ret));
		furing_session_stop(d->s);
		furing_session_wait(d->s);
		furing_session_destroy(d->s);
		if (d->spec.passthrough)
			passthrough_run_finish(&d->prun);
		else
			export_run_finish(&d->run, &d->spec.ex, err, sizeof(err));
		dexports_unlist(x, d);
		return NULL;
	}
	fprintf(stderr, "furing: [%s] %s\n", d->spec.id, d->spec.passthrough ? d->prun.serving : d->run.serving);
	json_t *desc = dexport_describe(d);
	if (!desc)
		control_fail(e, CONTROL_ERR_FAILED, "out of memory (the export was added)");
	return desc;
}

json_t *daemon_exports_add(struct daemon_exports *x, json_t *args, struct control_error *e)
{
	struct dexport *d = add_prepare(x, args, e);

	if (!d)
		return NULL;
	d->start_result = start(d, d->start_err, sizeof(d->start_err));
	return add_complete(x, d, e);
}

/* The start, on a thread of its own: the loop serves the other clients
 * meanwhile and hears the end through the wake eventfd. */
static void *start_in_background(void *arg)
{
	struct dexport *d = arg;
	uint64_t one = 1;

	d->start_result = start(d, d->start_err, sizeof(d->start_err));
	atomic_store(&d->started, true);
	if (write(d->wake_fd, &one, sizeof(one)) < 0) {
		/* As in dexport_wait_for_end. */
	}
	return NULL;
}

int daemon_exports_add_async(struct daemon_exports *x, json_t *args, uint64_t token, struct control_error *e)
{
	struct dexport *d = add_prepare(x, args, e);

	if (!d)
		return -1;
	d->token = token;
	int ret = pthread_create(&d->starter, NULL, start_in_background, d);
	if (ret) {
		control_fail(e, CONTROL_ERR_FAILED, "cannot start a thread: %s", strerror(ret));
		dexports_unlist(x, d);
		return -1;
	}
	return 0;
}

/* Starts that are done, one at a time from the head again: each reply
 * lets its client's waiting requests run, which may change the list. */
void dexports_complete_starts(struct daemon_exports *x)
{
	for (;;) {
		struct dexport *d = x->head;
		while (d && !(d->starting && atomic_load(&d->started)))
			d = d->next;
		if (!d)
			return;
		struct control_error e;
		uint64_t token = d->token;
		pthread_join(d->starter, NULL);
		json_t *ret = add_complete(x, d, &e);
		if (x->on_added)
			x->on_added(x->on_added_data, token, ret, &e);
		else
			json_decref(ret);
	}
}

/* An NBD connect waits for its timeout at most. */
void dexports_join_starts(struct daemon_exports *x)
{
	struct dexport *d = x->head;

	while (d) {
		struct dexport *next = d->next;
		if (d->starting) {
			struct control_error e;
			pthread_join(d->starter, NULL);
			json_decref(add_complete(x, d, &e));
		}
		d = next;
	}
}
