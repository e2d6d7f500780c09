/* See stale_mount.h. */
#include "stale_mount.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/mount.h"
#include "cli.h"

/* A live server answers in well under a millisecond; a stopped one never. */
#define PROBE_TIMEOUT_MS 2000

/* What the user runs to remove the mount at @m by hand. */
static const char *unmount_command(const struct fu_mount_entry *m, char *buf, size_t len)
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
 * so; another filesystem's is not ours to remove, so name the command. The
 * mountpoint is only looked at through mountinfo and a probe that cannot
 * hang us, since a stopped server's mount would hang a plain stat(). */
void clear_dead_mount(const char *path)
{
	char cmd[PATH_MAX + 32];

	for (int i = 0; i < 8; i++) { /* mounts stack: each pass takes the topmost */
		struct fu_mount_entry m;
		if (fu_mount_lookup(path, &m) != 1 || strncmp(m.fstype, "fuse", 4) != 0)
			return; /* nothing there, or not FUSE: the usual checks speak */
		int r = fu_probe_path(m.mountpoint, PROBE_TIMEOUT_MS);
		if (r == -ETIMEDOUT)
			die(EXIT_RUNTIME, "mountpoint %s is busy: the %s mount there does not answer (is its server stopped?)",
			    m.mountpoint, m.fstype);
		if (r != -ENOTCONN && r != -ECONNABORTED)
			return; /* alive: busy, which furing_session_start reports */
		if (strcmp(m.fstype, "fuse.furing") != 0)
			die(EXIT_RUNTIME, "mountpoint %s: a dead %s mount is left there, not furing's to remove; run %s",
			    m.mountpoint, m.fstype, unmount_command(&m, cmd, sizeof(cmd)));
		/* Another export starting here may have replaced the dead mount
		 * meanwhile: unmount only the one probed (narrows that window). */
		struct fu_mount_entry now;
		if (fu_mount_lookup(path, &now) != 1 || now.dev != m.dev)
			continue;
		int ret = fu_unmount(m.mountpoint, geteuid() != 0);
		if (ret < 0)
			die(EXIT_RUNTIME, "mountpoint %s: cannot remove the dead furing mount left there (%s); run %s",
			    m.mountpoint, geteuid() == 0 ? strerror(-ret) : "fusermount3 failed",
			    unmount_command(&m, cmd, sizeof(cmd)));
		fprintf(stderr, "furing: lazily unmounted the stale furing mount at %s (its server had died)\n",
			m.mountpoint);
	}
}

