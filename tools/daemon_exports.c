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

#include "cli.h"
#include "daemon_args.h"
#include "export_run.h"
#include "passthrough_run.h"

extern char **environ;

/* Far more than one machine's worth of disks; a bound on what one client
 * can make the daemon hold. */
#define EXPORTS_MAX 256

struct dexport {
	struct dexport *next;
	json_t *args; /* a copy of export-add's arguments: @spec points into it */
	struct daemon_args spec;
	struct furing_config cfg;
	struct export_run run;        /* type export */
	struct passthrough_run prun;  /* type passthrough */
	struct furing_session *s;     /* the one of them */
	const char *mnt_abs;          /* its mountpoint's real path (NULL: unknown) */
	pthread_t waiter;
	int wake_fd;
	uint64_t buffer_bytes; /* its request buffers' bound (furing_config_buffer_bytes) */
	/* Starting: on the list, not yet serving. Only the loop's thread
	 * reads or writes @starting; while it is true, the other fields
	 * start() fills (run, prun, s, mnt_abs) are the starter's. */
	bool starting;
	pthread_t starter;
	atomic_bool started; /* the starter is done: join it, then add_complete */
	int start_result;
	char start_err[2048];
	uint64_t token;      /* daemon_exports_add_async's, for the reply */
	char *want_abs;      /* the mountpoint's real path when export-add came (NULL: none yet) */
	atomic_bool ended; /* the session is over: the waiter is done */
	int wait_result;   /* furing_session_wait's */
};

struct daemon_exports {
	struct dexport *head;
	unsigned int count;
	uint64_t buffer_bytes; /* the exports' buffer_bytes, summed */
	uint64_t buffer_limit; /* --max-buffer-memory */
	int wake_fd;
	daemon_gone_fn *on_gone;
	void *on_gone_data;
	daemon_added_fn *on_added;
	void *on_added_data;
};

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

/* The library's messages about one export, named by its id. */
static void export_log(void *data, enum furing_log_level level, const char *msg)
{
	const struct dexport *d = data;

	fprintf(stderr, "furing: [%s] %s\n", d->spec.id, msg);
}

static void *wait_for_end(void *arg)
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

static struct dexport *find(struct daemon_exports *x, const char *id)
{
	for (struct dexport *d = x->head; d; d = d->next)
		if (!strcmp(d->spec.id, id))
			return d;
	return NULL;
}

/* The export already served at @mountpoint (the same file by its real
 * path, or the same name while it does not exist yet), or NULL. */
static struct dexport *find_mountpoint(struct daemon_exports *x, const char *mountpoint)
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

static void free_export(struct dexport *d)
{
	free(d->want_abs);
	json_decref(d->args);
	free(d);
}

/* An export as query-exports and export-add show it. */
static json_t *describe(const struct dexport *d)
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
	for (struct dexport **p = &x->head; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	x->count--;
	x->buffer_bytes -= d->buffer_bytes;
	free_export(d);
	return ret;
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
	if (find(x, d->spec.id)) {
		control_fail(e, CONTROL_ERR_EXISTS, "an export with id '%s' exists", d->spec.id);
		goto fail;
	}
	struct dexport *other = find_mountpoint(x, d->spec.mountpoint);
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
	free_export(d);
	return NULL;
}

/* Takes @d, which never ran, off the list and frees it. */
static void unlist(struct daemon_exports *x, struct dexport *d)
{
	for (struct dexport **p = &x->head; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	x->count--;
	x->buffer_bytes -= d->buffer_bytes;
	free_export(d);
}

/* Once start() is done: the export running (its waiter started) and
 * described, or off the list again with @e saying why. */
static json_t *add_complete(struct daemon_exports *x, struct dexport *d, struct control_error *e)
{
	char err[2048];

	d->starting = false;
	if (d->start_result < 0) {
		control_fail(e, CONTROL_ERR_FAILED, "%s", d->start_err);
		unlist(x, d);
		return NULL;
	}
	int ret = pthread_create(&d->waiter, NULL, wait_for_end, d);
	if (ret) {
		control_fail(e, CONTROL_ERR_FAILED, "cannot start a thread: %s", strerror(ret));
		furing_session_stop(d->s);
		furing_session_wait(d->s);
		furing_session_destroy(d->s);
		if (d->spec.passthrough)
			passthrough_run_finish(&d->prun);
		else
			export_run_finish(&d->run, &d->spec.ex, err, sizeof(err));
		unlist(x, d);
		return NULL;
	}
	fprintf(stderr, "furing: [%s] %s\n", d->spec.id, d->spec.passthrough ? d->prun.serving : d->run.serving);
	json_t *desc = describe(d);
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
		/* As in wait_for_end. */
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
		unlist(x, d);
		return -1;
	}
	return 0;
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
	/* Starts that are done, one at a time from the head again: each reply
	 * lets its client's waiting requests run, which may change the list. */
	for (;;) {
		for (d = x->head; d && !(d->starting && atomic_load(&d->started)); d = d->next)
			;
		if (!d)
			break;
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
	struct dexport *d = find(x, id);
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
	if (id && !find(x, id)) {
		control_fail(e, CONTROL_ERR_NOT_FOUND, "no export has id '%s'", id);
		return NULL;
	}
	json_t *list = json_array();
	for (struct dexport *d = x->head; list && d; d = d->next)
		if (!id || !strcmp(id, d->spec.id))
			json_array_append_new(list, describe(d));
	json_t *ret = json_pack("{s:o}", "exports", list);
	if (!ret)
		control_fail(e, CONTROL_ERR_FAILED, "out of memory");
	return ret;
}

const json_t *daemon_exports_args(struct daemon_exports *x, const char *id)
{
	const struct dexport *d = find(x, id);

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
	/* Starts under way end first (an NBD connect waits for its timeout
	 * at most); nobody waits for their replies any more. */
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
	for (d = x->head; d; d = d->next)
		furing_session_stop(d->s);
	while (x->head)
		json_decref(finish(x, x->head));
	close(x->wake_fd);
	free(x);
}
