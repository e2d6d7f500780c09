/* See encode.h. */
#include "encode.h"

#include <math.h>
#include <string.h>
#include <sys/sysmacros.h>

/* The kernel's 32-bit device number format (new_encode_dev). */
static uint32_t encode_dev(dev_t d)
{
	uint32_t maj = major(d), min = minor(d);
	return (min & 0xffu) | (maj << 8) | ((min & ~0xffu) << 12);
}

void fu_encode_timeout(double t, uint64_t *sec, uint32_t *nsec)
{
	*sec = 0;
	*nsec = 0;
	if (!(t > 0)) /* also NaN */
		return;
	if (t >= 18446744073709549568.0) { /* the largest double below 2^64 */
		*sec = UINT64_MAX;
		*nsec = 999999999;
		return;
	}
	*sec = (uint64_t)t;
	double frac = (t - (double)*sec) * 1e9;
	*nsec = frac >= 999999999.0 ? 999999999u : (uint32_t)frac;
}

void fu_encode_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = encode_dev(st->st_rdev);
	a->blksize = (uint32_t)st->st_blksize;
}

void fu_encode_entry(struct fuse_entry_out *out, const struct furing_entry *e)
{
	memset(out, 0, sizeof(*out));
	out->nodeid = e->ino;
	out->generation = e->generation;
	fu_encode_timeout(e->entry_timeout, &out->entry_valid, &out->entry_valid_nsec);
	fu_encode_timeout(e->attr_timeout, &out->attr_valid, &out->attr_valid_nsec);
	fu_encode_attr(&out->attr, &e->attr);
	out->attr.ino = e->ino;
}

void fu_encode_open(struct fuse_open_out *out, const struct furing_open *o)
{
	memset(out, 0, sizeof(*out));
	out->fh = o->fh;
	out->open_flags = o->flags;
	if (o->flags & FURING_OPEN_PASSTHROUGH)
		out->backing_id = o->backing_id;
}

void fu_encode_statfs(struct fuse_kstatfs *out, const struct statvfs *st)
{
	memset(out, 0, sizeof(*out));
	out->blocks = st->f_blocks;
	out->bfree = st->f_bfree;
	out->bavail = st->f_bavail;
	out->files = st->f_files;
	out->ffree = st->f_ffree;
	out->bsize = (uint32_t)st->f_bsize;
	out->namelen = (uint32_t)st->f_namemax;
	out->frsize = (uint32_t)st->f_frsize;
}

static struct fuse_sx_time sx_time(const struct statx_timestamp *t)
{
	return (struct fuse_sx_time){.tv_sec = t->tv_sec, .tv_nsec = t->tv_nsec, .reserved = 0};
}

void fu_encode_statx(struct fuse_statx *out, const struct statx *stx)
{
	memset(out, 0, sizeof(*out));
	out->mask = stx->stx_mask;
	out->blksize = stx->stx_blksize;
	out->attributes = stx->stx_attributes;
	out->nlink = stx->stx_nlink;
	out->uid = stx->stx_uid;
	out->gid = stx->stx_gid;
	out->mode = stx->stx_mode;
	out->ino = stx->stx_ino;
	out->size = stx->stx_size;
	out->blocks = stx->stx_blocks;
	out->attributes_mask = stx->stx_attributes_mask;
	out->atime = sx_time(&stx->stx_atime);
	out->btime = sx_time(&stx->stx_btime);
	out->ctime = sx_time(&stx->stx_ctime);
	out->mtime = sx_time(&stx->stx_mtime);
	out->rdev_major = stx->stx_rdev_major;
	out->rdev_minor = stx->stx_rdev_minor;
	out->dev_major = stx->stx_dev_major;
	out->dev_minor = stx->stx_dev_minor;
}

#define LOCK_END_MAX ((uint64_t)INT64_MAX) /* the kernel's OFFSET_MAX */

void fu_lock_to_flock(const struct fuse_file_lock *in, struct flock *out)
{
	memset(out, 0, sizeof(*out));
	out->l_type = (short)in->type;
	out->l_whence = SEEK_SET;
	out->l_start = in->start > LOCK_END_MAX ? (off_t)LOCK_END_MAX : (off_t)in->start;
	if (in->end >= LOCK_END_MAX || in->end < in->start)
		out->l_len = 0;
	else
		out->l_len = (off_t)(in->end - in->start + 1);
	out->l_pid = (pid_t)in->pid;
}

void fu_flock_to_lock(const struct flock *in, struct fuse_file_lock *out)
{
	memset(out, 0, sizeof(*out));
	out->type = (uint32_t)in->l_type;
	out->pid = (uint32_t)in->l_pid;
	if (in->l_type == F_UNLCK)
		return; /* no conflict: the range means nothing */
	out->start = in->l_start < 0 ? 0 : (uint64_t)in->l_start;
	if (in->l_len <= 0 || (uint64_t)in->l_len > LOCK_END_MAX - out->start)
		out->end = LOCK_END_MAX;
	else
		out->end = out->start + (uint64_t)in->l_len - 1;
}

size_t fu_dirent_size(size_t namelen, bool plus)
{
	size_t n = (plus ? sizeof(struct fuse_direntplus) : sizeof(struct fuse_dirent)) + namelen;
	return (n + 7) & ~(size_t)7;
}

/* The fixed part is filled in by the caller; the name and the zero
 * padding up to the 8-byte boundary are put here. */
static void put_name(char *at, size_t fixed, const char *name, size_t namelen, size_t total)
{
	memcpy(at + fixed, name, namelen);
	memset(at + fixed + namelen, 0, total - fixed - namelen);
}

bool fu_dirent_add(char *buf, size_t size, size_t *used, const char *name, uint64_t ino, uint32_t type,
		   uint64_t next_off)
{
	size_t namelen = strlen(name);
	size_t total = fu_dirent_size(namelen, false);

	if (namelen == 0 || namelen > UINT32_MAX || *used > size || size - *used < total)
		return false;
	struct fuse_dirent d = {.ino = ino, .off = next_off, .namelen = (uint32_t)namelen, .type = type};
	char *at = buf + *used;
	memcpy(at, &d, sizeof(d));
	put_name(at, sizeof(d), name, namelen, total);
	*used += total;
	return true;
}

bool fu_direntplus_add(char *buf, size_t size, size_t *used, const char *name, const struct furing_entry *e,
		       uint64_t next_off)
{
	size_t namelen = strlen(name);
	size_t total = fu_dirent_size(namelen, true);

	if (namelen == 0 || namelen > UINT32_MAX || *used > size || size - *used < total)
		return false;
	struct fuse_direntplus d;
	memset(&d, 0, sizeof(d));
	fu_encode_entry(&d.entry_out, e);
	d.dirent.ino = e->attr.st_ino ? (uint64_t)e->attr.st_ino : e->ino;
	d.dirent.off = next_off;
	d.dirent.namelen = (uint32_t)namelen;
	d.dirent.type = (e->attr.st_mode & S_IFMT) >> 12;
	char *at = buf + *used;
	memcpy(at, &d, sizeof(d));
	put_name(at, sizeof(d), name, namelen, total);
	*used += total;
	return true;
}
