/* A mountpoint left behind by a furing that was killed: find it without
 * hanging on it, and remove it when it is ours (see stale_mount.c). */
#ifndef FURING_TOOLS_STALE_MOUNT_H
#define FURING_TOOLS_STALE_MOUNT_H

/* Lazily unmounts a dead fuse.furing mount at @path (saying so in one
 * line), or exits with a one-line error naming the command to run when a
 * dead mount there is not ours or cannot be removed. Returns when @path is
 * free of dead mounts. */
void clear_dead_mount(const char *path);

#endif
