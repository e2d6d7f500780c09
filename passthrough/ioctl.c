/* IOCTL: the inode flags, FS_IOC_GETFLAGS/SETFLAGS and their extended form
 * FS_IOC_FSGETXATTR/FSSETXATTR (lsattr, chattr; the kernel asks for the
 * extended form before it changes flags), which local filesystems answer;
 * any other command is ENOTTY, as for a filesystem that does not know it.
 * Inline: io_uring has no ioctl for files (and flags are rare).
 *
 * The kernel sends the request without checking who may change the flags,
 * so SETFLAGS runs with the caller's fsuid/fsgid and without the daemon's
 * file capabilities: SOURCE's filesystem then lets only the owner change
 * flags, and only root (whose requests keep the daemon's credentials) set
 * immutable or append-only. */
#include <errno.h>
#include <stdbool.h>
#include <linux/fs.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "pt.h"

/* The 32-bit callers' numbers (the argument is an int in both). */
#define PT_FS_IOC32_GETFLAGS _IOR('f', 1, int)
#define PT_FS_IOC32_SETFLAGS _IOW('f', 2, int)

void pt_ioctl(struct furing_req *req, uint64_t ino, unsigned int cmd, uint64_t arg, const struct furing_file *fi,
	      unsigned int flags, const void *in_buf, size_t in_size, size_t out_size)
{
	struct pt_fs *fs = pt_fs_of(req);
	/* Open files and directories both start with their handle. */
	const struct pt_handle *h = (const struct pt_handle *)(uintptr_t)fi->fh;
	int attr = 0;

	if (cmd == FS_IOC_GETFLAGS || cmd == PT_FS_IOC32_GETFLAGS) {
		if (out_size < sizeof(attr)) {
			furing_reply_err(req, EINVAL);
			return;
		}
		if (ioctl(h->fd, FS_IOC_GETFLAGS, &attr) < 0) {
			furing_reply_err(req, errno);
			return;
		}
		furing_reply_ioctl(req, 0, &attr, sizeof(attr));
		return;
	}
	if (cmd == FS_IOC_FSGETXATTR) {
		struct fsxattr fsx;
		if (out_size < sizeof(fsx)) {
			furing_reply_err(req, EINVAL);
			return;
		}
		if (ioctl(h->fd, FS_IOC_FSGETXATTR, &fsx) < 0) {
			furing_reply_err(req, errno);
			return;
		}
		furing_reply_ioctl(req, 0, &fsx, sizeof(fsx));
		return;
	}
	bool setflags = cmd == FS_IOC_SETFLAGS || cmd == PT_FS_IOC32_SETFLAGS;
	if (setflags || cmd == FS_IOC_FSSETXATTR) {
		const struct furing_ctx *who = furing_req_ctx(req);
		struct fsxattr fsx;
		size_t need = setflags ? sizeof(attr) : sizeof(fsx);
		if (in_size < need) {
			furing_reply_err(req, EINVAL);
			return;
		}
		if (!fs->ident && who->uid != fs->uid) {
			/* A daemon that cannot take the caller's identity owns
			 * every file: only its own user may change flags. */
			furing_reply_err(req, EPERM);
			return;
		}
		memcpy(setflags ? (void *)&attr : (void *)&fsx, in_buf, need);
		struct ident_saved saved;
		int ret = ident_enter(fs, who, false, &saved);
		if (ret == 0) {
			ret = ioctl(h->fd, setflags ? FS_IOC_SETFLAGS : FS_IOC_FSSETXATTR,
				    setflags ? (void *)&attr : (void *)&fsx) < 0
				      ? -errno
				      : 0;
			ident_leave(fs, &saved);
		}
		if (ret < 0)
			furing_reply_err(req, -ret);
		else
			furing_reply_ioctl(req, 0, NULL, 0);
		return;
	}
	furing_reply_err(req, ENOTTY);
}
