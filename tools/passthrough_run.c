/* See passthrough_run.h. */
#include "passthrough_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* An existing directory, not below SOURCE: a mount inside the tree it
 * mirrors would contain itself (SOURCE itself is fine: the server holds
 * SOURCE open from before the mount and sees below it). Its realpath, or
 * NULL with @err (one line). */
static char *check_mountpoint(const char *path, const char *source, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "mountpoint %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mountpoint %s is not a directory", path);
		return NULL;
	}
	char *abs = realpath(path, NULL);
	if (!abs) {
		snprintf(err, errlen, "mountpoint %s: %s", path, strerror(errno));
		return NULL;
	}
	size_t n = strlen(source);
	if (strncmp(abs, source, n) == 0 && (abs[n] == '/' || (n == 1 && abs[1]))) {
		snprintf(err, errlen, "mountpoint %s is inside SOURCE %s: the mount would contain itself", abs, source);
		free(abs);
		return NULL;
	}
	return abs;
}

static const char *cache_name(enum pt_cache c)
{
	return c == PT_CACHE_NONE ? "none" : c == PT_CACHE_ALWAYS ? "always" : "auto";
}

int passthrough_run_start(struct passthrough_run *r, struct passthrough_args *a, bool own_signals, char *err,
			  size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->fs = pt_open(&a->pt, err, errlen);
	if (!r->fs)
		return -1;
	r->mnt_abs = check_mountpoint(a->mountpoint, pt_source(r->fs), err, errlen);
	if (!r->mnt_abs) {
		pt_close(r->fs);
		r->fs = NULL;
		return -1;
	}
	a->cfg->root_mode = pt_root_mode(r->fs);
	a->cfg->fsname = pt_source(r->fs);
	r->s = session_launch(a->cfg, &pt_ops, sizeof(pt_ops), r->fs, a->mountpoint, own_signals, pt_init_error(r->fs),
			      err, errlen);
	if (!r->s) {
		passthrough_run_finish(r);
		return -1;
	}
	const struct furing_conn *conn = furing_session_conn(r->s);
	snprintf(r->serving, sizeof(r->serving), "serving %s at %s (cache=%s%s%s, %s)", pt_source(r->fs), r->mnt_abs,
		 cache_name(a->pt.cache), pt_writeback_active(r->fs) ? ", writeback" : "",
		 pt_passthrough_active(r->fs) ? ", kernel passthrough" : "",
		 conn->over_io_uring ? "FUSE-over-io_uring" : "/dev/fuse");
	return 0;
}

void passthrough_run_finish(struct passthrough_run *r)
{
	free(r->mnt_abs);
	r->mnt_abs = NULL;
	pt_close(r->fs);
	r->fs = NULL;
}
