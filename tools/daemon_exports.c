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

	for (d = x->head; d; d = d->next)
		if (!strcmp(d->spec.mountpoint, mountpoint) || (abs && d->mnt_abs && !strcmp(d->mnt_abs, abs)))
			break;
	free(abs);
	return d;
}

static void free_export(struct dexport *d)
{
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

void daemon_exports_reap(struct daemon_exports *x)
{
	uint64_t n;

	if (read(x->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	struct dexport *d = x->head;
	while (d) {
		struct dexport *next = d->next;
		if (atomic_load(&d->ended)) {
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

json_t *daemon_exports_add(struct daemon_exports *x, json_t *args, struct control_error *e)
{
	char err[2048];

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
	if (start(d, err, sizeof(err)) < 0) {
		control_fail(e, CONTROL_ERR_FAILED, "%s", err);
		goto fail;
	}
	d->wake_fd = x->wake_fd;
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
		goto fail;
	}
	/* At the end: query-exports lists them in the order they came. */
	struct dexport **tail = &x->head;
	while (*tail)
		tail = &(*tail)->next;
	*tail = d;
	x->count++;
	x->buffer_bytes += d->buffer_bytes;
	fprintf(stderr, "furing: [%s] %s\n", d->spec.id, d->spec.passthrough ? d->prun.serving : d->run.serving);
	json_t *desc = describe(d);
	if (!desc)
		control_fail(e, CONTROL_ERR_FAILED, "out of memory (the export was added)");
	return desc;
fail:
	free_export(d);
	return NULL;
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
		if (!id || !strcmp(id, d->spec.id)) {
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
		if (!d->spec.passthrough && !atomic_load(&d->ended) && export_backend_can_fail(d->run.e))
			return true;
	return false;
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
		furing_session_stats_line(d->s, line, sizeof(line));
		fprintf(stderr, "furing: [%s] stats %s\n", d->spec.id, line);
	}
}

void daemon_exports_free(struct daemon_exports *x)
{
	for (struct dexport *d = x->head; d; d = d->next)
		furing_session_stop(d->s);
	while (x->head)
		json_decref(finish(x, x->head));
	close(x->wake_fd);
	free(x);
}
