/* A mountpoint left behind by a furing that was killed: find it without
 * hanging on it, and remove it when it is ours (see stale_mount.c). */
#ifndef FURING_TOOLS_STALE_MOUNT_H
#define FURING_TOOLS_STALE_MOUNT_H

#include <stddef.h>

/* Lazily unmounts a dead fuse.furing mount at @path (saying so in one
 * line on stderr) and returns 0 once @path is free of dead mounts, or
 * returns -1 with a one-line reason in @err (naming the command to run)
 * when a dead mount there is not ours or cannot be removed. */
int stale_mount_clear(const char *path, char *err, size_t errlen);
/* The same for the command line: exits with the reason instead. */
void clear_dead_mount(const char *path);

#endif
