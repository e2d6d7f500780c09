/* The caller's identity.
 *
 * Permission checks are the kernel's: the mount uses default_permissions,
 * so every access is checked against the attributes this filesystem
 * reports, which are SOURCE's (mode, owner, group), with the caller's full
 * credentials (supplementary groups included, which a FUSE request does not
 * carry). What the kernel cannot do is give a new file its owner: SOURCE's
 * filesystem takes it from the credentials of whoever creates it, here the
 * daemon. So a daemon running as root creates files as the caller:
 *
 *   - on the ring, with an io_uring personality per (uid, gid): the worker
 *     switches its own thread's fsuid/fsgid (setfsuid/setfsgid are
 *     per-thread system calls), registers the credentials with its ring
 *     (furing_worker_register_personality) and switches back; SQEs that
 *     create (openat2 O_CREAT, mkdirat, symlinkat, renameat2 with
 *     RENAME_WHITEOUT) carry the id. The kernel's own rules then apply as
 *     for a local caller: owner = caller, group = caller's, or the
 *     directory's when it is setgid (and a new directory inherits setgid);
 *     quota is charged to the caller.
 *   - inline (mknodat; the creating calls on a SOURCE in memory or on a
 *     local disk, backend.c; everything when the session has no io_uring),
 *     by switching the thread's fsuid/fsgid around the call.
 *
 * The switched credentials keep the daemon's file capabilities (setfsuid
 * away from 0 drops them; capset raises them again): the permission check
 * has already been made by the kernel with the caller's real credentials,
 * and keeping them avoids a second check with incomplete ones (no
 * supplementary groups) that could refuse what SOURCE would allow. The
 * setgid bit of a new file's mode has also been handled by the kernel
 * (it strips it for a caller outside the group before we see the mode).
 *
 * A daemon that is not root cannot switch identities: everything it
 * creates belongs to its own user, as with any FUSE filesystem mounted by a
 * user. */
#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pt.h"

/* Personalities cached per worker; past this many distinct callers the
 * cache starts over (ids in flight keep their credentials). */
#define PERSONAS_MAX 64

struct persona {
	uid_t uid;
	gid_t gid;
	int id;
};

struct ident_worker {
	unsigned int n;
	struct persona p[PERSONAS_MAX];
};

/* Raw system calls: they change only the calling thread (glibc's
 * setgroups/setresuid would change every thread of the process). */
static long thread_setfsuid(uid_t uid)
{
	return syscall(SYS_setfsuid, uid);
}

static long thread_setfsgid(gid_t gid)
{
	return syscall(SYS_setfsgid, gid);
}

/* The thread's effective capabilities: all it is permitted (setfsuid from 0
 * to another uid clears the file capabilities, CAP_CHOWN, CAP_DAC_OVERRIDE,
 * CAP_FOWNER, CAP_FSETID..., from the effective set; they are still
 * permitted) or none (a call that must be checked as the caller's). */
static int set_caps(bool all)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		d[i].effective = all ? d[i].permitted : 0;
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

static bool is_self(const struct pt_fs *fs, const struct furing_ctx *who)
{
	return !who || !fs->ident || (who->uid == fs->uid && who->gid == fs->gid);
}

int ident_enter(struct pt_fs *fs, const struct furing_ctx *who, bool keep_caps, struct ident_saved *saved)
{
	saved->switched = false;
	saved->caps_dropped = false;
	if (is_self(fs, who))
		return 0;
	thread_setfsgid(who->gid);
	thread_setfsuid(who->uid);
	saved->switched = true;
	/* setfs*id report the previous value, not failure: read them back
	 * with an invalid id (which changes nothing). */
	if ((uid_t)thread_setfsuid((uid_t)-1) != who->uid || (gid_t)thread_setfsgid((gid_t)-1) != who->gid) {
		ident_leave(fs, saved);
		return -EPERM;
	}
	saved->caps_dropped = !keep_caps;
	int ret = set_caps(keep_caps);
	if (ret < 0) {
		ident_leave(fs, saved);
		return ret;
	}
	return 0;
}

void ident_leave(struct pt_fs *fs, struct ident_saved *saved)
{
	if (!saved->switched)
		return;
	/* Back to the daemon's ids; going back to fsuid 0 gives the file
	 * capabilities back to the effective set. */
	thread_setfsuid(fs->uid);
	thread_setfsgid(fs->gid);
	if (saved->caps_dropped)
		set_caps(true);
	saved->switched = false;
	saved->caps_dropped = false;
}

int ident_personality(struct furing_req *req, const struct furing_ctx *who)
{
	struct pt_fs *fs = pt_fs_of(req);

	if (is_self(fs, who))
		return 0;
	struct furing_worker *w = furing_req_worker(req);
	struct ident_worker *iw = furing_worker_data(w);
	if (!iw)
		return -ENOMEM;
	for (unsigned int i = 0; i < iw->n; i++)
		if (iw->p[i].uid == who->uid && iw->p[i].gid == who->gid)
			return iw->p[i].id;
	if (iw->n == PERSONAS_MAX) {
		for (unsigned int i = 0; i < iw->n; i++)
			furing_worker_unregister_personality(w, iw->p[i].id);
		iw->n = 0;
	}
	struct ident_saved saved;
	int ret = ident_enter(fs, who, true, &saved);
	if (ret < 0)
		return ret;
	int id = furing_worker_register_personality(w);
	ident_leave(fs, &saved);
	if (id < 0)
		return id;
	if (id == 0)
		return -EINVAL; /* 0 means "none" in an SQE */
	iw->p[iw->n++] = (struct persona){.uid = who->uid, .gid = who->gid, .id = id};
	return id;
}

int ident_worker_start(void *fsp, struct furing_worker *w)
{
	struct pt_fs *fs = fsp;

	if (!fs->ident)
		return 0;
	struct ident_worker *iw = calloc(1, sizeof(*iw));
	if (!iw)
		return -ENOMEM;
	furing_worker_set_data(w, iw);
	return 0;
}

void ident_worker_stop(void *fsp, struct furing_worker *w)
{
	/* The ring, and its personalities with it, goes away next. */
	free(furing_worker_data(w));
	furing_worker_set_data(w, NULL);
}
