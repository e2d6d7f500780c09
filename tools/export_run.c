/* See export_run.h. */
#include "export_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "../export/rbd_spec.h"
#include "stale_mount.h"

/* An existing regular file (0), or a new one removed at the end (1); -1
 * with @err when @path is something else. */
static int prepare_mountpoint(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "mountpoint %s is a directory: furing exports one file, give a file path", path);
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "mountpoint %s is not a regular file", path);
			return -1;
		}
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "mountpoint %s: %s", path, strerror(errno));
		return -1;
	}
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create mountpoint %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 1;
}

/* Undoes what the start did before the session, after a failure. */
static void undo_open(struct export_run *r)
{
	if (r->created && r->mnt_abs)
		unlink(r->mnt_abs);
	free(r->mnt_abs);
	r->mnt_abs = NULL;
	export_close(r->e);
	r->e = NULL;
}

static void stop_session(struct furing_session *s)
{
	furing_session_stop(s);
	furing_session_wait(s);
	furing_session_destroy(s);
}

/* What reads (and writes) the image, the kernel or furing and why, and
 * the rest of the "serving" line. */
static void describe(struct export_run *r, const struct export_args *a, const char *no_kpt)
{
	char reads[256] = "";

	if (r->kernel_passthrough)
		snprintf(reads, sizeof(reads), ", %s through kernel passthrough",
			 a->ex.writable ? "reads and writes" : "reads");
	else if (!a->ex.writable && a->ex.kernel_passthrough == EXPORT_KPT_AUTO)
		snprintf(reads, sizeof(reads), "; kernel passthrough off: %s", no_kpt);
	const char *how = export_describe(r->e);
	snprintf(r->serving, sizeof(r->serving), "serving %s (%llu bytes, %s%s%s%s) at %s", a->image,
		 (unsigned long long)export_size(r->e),
		 a->ex.writable ? (a->ex.growable ? "writable, growable" : "writable") : "read-only", how ? ", " : "",
		 how ? how : "", reads, r->mnt_abs ? r->mnt_abs : a->mountpoint);
}

int export_run_start(struct export_run *r, struct export_args *a, bool own_signals, char *err, size_t errlen)
{
	struct furing_config *cfg = a->cfg;

	memset(r, 0, sizeof(*r));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	a->ex.workers = cfg->threads ? cfg->threads : cpus > 0 ? (unsigned int)cpus : 1;
	r->e = export_open(&a->ex, err, errlen);
	if (!r->e)
		return -1;
	const char *no_kpt = export_passthrough_refused(r->e);
	if (no_kpt && a->ex.kernel_passthrough == EXPORT_KPT_ON) {
		snprintf(err, errlen, "--kernel-passthrough=on: %s", no_kpt);
		undo_open(r);
		return -1;
	}
	if (stale_mount_clear(a->mountpoint, err, errlen) < 0) {
		undo_open(r);
		return -1;
	}
	unsigned int max_workers = export_max_workers(r->e);
	if (max_workers && a->ex.workers > max_workers) {
		if (cfg->threads)
			fprintf(stderr, "furing: note: %s allows %u connection%s: %u worker thread%s, not --threads %u\n",
				a->image, max_workers, max_workers == 1 ? "" : "s", max_workers, max_workers == 1 ? "" : "s",
				cfg->threads);
		cfg->threads = max_workers;
	}
	int made = prepare_mountpoint(a->mountpoint, err, errlen);
	if (made < 0) {
		undo_open(r);
		return -1;
	}
	r->created = made == 1;
	r->mnt_abs = realpath(a->mountpoint, NULL);
	cfg->root_mode = export_root_mode(r->e);
	/* The source shown in /proc/mounts; a comma would end the mount option. */
	cfg->fsname = strpbrk(a->image, ", \t\n") ? "furing-nbd" : a->image;
	/* /proc/mounts is world-readable: an rbd: source's options may hold
	 * a key (:key=...), so only rbd:POOL/IMAGE[@SNAP] goes there. */
	if (rbd_spec_is_rbd(a->image)) {
		snprintf(r->fsname, sizeof(r->fsname), "%s", a->image);
		char *opt = strchr(r->fsname + strlen("rbd:"), ':');
		if (opt)
			*opt = 0;
		cfg->fsname = strpbrk(r->fsname, ", \t\n") ? "furing-rbd" : r->fsname;
	}

	r->s = session_launch(cfg, &export_ops, sizeof(export_ops), r->e, a->mountpoint, own_signals, NULL, err, errlen);
	if (!r->s) {
		undo_open(r);
		return -1;
	}
	r->kernel_passthrough = export_passthrough_active(r->e, r->s);
	if (!r->kernel_passthrough && !no_kpt) {
		no_kpt = "the kernel did not offer FUSE passthrough (CONFIG_FUSE_PASSTHROUGH)";
		if (a->ex.kernel_passthrough == EXPORT_KPT_ON) {
			snprintf(err, errlen, "--kernel-passthrough=on: %s", no_kpt);
			stop_session(r->s);
			r->s = NULL;
			undo_open(r);
			return -1;
		}
	}
	describe(r, a, no_kpt);
	return 0;
}

int export_run_finish(struct export_run *r, const struct export_args *a, char *note, size_t notelen)
{
	uint64_t grew = export_image_grew(r->e);

	note[0] = 0;
	if (grew)
		snprintf(note, notelen,
			 "writes past the end through kernel passthrough extended %s to %llu bytes (the export is %llu)",
			 a->image, (unsigned long long)grew, (unsigned long long)export_size(r->e));
	if (r->created && r->mnt_abs)
		unlink(r->mnt_abs);
	free(r->mnt_abs);
	r->mnt_abs = NULL;
	int ret = export_close(r->e);
	r->e = NULL;
	return ret < 0 ? -1 : 0;
}
