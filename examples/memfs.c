/* memfs: a writable filesystem kept in memory.
 *
 * What it shows beyond hello.c:
 *   - node ids and lookup counting: every entry answer (lookup, mknod, mkdir,
 *     symlink, link, create, and each readdirplus entry) gives the kernel one
 *     reference to the node, forget gives references back, and a node is
 *     freed only when it has no name left, no kernel reference and no open
 *     file (a RELEASE may arrive after the FORGET);
 *   - the errno each POSIX call expects (ENOENT, EEXIST, ENOTDIR, EISDIR,
 *     ENOTEMPTY, ENAMETOOLONG, ENODATA, ERANGE, ...);
 *   - rename with RENAME_NOREPLACE and RENAME_EXCHANGE, hard and symbolic
 *     links, fifos and other special files, extended attributes with the
 *     size-0 probe, truncate, fallocate, statfs.
 *
 * One mutex guards everything: operations only touch memory, so none holds
 * it for long. Each operation decides under the lock and answers after
 * dropping it: answering hands the reply to the kernel (a write to
 * /dev/fuse, or the ring), which is no work to do while others wait.
 *
 * The mount uses default_permissions: the kernel checks every access against
 * the modes and owners we report, so the operations need not. Record locks
 * and flock(2) are left to the kernel (no getlk/setlk/flock operations):
 * they work between the processes of this machine, which is all a memory
 * filesystem has.
 *
 * Usage: memfs [--io-uring=auto|on|off] [--debug] MOUNTPOINT
 * Runs until SIGINT/SIGTERM or until someone unmounts MOUNTPOINT; everything
 * written is gone then. Exit status: 0 clean stop, 1 runtime error, 2 usage
 * error. */
#define _GNU_SOURCE 1 /* RENAME_NOREPLACE and RENAME_EXCHANGE in <stdio.h> */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <furing/furing.h>

#define NAME_LEN_MAX 255              /* longest name in a directory, as statfs reports */
#define CAPACITY_BYTES (256ull << 20) /* file data: ENOSPC beyond, and what statfs reports */
#define CAPACITY_NODES 65536u
#define BLOCK_SIZE 4096
#define CACHE_S 1.0 /* how long the kernel may cache names and attributes */

struct xattr {
	struct xattr *next;
	void *value;
	size_t size;
	char name[];
};

/* A name in a directory. */
struct dentry {
	struct dentry *next;
	struct node *node;
	uint64_t cookie; /* readdir continues after this entry from this offset */
	char name[];
};

struct node {
	struct stat st;     /* st_ino is the node id: never reused, so generation 0 will do */
	uint64_t nlookup;   /* references the kernel holds: entry answers minus forgets */
	unsigned int opens; /* open files and directories */
	struct node *hash_next;
	struct xattr *xattrs;
	/* regular files */
	unsigned char *data;
	size_t capacity; /* the buffer never shrinks: simplicity over memory */
	/* symbolic links */
	char *target;
	/* directories */
	struct dentry *entries, **entries_end; /* in cookie order: new names at the end */
	uint64_t next_cookie;
	struct node *parent; /* for ".."; NULL once removed */
};

struct memfs {
	pthread_mutex_t lock;
	struct node **buckets; /* node id -> node */
	size_t nbuckets;
	unsigned int nodes;
	uint64_t next_ino;
	uint64_t bytes; /* sum of the regular files' sizes */
};

static struct memfs *fs_of(struct furing_req *req)
{
	return furing_req_fs(req);
}

/* ---- nodes ---- */

static struct node **bucket(struct memfs *fs, uint64_t ino)
{
	return &fs->buckets[ino % fs->nbuckets];
}

static struct node *node_get(struct memfs *fs, uint64_t ino)
{
	for (struct node *n = *bucket(fs, ino); n; n = n->hash_next)
		if (n->st.st_ino == ino)
			return n;
	return NULL;
}

/* The table doubles when it holds as many nodes as it has buckets. */
static int table_insert(struct memfs *fs, struct node *n)
{
	if (fs->nodes >= fs->nbuckets) {
		size_t nb = fs->nbuckets * 2;
		struct node **b = calloc(nb, sizeof(*b));
		if (!b)
			return ENOMEM;
		for (size_t i = 0; i < fs->nbuckets; i++) {
			struct node *m = fs->buckets[i], *next;
			for (; m; m = next) {
				next = m->hash_next;
				m->hash_next = b[m->st.st_ino % nb];
				b[m->st.st_ino % nb] = m;
			}
		}
		free(fs->buckets);
		fs->buckets = b;
		fs->nbuckets = nb;
	}
	struct node **head = bucket(fs, n->st.st_ino);
	n->hash_next = *head;
	*head = n;
	fs->nodes++;
	return 0;
}

static void table_remove(struct memfs *fs, struct node *n)
{
	struct node **p = bucket(fs, n->st.st_ino);

	while (*p != n)
		p = &(*p)->hash_next;
	*p = n->hash_next;
	fs->nodes--;
}

static struct timespec now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return t;
}

/* The node's attributes changed (ctime). */
static void changed(struct node *n)
{
	n->st.st_ctim = now();
}

/* The node's content changed (mtime and ctime). */
static void modified(struct node *n)
{
	n->st.st_ctim = n->st.st_mtim = now();
}

/* A new node, in no directory yet, owned by the caller. */
static int node_new(struct memfs *fs, const struct furing_ctx *ctx, const struct node *dir, mode_t mode,
		    struct node **out)
{
	if (fs->nodes >= CAPACITY_NODES)
		return ENOSPC;
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return ENOMEM;
	n->st.st_ino = fs->next_ino++;
	n->st.st_mode = mode;
	n->st.st_nlink = S_ISDIR(mode) ? 1 : 0; /* a directory's own "."; names add the rest */
	n->st.st_uid = ctx->uid;
	n->st.st_gid = ctx->gid;
	n->st.st_blksize = BLOCK_SIZE;
	n->st.st_atim = n->st.st_mtim = n->st.st_ctim = now();
	/* A set-group-ID directory hands down its group, and to directories
	 * its set-group-ID bit, as local filesystems do. */
	if (dir && (dir->st.st_mode & S_ISGID)) {
		n->st.st_gid = dir->st.st_gid;
		if (S_ISDIR(mode))
			n->st.st_mode |= S_ISGID;
	}
	if (S_ISDIR(mode)) {
		n->entries_end = &n->entries;
		n->next_cookie = 3; /* 1 and 2 are "." and ".." */
	}
	int err = table_insert(fs, n);
	if (err) {
		free(n);
		return err;
	}
	*out = n;
	return 0;
}

static void node_free(struct node *n)
{
	while (n->xattrs) {
		struct xattr *x = n->xattrs;
		n->xattrs = x->next;
		free(x->value);
		free(x);
	}
	while (n->entries) {
		struct dentry *d = n->entries;
		n->entries = d->next;
		free(d);
	}
	free(n->data);
	free(n->target);
	free(n);
}

/* Frees @n once nothing refers to it any more: no name, no reference held by
 * the kernel, no open file. The root lives as long as the filesystem. */
static void node_put(struct memfs *fs, struct node *n)
{
	if (n->st.st_ino == FURING_ROOT_ID || n->st.st_nlink || n->nlookup || n->opens)
		return;
	table_remove(fs, n);
	if (S_ISREG(n->st.st_mode))
		fs->bytes -= (uint64_t)n->st.st_size;
	node_free(n);
}

/* Sets a regular file's size: zeros when it grows. */
static int resize(struct memfs *fs, struct node *n, uint64_t size)
{
	uint64_t old = (uint64_t)n->st.st_size;

	if (size > CAPACITY_BYTES)
		return EFBIG;
	if (size > old && size - old > CAPACITY_BYTES - fs->bytes)
		return ENOSPC;
	if (size > n->capacity) {
		size_t cap = n->capacity ? n->capacity : BLOCK_SIZE;
		while (cap < size)
			cap *= 2;
		unsigned char *p = realloc(n->data, cap);
		if (!p)
			return ENOMEM;
		n->data = p;
		n->capacity = cap;
	}
	if (size > old)
		memset(n->data + old, 0, size - old);
	fs->bytes = fs->bytes - old + size;
	n->st.st_size = (off_t)size;
	n->st.st_blocks = (blkcnt_t)((size + 511) / 512);
	modified(n);
	return 0;
}

/* ---- directories ---- */

/* Directory @ino, in which @name (unless NULL) is looked up or made. */
static int dir_get(struct memfs *fs, uint64_t ino, const char *name, struct node **out)
{
	struct node *dir = node_get(fs, ino);

	if (!dir)
		return ENOENT;
	if (!S_ISDIR(dir->st.st_mode))
		return ENOTDIR;
	if (name && strlen(name) > NAME_LEN_MAX)
		return ENAMETOOLONG;
	*out = dir;
	return 0;
}

/* Where @name is in @dir: *slot is its entry, or NULL when there is none. */
static struct dentry **dir_slot(struct node *dir, const char *name)
{
	struct dentry **p = &dir->entries;

	while (*p && strcmp((*p)->name, name) != 0)
		p = &(*p)->next;
	return p;
}

static struct dentry *dentry_new(const char *name)
{
	size_t len = strlen(name) + 1;
	struct dentry *d = malloc(sizeof(*d) + len);

	if (d)
		memcpy(d->name, name, len);
	return d;
}

/* Gives @n the name @d (made by dentry_new) in @dir. */
static void dir_insert(struct node *dir, struct dentry *d, struct node *n)
{
	d->node = n;
	d->next = NULL;
	d->cookie = dir->next_cookie++;
	*dir->entries_end = d;
	dir->entries_end = &d->next;
	n->st.st_nlink++;
	if (S_ISDIR(n->st.st_mode)) {
		dir->st.st_nlink++; /* the child's ".." */
		n->parent = dir;
	}
	changed(n);
	modified(dir);
}

static int dir_link(struct node *dir, const char *name, struct node *n)
{
	struct dentry *d = dentry_new(name);

	if (!d)
		return ENOMEM;
	dir_insert(dir, d, n);
	return 0;
}

/* Removes the name at @slot from @dir; the node may have to be freed after. */
static void dir_unlink(struct node *dir, struct dentry **slot)
{
	struct dentry *d = *slot;
	struct node *n = d->node;

	*slot = d->next;
	if (dir->entries_end == &d->next)
		dir->entries_end = slot;
	n->st.st_nlink--;
	if (S_ISDIR(n->st.st_mode)) {
		dir->st.st_nlink--;
		n->parent = NULL;
	}
	changed(n);
	modified(dir);
	free(d);
}

/* True when @n is @dir or one of its ancestors. */
static bool is_ancestor(const struct node *n, const struct node *dir)
{
	for (; dir; dir = dir->parent)
		if (dir == n)
			return true;
	return false;
}

/* ---- answers ---- */

static void fill_entry(const struct node *n, struct furing_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->st.st_ino;
	e->attr = n->st;
	e->attr_timeout = CACHE_S;
	e->entry_timeout = CACHE_S;
}

/* An entry answer for @n: the kernel will hold one more reference. */
static void take_entry(struct node *n, struct furing_entry *e)
{
	fill_entry(n, e);
	n->nlookup++;
}

static void reply_entry_or_err(struct furing_req *req, int err, const struct furing_entry *e)
{
	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_entry(req, e);
}

static void reply_attr_or_err(struct furing_req *req, int err, const struct stat *st)
{
	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_attr(req, st, CACHE_S);
}

/* ---- names ---- */

static void memfs_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	struct memfs *fs = fs_of(req);
	struct furing_entry e;
	struct node *dir;

	pthread_mutex_lock(&fs->lock);
	int err = dir_get(fs, parent, name, &dir);
	struct dentry *d = err ? NULL : *dir_slot(dir, name);
	if (!err && !d)
		err = ENOENT;
	if (!err)
		take_entry(d->node, &e);
	pthread_mutex_unlock(&fs->lock);
	reply_entry_or_err(req, err, &e);
}

/* What mknod, mkdir, symlink and create share: a new node named @name. */
static int make_node(struct memfs *fs, struct furing_req *req, uint64_t parent, const char *name, mode_t mode,
		     struct node **out)
{
	struct node *dir, *n;
	int err = dir_get(fs, parent, name, &dir);

	if (err)
		return err;
	if (dir->st.st_nlink == 0)
		return ENOENT; /* removed while someone is still in it */
	if (*dir_slot(dir, name))
		return EEXIST;
	err = node_new(fs, furing_req_ctx(req), dir, mode, &n);
	if (err)
		return err;
	err = dir_link(dir, name, n);
	if (err) {
		n->st.st_nlink = 0;
		node_put(fs, n);
		return err;
	}
	*out = n;
	return 0;
}

static void memfs_mknod(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct memfs *fs = fs_of(req);
	struct furing_entry e;
	struct node *n;

	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		break; /* device nodes are inert anyway: FUSE mounts are nodev */
	default:
		furing_reply_err(req, EINVAL);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	int err = make_node(fs, req, parent, name, mode, &n);
	if (!err) {
		n->st.st_rdev = rdev;
		take_entry(n, &e);
	}
	pthread_mutex_unlock(&fs->lock);
	reply_entry_or_err(req, err, &e);
}

static void memfs_mkdir(struct furing_req *req, uint64_t parent, const char *name, mode_t mode)
{
	struct memfs *fs = fs_of(req);
	struct furing_entry e;
	struct node *n;

	pthread_mutex_lock(&fs->lock);
	int err = make_node(fs, req, parent, name, S_IFDIR | (mode & 07777), &n);
	if (!err)
		take_entry(n, &e);
	pthread_mutex_unlock(&fs->lock);
	reply_entry_or_err(req, err, &e);
}

static void memfs_symlink(struct furing_req *req, const char *target, uint64_t parent, const char *name)
{
	struct memfs *fs = fs_of(req);
	struct furing_entry e;
	struct node *n;
	size_t len = strlen(target);

	if (len >= PATH_MAX) {
		furing_reply_err(req, ENAMETOOLONG);
		return;
	}
	char *copy = strdup(target);
	if (!copy) {
		furing_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	int err = make_node(fs, req, parent, name, S_IFLNK | 0777, &n);
	if (!err) {
		n->target = copy;
		n->st.st_size = (off_t)len;
		take_entry(n, &e);
	}
	pthread_mutex_unlock(&fs->lock);
	if (err)
		free(copy);
	reply_entry_or_err(req, err, &e);
}

static void memfs_readlink(struct furing_req *req, uint64_t ino)
{
	struct memfs *fs = fs_of(req);
	char target[PATH_MAX];
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (!n)
		err = ENOENT;
	else if (!S_ISLNK(n->st.st_mode))
		err = EINVAL;
	else
		memcpy(target, n->target, (size_t)n->st.st_size + 1); /* shorter than PATH_MAX: see symlink */
	pthread_mutex_unlock(&fs->lock);
	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_readlink(req, target);
}

static void memfs_link(struct furing_req *req, uint64_t ino, uint64_t newparent, const char *newname)
{
	struct memfs *fs = fs_of(req);
	struct furing_entry e;
	struct node *dir;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	int err = n ? dir_get(fs, newparent, newname, &dir) : ENOENT;
	if (!err && S_ISDIR(n->st.st_mode))
		err = EPERM; /* no hard links to directories */
	else if (!err && (dir->st.st_nlink == 0 || n->st.st_nlink == 0))
		err = ENOENT; /* a removed directory, or a file without a name left */
	else if (!err && *dir_slot(dir, newname))
		err = EEXIST;
	if (!err)
		err = dir_link(dir, newname, n);
	if (!err)
		take_entry(n, &e);
	pthread_mutex_unlock(&fs->lock);
	reply_entry_or_err(req, err, &e);
}

/* unlink and rmdir: the name goes; the node stays while the kernel or an
 * open file still holds it. */
static void remove_name(struct furing_req *req, uint64_t parent, const char *name, bool want_dir)
{
	struct memfs *fs = fs_of(req);
	struct node *dir;

	pthread_mutex_lock(&fs->lock);
	int err = dir_get(fs, parent, name, &dir);
	struct dentry **slot = err ? NULL : dir_slot(dir, name);
	if (!err && !*slot)
		err = ENOENT;
	else if (!err && !want_dir && S_ISDIR((*slot)->node->st.st_mode))
		err = EISDIR;
	else if (!err && want_dir && !S_ISDIR((*slot)->node->st.st_mode))
		err = ENOTDIR;
	else if (!err && want_dir && (*slot)->node->entries)
		err = ENOTEMPTY;
	if (!err) {
		struct node *n = (*slot)->node;
		dir_unlink(dir, slot);
		if (want_dir)
			n->st.st_nlink = 0; /* its "." goes with its name */
		node_put(fs, n);
	}
	pthread_mutex_unlock(&fs->lock);
	furing_reply_err(req, err);
}

static void memfs_unlink(struct furing_req *req, uint64_t parent, const char *name)
{
	remove_name(req, parent, name, false);
}

static void memfs_rmdir(struct furing_req *req, uint64_t parent, const char *name)
{
	remove_name(req, parent, name, true);
}

/* RENAME_EXCHANGE: each name now names the other node. */
static void exchange(struct node *from, struct dentry *a, struct node *to, struct dentry *b)
{
	struct node *na = a->node, *nb = b->node;

	a->node = nb;
	b->node = na;
	if (from != to) { /* a directory that moved counts as its new parent's link */
		if (S_ISDIR(na->st.st_mode)) {
			na->parent = to;
			to->st.st_nlink++;
			from->st.st_nlink--;
		}
		if (S_ISDIR(nb->st.st_mode)) {
			nb->parent = from;
			from->st.st_nlink++;
			to->st.st_nlink--;
		}
	}
	changed(na);
	changed(nb);
	modified(from);
	modified(to);
}

static int rename_locked(struct memfs *fs, uint64_t parent, const char *name, uint64_t newparent,
			 const char *newname, unsigned int flags)
{
	struct node *from, *to;

	/* RENAME_WHITEOUT is for overlay filesystems: we have no whiteouts. */
	if ((flags & ~(unsigned int)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
	    ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)))
		return EINVAL;
	int err = dir_get(fs, parent, name, &from);
	if (!err)
		err = dir_get(fs, newparent, newname, &to);
	if (err)
		return err;
	struct dentry **src = dir_slot(from, name), **dst = dir_slot(to, newname);
	if (!*src || to->st.st_nlink == 0)
		return ENOENT;
	struct node *n = (*src)->node, *old = *dst ? (*dst)->node : NULL;
	/* A directory cannot move below itself (the kernel checks too). */
	if (S_ISDIR(n->st.st_mode) && is_ancestor(n, to))
		return EINVAL;
	if (flags & RENAME_EXCHANGE) {
		if (!old)
			return ENOENT;
		if (S_ISDIR(old->st.st_mode) && is_ancestor(old, from))
			return EINVAL;
		exchange(from, *src, to, *dst);
		return 0;
	}
	if (old) {
		if (flags & RENAME_NOREPLACE)
			return EEXIST;
		if (old == n)
			return 0; /* two names of one file: POSIX says do nothing */
		if (S_ISDIR(n->st.st_mode) && !S_ISDIR(old->st.st_mode))
			return ENOTDIR;
		if (!S_ISDIR(n->st.st_mode) && S_ISDIR(old->st.st_mode))
			return EISDIR;
		if (old->entries)
			return ENOTEMPTY;
	}
	/* The only failure left comes before anything changes. */
	struct dentry *d = dentry_new(newname);
	if (!d)
		return ENOMEM;
	if (old) {
		dir_unlink(to, dst);
		if (S_ISDIR(old->st.st_mode))
			old->st.st_nlink = 0;
	}
	dir_unlink(from, dir_slot(from, name)); /* looked up again: the unlink above may have moved it */
	dir_insert(to, d, n);
	if (old)
		node_put(fs, old);
	return 0;
}

static void memfs_rename(struct furing_req *req, uint64_t parent, const char *name, uint64_t newparent,
			 const char *newname, unsigned int flags)
{
	struct memfs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	int err = rename_locked(fs, parent, name, newparent, newname, flags);
	pthread_mutex_unlock(&fs->lock);
	furing_reply_err(req, err);
}

static void memfs_forget(void *fsp, uint64_t ino, uint64_t nlookup)
{
	struct memfs *fs = fsp;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (n) {
		n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
		node_put(fs, n);
	}
	pthread_mutex_unlock(&fs->lock);
}

static void memfs_forget_multi(void *fsp, size_t count, const struct furing_forget *forgets)
{
	for (size_t i = 0; i < count; i++)
		memfs_forget(fsp, forgets[i].ino, forgets[i].nlookup);
}

/* ---- attributes ---- */

static void memfs_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);
	struct stat st;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (n)
		st = n->st;
	pthread_mutex_unlock(&fs->lock);
	reply_attr_or_err(req, n ? 0 : ENOENT, &st);
}

static void set_times(struct node *n, const struct furing_setattr *a)
{
	if (a->valid & FURING_SET_ATIME_NOW)
		n->st.st_atim = now();
	else if (a->valid & FURING_SET_ATIME)
		n->st.st_atim = a->atime;
	if (a->valid & FURING_SET_MTIME_NOW)
		n->st.st_mtim = now();
	else if (a->valid & FURING_SET_MTIME)
		n->st.st_mtim = a->mtime;
}

/* chmod, chown, truncate, utimens: the kernel has checked the caller may. */
static void memfs_setattr(struct furing_req *req, uint64_t ino, const struct furing_setattr *a,
			  const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);
	struct stat st;
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (!n)
		err = ENOENT;
	else if ((a->valid & FURING_SET_SIZE) && !S_ISREG(n->st.st_mode))
		err = S_ISDIR(n->st.st_mode) ? EISDIR : EINVAL;
	else if (a->valid & FURING_SET_SIZE)
		err = resize(fs, n, a->size);
	if (!err) {
		if (a->valid & FURING_SET_MODE)
			n->st.st_mode = (n->st.st_mode & S_IFMT) | (a->mode & 07777);
		if (a->valid & FURING_SET_UID)
			n->st.st_uid = a->uid;
		if (a->valid & FURING_SET_GID)
			n->st.st_gid = a->gid;
		set_times(n, a);
		n->st.st_ctim = (a->valid & FURING_SET_CTIME) ? a->ctime : now();
		st = n->st;
	}
	pthread_mutex_unlock(&fs->lock);
	reply_attr_or_err(req, err, &st);
}

static void memfs_statfs(struct furing_req *req, uint64_t ino)
{
	struct memfs *fs = fs_of(req);
	struct statvfs st;

	memset(&st, 0, sizeof(st));
	st.f_bsize = st.f_frsize = BLOCK_SIZE;
	st.f_blocks = CAPACITY_BYTES / BLOCK_SIZE;
	st.f_files = CAPACITY_NODES;
	st.f_namemax = NAME_LEN_MAX;
	pthread_mutex_lock(&fs->lock);
	st.f_bfree = st.f_bavail = st.f_blocks - (fs->bytes + BLOCK_SIZE - 1) / BLOCK_SIZE;
	st.f_ffree = st.f_favail = CAPACITY_NODES - fs->nodes;
	pthread_mutex_unlock(&fs->lock);
	furing_reply_statfs(req, &st);
}

/* ---- files ---- */

static void memfs_create(struct furing_req *req, uint64_t parent, const char *name, mode_t mode,
			 const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);
	struct furing_entry e;
	struct node *n;

	pthread_mutex_lock(&fs->lock);
	int err = make_node(fs, req, parent, name, S_IFREG | (mode & 07777), &n);
	if (!err) {
		n->opens++;
		take_entry(n, &e);
	}
	pthread_mutex_unlock(&fs->lock);
	if (err) {
		furing_reply_err(req, err);
		return;
	}
	struct furing_open o = {.fh = 0}; /* requests name the node: no per-open state */
	furing_reply_create(req, &e, &o);
}

static void memfs_open(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (!n)
		err = ENOENT;
	else if ((fi->flags & O_TRUNC) && S_ISREG(n->st.st_mode))
		err = resize(fs, n, 0); /* ATOMIC_O_TRUNC (a default): truncating is ours */
	if (!err)
		n->opens++;
	pthread_mutex_unlock(&fs->lock);
	if (err) {
		furing_reply_err(req, err);
		return;
	}
	struct furing_open o = {.fh = 0};
	furing_reply_open(req, &o);
}

/* release and releasedir: the node may be waiting for its last close. */
static void memfs_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (n && n->opens) {
		n->opens--;
		node_put(fs, n);
	}
	pthread_mutex_unlock(&fs->lock);
	furing_reply_err(req, 0);
}

static void memfs_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
		       const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);
	size_t len = 0;
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (!n)
		err = ENOENT;
	else if (!S_ISREG(n->st.st_mode))
		err = EINVAL;
	else if (off < (uint64_t)n->st.st_size)
		len = (uint64_t)n->st.st_size - off < size ? (size_t)((uint64_t)n->st.st_size - off) : size;
	if (len) /* the request's buffer holds @size bytes and is sent without a copy */
		memcpy(furing_req_buf(req), n->data + off, len);
	pthread_mutex_unlock(&fs->lock);
	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_buf(req, len);
}

static void memfs_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
			const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (!n)
		err = ENOENT;
	else if (!S_ISREG(n->st.st_mode))
		err = EINVAL;
	else if (off > CAPACITY_BYTES || size > CAPACITY_BYTES - off)
		err = EFBIG;
	else if (size && off + size > (uint64_t)n->st.st_size)
		err = resize(fs, n, off + size); /* zeros any gap before @off */
	if (!err && size) {
		memcpy(n->data + off, data, size);
		modified(n);
	}
	pthread_mutex_unlock(&fs->lock);
	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_write(req, size);
}

/* Nothing to make durable: memory is as durable as it gets. */
static void memfs_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi)
{
	furing_reply_err(req, 0);
}

/* Allocation is implicit (memory is taken on write), so only the modes that
 * change the content or the size do anything. */
static int fallocate_locked(struct memfs *fs, struct node *n, int mode, uint64_t off, uint64_t len)
{
	uint64_t size = (uint64_t)n->st.st_size;

	if (!S_ISREG(n->st.st_mode))
		return ENODEV;
	if (off > CAPACITY_BYTES || len > CAPACITY_BYTES - off)
		return EFBIG;
	uint64_t end = off + len;
	switch (mode) {
	case 0:
		return end > size ? resize(fs, n, end) : 0;
	case FALLOC_FL_KEEP_SIZE:
		return 0;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		if (off < size)
			memset(n->data + off, 0, (end < size ? end : size) - off);
		modified(n);
		if (!(mode & FALLOC_FL_KEEP_SIZE) && end > size)
			return resize(fs, n, end);
		return 0;
	default:
		return EOPNOTSUPP;
	}
}

static void memfs_fallocate(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
			    const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	int err = n ? fallocate_locked(fs, n, mode, off, len) : ENOENT;
	pthread_mutex_unlock(&fs->lock);
	furing_reply_err(req, err);
}

/* ---- directory listings ---- */

static void memfs_opendir(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct memfs *fs = fs_of(req);
	struct node *dir;

	pthread_mutex_lock(&fs->lock);
	int err = dir_get(fs, ino, NULL, &dir);
	if (!err)
		dir->opens++; /* a removed directory stays listable (empty) while open */
	pthread_mutex_unlock(&fs->lock);
	if (err) {
		furing_reply_err(req, err);
		return;
	}
	struct furing_open o = {.fh = 0};
	furing_reply_open(req, &o);
}

/* ".", ".." at offsets 1 and 2, then the names in the order they were made;
 * an entry's cookie is where the next call continues. In a readdirplus
 * listing each entry that fits hands the kernel a reference to its node. */
static void fill_listing(struct furing_dirbuf *d, struct node *dir, uint64_t off)
{
	const struct node *up = dir->parent ? dir->parent : dir; /* the root is its own parent */

	if (off < 1 && !furing_dirbuf_add(d, ".", &dir->st, 1))
		return;
	if (off < 2 && !furing_dirbuf_add(d, "..", &up->st, 2))
		return;
	for (struct dentry *e = dir->entries; e; e = e->next) {
		if (e->cookie <= off)
			continue;
		if (d->plus) {
			struct furing_entry ent;
			fill_entry(e->node, &ent);
			if (!furing_dirbuf_add_plus(d, e->name, &ent, e->cookie))
				return;
			e->node->nlookup++;
		} else if (!furing_dirbuf_add(d, e->name, &e->node->st, e->cookie)) {
			return;
		}
	}
}

static void list_dir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, bool plus)
{
	struct memfs *fs = fs_of(req);
	struct furing_dirbuf d;
	struct node *dir;

	furing_dirbuf_init(&d, req, size, plus);
	pthread_mutex_lock(&fs->lock);
	int err = dir_get(fs, ino, NULL, &dir);
	if (!err)
		fill_listing(&d, dir, off);
	pthread_mutex_unlock(&fs->lock);
	if (err)
		furing_reply_err(req, err);
	else
		furing_reply_dirbuf(req, &d);
}

static void memfs_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			  const struct furing_file *fi)
{
	list_dir(req, ino, off, size, false);
}

static void memfs_readdirplus(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			      const struct furing_file *fi)
{
	list_dir(req, ino, off, size, true);
}

/* ---- extended attributes ---- */

static struct xattr **xattr_slot(struct node *n, const char *name)
{
	struct xattr **p = &n->xattrs;

	while (*p && strcmp((*p)->name, name) != 0)
		p = &(*p)->next;
	return p;
}

static int setxattr_locked(struct node *n, const char *name, const void *value, size_t size, int flags)
{
	struct xattr **slot = xattr_slot(n, name);

	if (*slot && (flags & XATTR_CREATE))
		return EEXIST;
	if (!*slot && (flags & XATTR_REPLACE))
		return ENODATA;
	void *copy = malloc(size ? size : 1);
	if (!copy)
		return ENOMEM;
	if (size)
		memcpy(copy, value, size);
	if (!*slot) {
		size_t len = strlen(name) + 1;
		struct xattr *x = calloc(1, sizeof(*x) + len);
		if (!x) {
			free(copy);
			return ENOMEM;
		}
		memcpy(x->name, name, len);
		*slot = x; /* at the end: listxattr shows them in the order they were set */
	}
	free((*slot)->value);
	(*slot)->value = copy;
	(*slot)->size = size;
	changed(n);
	return 0;
}

static void memfs_setxattr(struct furing_req *req, uint64_t ino, const char *name, const void *value, size_t size,
			   int flags, uint32_t xflags)
{
	struct memfs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	int err = n ? setxattr_locked(n, name, value, size, flags) : ENOENT;
	pthread_mutex_unlock(&fs->lock);
	furing_reply_err(req, err);
}

/* getxattr and listxattr answer a probe (@size 0) with the length, a buffer
 * that is too small with ERANGE, and otherwise with the bytes. */
static void reply_sized(struct furing_req *req, int err, size_t size, size_t len)
{
	if (err)
		furing_reply_err(req, err);
	else if (size == 0)
		furing_reply_xattr_size(req, len);
	else
		furing_reply_buf(req, len);
}

static void memfs_getxattr(struct furing_req *req, uint64_t ino, const char *name, size_t size)
{
	struct memfs *fs = fs_of(req);
	size_t len = 0;
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	struct xattr *x = n ? *xattr_slot(n, name) : NULL;
	if (!n)
		err = ENOENT;
	else if (!x)
		err = ENODATA;
	else if (size && x->size > size)
		err = ERANGE;
	else if (x->size > furing_req_buf_size(req))
		err = E2BIG; /* only with a tiny furing_config.max_write */
	else
		len = x->size;
	if (!err && size && len)
		memcpy(furing_req_buf(req), x->value, len);
	pthread_mutex_unlock(&fs->lock);
	reply_sized(req, err, size, len);
}

static void memfs_listxattr(struct furing_req *req, uint64_t ino, size_t size)
{
	struct memfs *fs = fs_of(req);
	size_t len = 0;
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	if (!n)
		err = ENOENT;
	for (struct xattr *x = n ? n->xattrs : NULL; x; x = x->next)
		len += strlen(x->name) + 1;
	if (!err && size && len > size)
		err = ERANGE;
	else if (!err && len > furing_req_buf_size(req))
		err = E2BIG;
	if (!err && size) {
		char *p = furing_req_buf(req);
		for (struct xattr *x = n->xattrs; x; x = x->next)
			p = stpcpy(p, x->name) + 1; /* each name with its NUL */
	}
	pthread_mutex_unlock(&fs->lock);
	reply_sized(req, err, size, len);
}

static void memfs_removexattr(struct furing_req *req, uint64_t ino, const char *name)
{
	struct memfs *fs = fs_of(req);
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	struct node *n = node_get(fs, ino);
	struct xattr **slot = n ? xattr_slot(n, name) : NULL;
	if (!n)
		err = ENOENT;
	else if (!*slot)
		err = ENODATA;
	if (!err) {
		struct xattr *x = *slot;
		*slot = x->next;
		free(x->value);
		free(x);
		changed(n);
	}
	pthread_mutex_unlock(&fs->lock);
	furing_reply_err(req, err);
}

static const struct furing_ops memfs_ops = {
	.lookup = memfs_lookup,
	.forget = memfs_forget,
	.forget_multi = memfs_forget_multi,
	.getattr = memfs_getattr,
	.setattr = memfs_setattr,
	.readlink = memfs_readlink,
	.mknod = memfs_mknod,
	.mkdir = memfs_mkdir,
	.unlink = memfs_unlink,
	.rmdir = memfs_rmdir,
	.symlink = memfs_symlink,
	.rename = memfs_rename,
	.link = memfs_link,
	.statfs = memfs_statfs,
	.open = memfs_open,
	.create = memfs_create,
	.read = memfs_read,
	.write = memfs_write,
	.release = memfs_release,
	.fsync = memfs_fsync,
	.fallocate = memfs_fallocate,
	.opendir = memfs_opendir,
	.readdir = memfs_readdir,
	.readdirplus = memfs_readdirplus, /* the library asks for READDIRPLUS(_AUTO) because it is set */
	.releasedir = memfs_release,
	.setxattr = memfs_setxattr,
	.getxattr = memfs_getxattr,
	.listxattr = memfs_listxattr,
	.removexattr = memfs_removexattr,
	/* NULL: flush, access, locks, lseek, copy_file_range, ... The kernel
	 * gets ENOSYS once and then does without (or does it itself). */
};

/* ---- the filesystem's life ---- */

/* An empty filesystem: the root directory (node 1) owned by whoever runs us. */
static int memfs_init_fs(struct memfs *fs)
{
	struct furing_ctx owner = {.uid = getuid(), .gid = getgid()};
	struct node *root;

	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
	fs->nbuckets = 64;
	fs->buckets = calloc(fs->nbuckets, sizeof(*fs->buckets));
	fs->next_ino = FURING_ROOT_ID;
	if (!fs->buckets || node_new(fs, &owner, NULL, S_IFDIR | 0755, &root) != 0)
		return ENOMEM;
	root->st.st_nlink = 2; /* "." and the mount's name for it */
	return 0;
}

static void memfs_free_fs(struct memfs *fs)
{
	for (size_t i = 0; fs->buckets && i < fs->nbuckets; i++) {
		while (fs->buckets[i]) {
			struct node *n = fs->buckets[i];
			fs->buckets[i] = n->hash_next;
			node_free(n);
		}
	}
	free(fs->buckets);
	pthread_mutex_destroy(&fs->lock);
}

/* The library prints nothing by itself. Show its warnings, errors and (with
 * --debug) one line per request, but not the start-up layout (INFO): a
 * quiet program until something goes wrong. */
static void log_quiet(void *data, enum furing_log_level level, const char *msg)
{
	if (level != FURING_LOG_INFO)
		furing_log_stderr(data, level, msg);
}

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "memfs: %s%s (usage: memfs [--io-uring=auto|on|off] [--debug] MOUNTPOINT)\n", msg,
		arg ? arg : "");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"io-uring", required_argument, NULL, 'u'},
		{"debug", no_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	struct furing_config cfg = {
		.fsname = "memfs",
		.subtype = "memfs",
		.default_permissions = true, /* the kernel checks modes and owners */
		.log = log_quiet,
	};
	struct memfs fs;
	char err[512];
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == 'd')
			cfg.debug = true;
		else if (opt == 'u' && !strcmp(optarg, "auto"))
			cfg.io_uring = FURING_IO_URING_AUTO;
		else if (opt == 'u' && !strcmp(optarg, "on"))
			cfg.io_uring = FURING_IO_URING_ON;
		else if (opt == 'u' && !strcmp(optarg, "off"))
			cfg.io_uring = FURING_IO_URING_OFF;
		else if (opt == 'u')
			return usage_error("--io-uring must be auto, on or off, not ", optarg);
		else
			return usage_error("unknown option or missing value: ", argv[optind - 1]);
	}
	if (argc - optind != 1)
		return usage_error("give exactly one MOUNTPOINT", NULL);

	if (memfs_init_fs(&fs) != 0) {
		fprintf(stderr, "memfs: out of memory\n");
		memfs_free_fs(&fs);
		return 1;
	}
	struct furing_session *s = furing_session_new(&memfs_ops, sizeof(memfs_ops), &cfg, sizeof(cfg), &fs, err,
						      sizeof(err));
	int ret = s ? furing_session_handle_signals(s) : -EINVAL;
	if (s && ret < 0)
		snprintf(err, sizeof(err), "cannot install signal handlers: %s", strerror(-ret));
	if (ret == 0)
		ret = furing_session_start(s, argv[optind], err, sizeof(err));
	if (ret == 0)
		ret = furing_session_wait(s); /* a failure's reason is already logged */
	else
		fprintf(stderr, "memfs: %s\n", err);
	furing_session_destroy(s); /* the workers are gone: the nodes are ours alone */
	memfs_free_fs(&fs);
	return ret < 0 ? 1 : 0;
}
