/* See stale_mount.h. */
#include "stale_mount.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <furing/furing.h>

#include "cli.h"

/* A live server answers in well under a millisecond; a stopped one never. */
#define PROBE_TIMEOUT_MS 2000

/* What the user runs to remove the mount at @m by hand. */
static const char *unmount_command(const struct furing_dead_mount *m, char *buf, size_t len)
{
	if (geteuid() == 0)
		snprintf(buf, len, "umount -l %s", m->mountpoint);
	else if (m->user_id == (long)getuid())
		snprintf(buf, len, "fusermount3 -u -z %s", m->mountpoint);
	else /* someone else's mount: fusermount3 would refuse */
		snprintf(buf, len, "as root: umount -l %s", m->mountpoint);
	return buf;
}

/* A furing killed with SIGKILL (or crashed) leaves its mount behind with a
 * dead connection: every access to the mountpoint fails with ENOTCONN,
 * prepare_mountpoint()'s lstat() included. When the dead mount is furing's,
 * removing it is what the user would do next by hand, so do that and say
 * so; another filesystem's is not ours to remove, so name the command.
 * furing_clear_dead_mount looks only through mountinfo and a probe that
 * cannot hang us, since a stopped server's mount would hang a plain
 * stat(). */
int stale_mount_clear(const char *path, char *err, size_t errlen)
{
	char cmd[PATH_MAX + 32];

	for (int i = 0; i < 8; i++) { /* mounts stack: each call takes the topmost */
		struct furing_dead_mount m;
		int r = furing_clear_dead_mount(path, "furing", PROBE_TIMEOUT_MS, &m);
		if (r == 0)
			return 0; /* nothing there, not FUSE, or alive: the usual checks speak */
		if (r == -ETIMEDOUT) {
			snprintf(err, errlen, "mountpoint %s is busy: the %s mount there does not answer (is its server stopped?)",
				 m.mountpoint, m.fstype);
			return -1;
		}
		if (r == -ENOTCONN) {
			snprintf(err, errlen, "mountpoint %s: a dead %s mount is left there, not furing's to remove; run %s",
				 m.mountpoint, m.fstype, unmount_command(&m, cmd, sizeof(cmd)));
			return -1;
		}
		if (r < 0) {
			snprintf(err, errlen, "mountpoint %s: cannot remove the dead furing mount left there (%s); run %s",
				 m.mountpoint, geteuid() == 0 ? strerror(-r) : "fusermount3 failed",
				 unmount_command(&m, cmd, sizeof(cmd)));
			return -1;
		}
		fprintf(stderr, "furing: lazily unmounted the stale furing mount at %s (its server had died)\n",
			m.mountpoint);
	}
	return 0;
}

void clear_dead_mount(const char *path)
{
	char err[2 * PATH_MAX + 256];

	if (stale_mount_clear(path, err, sizeof(err)) < 0)
		die(EXIT_RUNTIME, "%s", err);
}
