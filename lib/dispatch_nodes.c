/* The handlers of the operations on nodes rather than open files: the
 * namespace (lookups, links, directories, renames), attributes, extended
 * attributes, and the filesystem as a whole. Each builds the operation's
 * arguments from the decoded request; the dispatch table (dispatch.c) has
 * already answered ENOSYS when the operation is missing. */
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "dispatch.h"

/* ---- the namespace ---- */

/* The kernel's 32-bit device numbers (new_encode_dev) -> dev_t. */
static dev_t decode_dev(uint32_t d)
{
	return makedev((d & 0xfff00u) >> 8, (d & 0xffu) | ((d >> 12) & 0xfff00u));
}

void fu_serve_lookup(struct furing_req *r)
{
	r->w->s->ops.lookup(r, r->msg.nodeid, r->msg.name);
}

void fu_serve_readlink(struct furing_req *r)
{
	r->w->s->ops.readlink(r, r->msg.nodeid);
}

void fu_serve_symlink(struct furing_req *r)
{
	/* The link's name comes first on the wire, then its target. */
	r->w->s->ops.symlink(r, r->msg.name2, r->msg.nodeid, r->msg.name);
}

void fu_serve_mknod(struct furing_req *r)
{
	const struct fuse_mknod_in *in = &r->msg.arg.mknod;

	r->ctx.umask = in->umask;
	r->w->s->ops.mknod(r, r->msg.nodeid, r->msg.name, in->mode, decode_dev(in->rdev));
}

void fu_serve_mkdir(struct furing_req *r)
{
	const struct fuse_mkdir_in *in = &r->msg.arg.mkdir;

	r->ctx.umask = in->umask;
	/* The operation gets a directory's full mode, whatever type bits came. */
	r->w->s->ops.mkdir(r, r->msg.nodeid, r->msg.name, (in->mode & ~S_IFMT) | S_IFDIR);
}

void fu_serve_unlink(struct furing_req *r)
{
	r->w->s->ops.unlink(r, r->msg.nodeid, r->msg.name);
}

void fu_serve_rmdir(struct furing_req *r)
{
	r->w->s->ops.rmdir(r, r->msg.nodeid, r->msg.name);
}

void fu_serve_rename(struct furing_req *r)
{
	r->w->s->ops.rename(r, r->msg.nodeid, r->msg.name, r->msg.arg.rename.newdir, r->msg.name2, 0);
}

void fu_serve_rename2(struct furing_req *r)
{
	const struct fuse_rename2_in *in = &r->msg.arg.rename2;

	r->w->s->ops.rename(r, r->msg.nodeid, r->msg.name, in->newdir, r->msg.name2, in->flags);
}

void fu_serve_link(struct furing_req *r)
{
	r->w->s->ops.link(r, r->msg.arg.link.oldnodeid, r->msg.nodeid, r->msg.name);
}

/* ---- attributes ---- */

void fu_serve_getattr(struct furing_req *r)
{
	const struct fuse_getattr_in *in = &r->msg.arg.getattr;

	r->w->s->ops.getattr(r, r->msg.nodeid, (in->getattr_flags & FUSE_GETATTR_FH) ? fu_file_of(r, in->fh, 0) : NULL);
}

void fu_serve_setattr(struct furing_req *r)
{
	const struct fuse_setattr_in *in = &r->msg.arg.setattr;
	struct furing_setattr *a = &r->argv.setattr;
	struct furing_file *fi = NULL;

	memset(a, 0, sizeof(*a));
	/* FATTR_FH and FATTR_LOCKOWNER become the furing_file instead. */
	a->valid = in->valid & (FURING_SET_MODE | FURING_SET_UID | FURING_SET_GID | FURING_SET_SIZE |
				FURING_SET_ATIME | FURING_SET_MTIME | FURING_SET_ATIME_NOW | FURING_SET_MTIME_NOW |
				FURING_SET_CTIME | FURING_SET_KILL_SUIDGID);
	a->mode = in->mode;
	a->uid = in->uid;
	a->gid = in->gid;
	a->size = in->size;
	a->atime = (struct timespec){(time_t)in->atime, in->atimensec};
	a->mtime = (struct timespec){(time_t)in->mtime, in->mtimensec};
	a->ctime = (struct timespec){(time_t)in->ctime, in->ctimensec};
	if (in->valid & FATTR_FH) {
		fi = fu_file_of(r, in->fh, 0);
		if (in->valid & FATTR_LOCKOWNER)
			fu_with_lock_owner(fi, in->lock_owner);
	}
	r->w->s->ops.setattr(r, r->msg.nodeid, a, fi);
}

void fu_serve_statx(struct furing_req *r)
{
	const struct fuse_statx_in *in = &r->msg.arg.statx;

	r->w->s->ops.statx(r, r->msg.nodeid, (int)in->sx_flags, in->sx_mask,
			   (in->getattr_flags & FUSE_GETATTR_FH) ? fu_file_of(r, in->fh, 0) : NULL);
}

void fu_serve_access(struct furing_req *r)
{
	r->w->s->ops.access(r, r->msg.nodeid, (int)r->msg.arg.access.mask);
}

/* ---- extended attributes ---- */

void fu_serve_setxattr(struct furing_req *r)
{
	const struct fu_msg *m = &r->msg;

	r->w->s->ops.setxattr(r, m->nodeid, m->name, m->data, m->data_len, (int)m->arg.setxattr.flags,
			      m->arg.setxattr.setxattr_flags);
}

void fu_serve_getxattr(struct furing_req *r)
{
	r->w->s->ops.getxattr(r, r->msg.nodeid, r->msg.name, r->msg.arg.getxattr.size);
}

void fu_serve_listxattr(struct furing_req *r)
{
	r->w->s->ops.listxattr(r, r->msg.nodeid, r->msg.arg.getxattr.size);
}

void fu_serve_removexattr(struct furing_req *r)
{
	r->w->s->ops.removexattr(r, r->msg.nodeid, r->msg.name);
}

/* ---- the filesystem ---- */

void fu_serve_statfs(struct furing_req *r)
{
	r->w->s->ops.statfs(r, r->msg.nodeid);
}

void fu_serve_syncfs(struct furing_req *r)
{
	r->w->s->ops.syncfs(r, r->msg.nodeid);
}
