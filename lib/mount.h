/* Mounting and unmounting a FUSE filesystem: mount(2) when we are root,
 * fusermount3's fd-passing protocol otherwise. */
#ifndef FURING_MOUNT_H
#define FURING_MOUNT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fu_mount_opts {
	const char *fsname;
	const char *subtype;
	mode_t root_mode;
	bool allow_other;
	bool read_only;
	bool default_permissions;
	uint32_t max_read;
	/* furing_config.mount_options (may be NULL): items of an allow-list;
	 * its fsname=, subtype= and max_read= (at most the one above) win. */
	const char *options;
};

/* Checks @o (names not empty nor too long, mount_options against the
 * allow-list) without mounting: 0, or -errno with @err filled. fu_mount
 * checks the same. */
int fu_mount_check(const struct fu_mount_opts *o, char *err, size_t errlen);

/* One item of a mount_options string (the command line's -o, cmdline.c):
 * -ENOENT when it is not a mount option at all, else 0 or -errno with @err
 * filled, as fu_mount_check would say (max_read unbounded above). */
int fu_mount_option_check(const char *item, char *err, size_t errlen);

/* Returns the /dev/fuse fd of the new mount, or -1 with @err filled.
 * *via_fusermount tells how it was mounted (and so how to unmount). */
int fu_mount(const char *mountpoint, const struct fu_mount_opts *o, bool *via_fusermount, char *err, size_t errlen);
/* Lazy unmount: the mount disappears at once, the connection ends when the
 * last user lets go. Returns 0 or -errno (EINVAL: not mounted any more). */
int fu_unmount(const char *mountpoint, bool via_fusermount);
/* True when @path is a mount point according to /proc/self/mountinfo.
 * Only the directory part of @path is resolved (realpath); its last
 * component is never looked up, so a dead or stuck FUSE mount there cannot
 * fail or hang the call. */
bool fu_is_mountpoint(const char *path);
/* The st_dev of the mount at @path, from mountinfo as above (no request
 * reaches the filesystem, so it works before we serve). Returns 0 or -errno. */
int fu_mount_dev(const char *path, dev_t *dev);
/* Asks the kernel to abort a FUSE connection through fusectl, mounting
 * fusectl when needed. @dev is the mount's st_dev. Returns 0 or -errno. */
int fu_abort_connection(dev_t dev);
/* Finds @prog in $PATH. */
bool fu_in_path(const char *prog);

#endif
