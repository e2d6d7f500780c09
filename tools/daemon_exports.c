/* See daemon_exports.h. */
#include "daemon_exports.h"

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <furing/furing.h>

#include "daemon_exports_priv.h"

extern char **environ;

struct daemon_exports *daemon_exports_new(void)
{
	struct daemon_exports *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->buffer_limit = UINT64_MAX;
	x->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (x->wake_fd < 0) {
		free(x);
		return NULL;
	}
	return x;
}

void daemon_exports_set_buffer_limit(struct daemon_exports *x, uint64_t bytes)
{
	x->buffer_limit = bytes;
}

int daemon_exports_wake_fd(const struct daemon_exports *x)
{
	return x->wake_fd;
}

void *dexport_wait_for_end(void *arg)
{
	struct dexport *d = arg;
	uint64_t one = 1;

	d->wait_result = furing_session_wait(d->s);
	atomic_store(&d->ended, true);
	if (write(d->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow from a few exports; nothing to do. */
	}
	return NULL;
}

void dexports_unlist(struct daemon_exports *x, struct dexport *d)
{
	for (struct dexport **p = &x->head; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	x->count--;
	x->buffer_bytes -= d->buffer_bytes;
	dexport_free(d);
}

struct dexport *dexports_find(struct daemon_exports *x, const char *id)
{
	for (struct dexport *d = x->head; d; d = d->next)
		if (!strcmp(d->spec.id, id))
			return d;
	return NULL;
}

/* The export already served at @mountpoint (the same file by its real
 * path, or the same name while it does not exist yet), or NULL. */
struct dexport *dexports_find_mountpoint(struct daemon_exports *x, const char *mountpoint)
{
	char *abs = realpath(mountpoint, NULL);
	struct dexport *d;

	for (d = x->head; d; d = d->next) {
		const char *its = d->starting ? d->want_abs : d->mnt_abs;
		if (!strcmp(d->spec.mountpoint, mountpoint) || (abs && its && !strcmp(its, abs)))
			break;
	}
	free(abs);
	return d;
}

void dexport_free(struct dexport *d)
{
	free(d->want_abs);
	json_decref(d->args);
	free(d);
}

/* An export as query-exports and export-add show it. */
json_t *dexport_describe(const struct dexport *d)
{
	json_t *options = json_object();
	const char *key;
	json_t *value;

	if (!options)
		return NULL;
	json_object_foreach(d->args, key, value) {
		if (strcmp(key, "id") && strcmp(key, "type") && strcmp(key, "source") && strcmp(key, "mountpoint"))
			json_object_set(options, key, value);
	}
	/* What export-add asked for: the rest is not known yet. */
	if (d->starting)
		return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I}", "id", d->spec.id, "type", d->spec.type, "source",
				 d->spec.source, "mountpoint", d->spec.mountpoint, "state", "starting", "options", options,
				 "buffer-memory", (json_int_t)d->buffer_bytes);
	const struct furing_conn *conn = furing_session_conn(d->s);
	bool kpt = d->spec.passthrough ? pt_passthrough_active(d->prun.fs) : d->run.kernel_passthrough;
	json_t *x = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:b, s:s}", "id", d->spec.id, "type", d->spec.type,
			      "source", d->spec.source, "mountpoint", d->mnt_abs ? d->mnt_abs : d->spec.mountpoint, "state",
			      atomic_load(&d->ended) ? "ended" : "running", "options", options, "transport",
			      conn->over_io_uring ? "io_uring" : "/dev/fuse", "kernel-passthrough", kpt, "serving",
			      d->spec.passthrough ? d->prun.serving : d->run.serving);
	if (x)
		json_object_set_new(x, "buffer-memory", json_integer((json_int_t)d->buffer_bytes));
	if (x && !d->spec.passthrough)
		json_object_set_new(x, "size", json_integer((json_int_t)export_size(d->run.e)));
	return x;
}

/* Once the session is over (or asked to end): waits for it, tidies it up
 * and takes @d off the list. What export-del returns. */
static json_t *finish(struct daemon_exports *x, struct dexport *d)
{
	char line[4096];
	char note[1024];

	pthread_join(d->waiter, NULL);
	furing_session_stats_line(d->s, line, sizeof(line));
	fprintf(stderr, "furing: [%s] summary %s\n", d->spec.id, line);
	furing_session_destroy(d->s);
	d->s = NULL;
	note[0] = 0;
	int closed = 0;
	if (d->spec.passthrough)
		passthrough_run_finish(&d->prun);
	else
		closed = export_run_finish(&d->run, &d->spec.ex, note, sizeof(note));
	if (note[0])
		fprintf(stderr, "furing: [%s] warning: %s\n", d->spec.id, note);
	bool clean = d->wait_result == 0 && closed == 0;
	fprintf(stderr, "furing: [%s] removed%s\n", d->spec.id, clean ? "" : " after an error");
	json_t *ret = json_pack("{s:s, s:s, s:b}", "id", d->spec.id, "summary", line, "clean", clean);
	dexports_unlist(x, d);
	return ret;
}

void daemon_exports_reap(struct daemon_exports *x)
{
	uint64_t n;

	if (read(x->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	struct dexport *d = x->head;
	while (d) {
		struct dexport *next = d->next;
		if (!d->starting && atomic_load(&d->ended)) {
			fprintf(stderr, "furing: [%s] the session ended (unmounted from outside, or an error)\n", d->spec.id);
			bool error = d->wait_result != 0;
			char *id = x->on_gone ? strdup(d->spec.id) : NULL;
			json_t *removed = finish(x, d);
			if (id)
				x->on_gone(x->on_gone_data, id, error, removed);
			free(id);
			json_decref(removed);
		}
		d = next;
	}
	dexports_complete_starts(x);
}

/* Unmounts @path unless a file on it is open or a process works in it:
 * the kernel refuses a plain (not lazy) unmount then, and checks that in
 * the same step as it unmounts, so nothing can open it in between. 0,
 * -EBUSY, or another negative errno. */
static int unmount_unless_busy(const char *path)
{
	if (geteuid() == 0)
		return umount2(path, UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
	/* fusermount3 -u without -z is the same plain unmount for its user;
	 * its exit status does not say why it failed, busy is the likely why. */
	char *argv[] = {"fusermount3", "-u", "-q", (char *)path, NULL};
	pid_t pid;
	int status;
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) != 0)
		return -ENOENT;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -ECHILD;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
}

json_t *daemon_exports_del(struct daemon_exports *x, json_t *args, struct control_error *e)
{
	static const char *const allowed[] = {"id", "mode", NULL};
	const char *id, *mode;

	if (control_known_args(args, allowed, "export-del", e) < 0 || control_string_arg(args, "id", true, &id, e) < 0 ||
	    control_string_arg(args, "mode", false, &mode, e) < 0)
		return NULL;
	if (!mode)
		mode = "safe";
	bool hard = !strcmp(mode, "hard");
	if (!hard && strcmp(mode, "safe")) {
		control_fail(e, CONTROL_ERR_ARGUMENT, "mode must be safe or hard, not '%s'", mode);
		return NULL;
	}
	struct dexport *d = dexports_find(x, id);
	if (!d) {
		control_fail(e, CONTROL_ERR_NOT_FOUND, "no export has id '%s'", id);
		return NULL;
	}
	if (d->starting) {
		control_fail(e, CONTROL_ERR_BUSY, "export '%s' is starting: remove it once its export-add has answered", id);
		return NULL;
	}
	if (atomic_load(&d->ended))
		return finish(x, d);
	if (hard) {
		/* A lazy unmount and the connection aborted at once: users
		 * still holding the file get errors before this reply, and
		 * every write answered before it is in the image (closed and
		 * flushed by finish). */
		furing_session_abort(d->s);
		return finish(x, d);
	}
	int r = unmount_unless_busy(d->mnt_abs ? d->mnt_abs : d->spec.mountpoint);
	if (r == -EBUSY) {
		control_fail(e, CONTROL_ERR_BUSY, "export '%s' is in use (its file is open): mode hard removes it anyway", id);
		return NULL;
	}
	if (r < 0) {
		control_fail(e, CONTROL_ERR_FAILED, "cannot unmount export '%s': %s", id, strerror(-r));
		return NULL;
	}
	/* Unmounted: the kernel ends the connection, and with it the session. */
	return finish(x, d);
}

json_t *daemon_exports_query(struct daemon_exports *x, json_t *args, struct control_error *e)
{
	static const char *const allowed[] = {"id", NULL};
	const char *id;

	if (control_known_args(args, allowed, "query-exports", e) < 0 || control_string_arg(args, "id", false, &id, e) < 0)
		return NULL;
	if (id && !dexports_find(x, id)) {
		control_fail(e, CONTROL_ERR_NOT_FOUND, "no export has id '%s'", id);
		return NULL;
	}
	json_t *list = json_array();
	for (struct dexport *d = x->head; list && d; d = d->next)
		if (!id || !strcmp(id, d->spec.id))
			json_array_append_new(list, dexport_describe(d));
	json_t *ret = json_pack("{s:o}", "exports", list);
	if (!ret)
		control_fail(e, CONTROL_ERR_FAILED, "out of memory");
	return ret;
}

const json_t *daemon_exports_args(struct daemon_exports *x, const char *id)
{
	const struct dexport *d = dexports_find(x, id);

	return d ? d->args : NULL;
}

int daemon_exports_each(struct daemon_exports *x, const char *id, daemon_export_fn *fn, void *data)
{
	int n = 0;

	for (struct dexport *d = x->head; d; d = d->next)
		if ((!id || !strcmp(id, d->spec.id)) && !d->starting) {
			bool ended = atomic_load(&d->ended);
			bool lost = !d->spec.passthrough && !ended && export_backend_unreachable(d->run.e);
			fn(data, d->spec.id, d->spec.type, d->s, ended, lost);
			n++;
		}
	return id && !n ? -1 : 0;
}

bool daemon_exports_watched(const struct daemon_exports *x)
{
	for (const struct dexport *d = x->head; d; d = d->next)
		if (!d->starting && !d->spec.passthrough && !atomic_load(&d->ended) && export_backend_can_fail(d->run.e))
			return true;
	return false;
}

void daemon_exports_on_added(struct daemon_exports *x, daemon_added_fn *fn, void *data)
{
	x->on_added = fn;
	x->on_added_data = data;
}

void daemon_exports_on_gone(struct daemon_exports *x, daemon_gone_fn *fn, void *data)
{
	x->on_gone = fn;
	x->on_gone_data = data;
}

void daemon_exports_log_stats(struct daemon_exports *x)
{
	char line[4096];

	for (struct dexport *d = x->head; d; d = d->next) {
		if (d->starting)
			continue;
		furing_session_stats_line(d->s, line, sizeof(line));
		fprintf(stderr, "furing: [%s] stats %s\n", d->spec.id, line);
	}
}

void daemon_exports_free(struct daemon_exports *x)
{
	dexports_join_starts(x);
	for (struct dexport *d = x->head; d; d = d->next)
		furing_session_stop(d->s);
	while (x->head)
		json_decref(finish(x, x->head));
	close(x->wake_fd);
	free(x);
}
