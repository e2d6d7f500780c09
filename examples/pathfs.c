/* pathfs: an in-memory filesystem written against libfuring's path API.
 *
 *   $ pathfs /mnt/p &
 *   $ mkdir /mnt/p/d && echo hi > /mnt/p/d/f && mv /mnt/p/d/f /mnt/p/g
 *
 * What it shows: operations take paths and answer by returning 0 or
 * -errno, as with libfuse's high-level API; the library keeps the node
 * ids, lookup counts and renames. The filesystem is a hash of full paths
 * to files; an open file's handle (fi->fh) points at its file, so a file
 * unlinked while open can still be read and written until its release
 * (the library then hands path NULL). A directory listing scans the table
 * (fine for an example; a real filesystem keeps children lists).
 *
 * One mutex guards everything: operations only touch memory.
 *
 * Build against the installed library:
 *   cc -o pathfs pathfs.c $(pkg-config --cflags --libs furing)
 * Usage: pathfs [-f] [-d] [-o OPT[,OPT...]] MOUNTPOINT   (pathfs --help) */
#define _GNU_SOURCE 1 /* RENAME_NOREPLACE, RENAME_EXCHANGE */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <furing/furing.h>

struct file {
	struct file *next;  /* hash chain; */
	char *path;         /* NULL once unlinked (kept while open) */
	struct stat st;
	char *data;
	size_t cap;
	unsigned int opens;
};

struct pathfs {
	pthread_mutex_t lock;
	struct file **buckets;
	size_t nbuckets, count;
	uint64_t next_ino;
};

static struct pathfs *fs_of(struct furing_req *req)
{
	return furing_path_fs(req);
}

static size_t hash(const char *s)
{
	size_t h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static struct file *find(struct pathfs *fs, const char *path)
{
	for (struct file *f = fs->buckets[hash(path) % fs->nbuckets]; f; f = f->next)
		if (strcmp(f->path, path) == 0)
			return f;
	return NULL;
}

static void unhash(struct pathfs *fs, struct file *f)
{
	struct file **p = &fs->buckets[hash(f->path) % fs->nbuckets];
	while (*p != f)
		p = &(*p)->next;
	*p = f->next;
	fs->count--;
}

static void rehash(struct pathfs *fs, struct file *f)
{
	struct file **head = &fs->buckets[hash(f->path) % fs->nbuckets];
	f->next = *head;
	*head = f;
	fs->count++;
}

static void file_free(struct file *f)
{
	free(f->path);
	free(f->data);
	free(f);
}

/* Drops a path (unlink, rmdir, renamed over); an open file lives on. */
static void drop(struct pathfs *fs, struct file *f)
{
	unhash(fs, f);
	free(f->path);
	f->path = NULL;
	if (!f->opens)
		file_free(f);
}

/* The directory holding @path ("/a/b" -> "/a"), in @buf. */
static struct file *parent_of(struct pathfs *fs, const char *path)
{
	char buf[4096];
	const char *slash = strrchr(path, '/');
	size_t len = (size_t)(slash - path);
	if (len >= sizeof(buf))
		return NULL;
	memcpy(buf, path, len);
	buf[len] = '\0';
	return find(fs, len ? buf : "/");
}

static int make(struct furing_req *req, const char *path, mode_t mode, struct file **out)
{
	struct pathfs *fs = fs_of(req);
	struct file *dir = parent_of(fs, path);
	if (!dir)
		return -ENOENT;
	if (!S_ISDIR(dir->st.st_mode))
		return -ENOTDIR;
	if (find(fs, path))
		return -EEXIST;
	if (strlen(strrchr(path, '/') + 1) > 255)
		return -ENAMETOOLONG;
	struct file *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return -ENOMEM;
	}
	const struct furing_ctx *ctx = furing_req_ctx(req);
	clock_gettime(CLOCK_REALTIME, &f->st.st_mtim);
	f->st.st_atim = f->st.st_ctim = f->st.st_mtim;
	f->st.st_mode = mode;
	f->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	f->st.st_uid = ctx->uid;
	f->st.st_gid = ctx->gid;
	f->st.st_ino = fs->next_ino++;
	f->st.st_blksize = 4096;
	if (S_ISDIR(mode))
		dir->st.st_nlink++;
	dir->st.st_mtim = dir->st.st_ctim = f->st.st_mtim;
	rehash(fs, f);
	*out = f;
	return 0;
}

/* The file an operation means: its open handle, else its path. */
static struct file *file_of(struct pathfs *fs, const char *path, const struct furing_path_file *fi)
{
	if (fi && fi->fh)
		return (struct file *)(uintptr_t)fi->fh;
	return path ? find(fs, path) : NULL;
}

#define LOCKED(fs, expr)                               \
	({                                             \
		pthread_mutex_lock(&(fs)->lock);       \
		int r_ = (expr);                       \
		pthread_mutex_unlock(&(fs)->lock);     \
		r_;                                    \
	})

static int do_getattr(struct pathfs *fs, const char *path, struct stat *st, const struct furing_path_file *fi)
{
	struct file *f = file_of(fs, path, fi);
	if (!f)
		return -ENOENT;
	*st = f->st;
	return 0;
}

static int pf_getattr(struct furing_req *req, const char *path, struct stat *st, const struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	return LOCKED(fs, do_getattr(fs, path, st, fi));
}

static int do_truncate(struct file *f, uint64_t size)
{
	if (size > f->cap) {
		char *d = realloc(f->data, size);
		if (!d)
			return -ENOSPC;
		f->data = d;
		f->cap = size;
	}
	if (size > (uint64_t)f->st.st_size)
		memset(f->data + f->st.st_size, 0, size - (uint64_t)f->st.st_size);
	f->st.st_size = (off_t)size;
	f->st.st_blocks = (blkcnt_t)((size + 511) / 512);
	return 0;
}

static int do_setattr(struct pathfs *fs, const char *path, const struct furing_setattr *a,
		      const struct furing_path_file *fi)
{
	struct file *f = file_of(fs, path, fi);
	struct timespec now;
	if (!f)
		return -ENOENT;
	clock_gettime(CLOCK_REALTIME, &now);
	if (a->valid & FURING_SET_SIZE) {
		if (S_ISDIR(f->st.st_mode))
			return -EISDIR;
		int err = do_truncate(f, a->size);
		if (err)
			return err;
		f->st.st_mtim = now;
	}
	if (a->valid & FURING_SET_MODE)
		f->st.st_mode = (f->st.st_mode & S_IFMT) | (a->mode & 07777);
	if (a->valid & FURING_SET_UID)
		f->st.st_uid = a->uid;
	if (a->valid & FURING_SET_GID)
		f->st.st_gid = a->gid;
	struct timespec ts[2];
	if (furing_setattr_times(a, ts)) {
		if (ts[0].tv_nsec != UTIME_OMIT)
			f->st.st_atim = ts[0].tv_nsec == UTIME_NOW ? now : ts[0];
		if (ts[1].tv_nsec != UTIME_OMIT)
			f->st.st_mtim = ts[1].tv_nsec == UTIME_NOW ? now : ts[1];
	}
	f->st.st_ctim = now;
	return 0;
}

static int pf_setattr(struct furing_req *req, const char *path, const struct furing_setattr *a,
		      const struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	return LOCKED(fs, do_setattr(fs, path, a, fi));
}

static int pf_mknod(struct furing_req *req, const char *path, mode_t mode, dev_t rdev)
{
	struct pathfs *fs = fs_of(req);
	struct file *f;
	if (!S_ISREG(mode))
		return -EPERM; /* regular files only, in this example */
	return LOCKED(fs, make(req, path, mode, &f));
}

static int pf_mkdir(struct furing_req *req, const char *path, mode_t mode)
{
	struct pathfs *fs = fs_of(req);
	struct file *f;
	return LOCKED(fs, make(req, path, S_IFDIR | (mode & 07777), &f));
}

static int pf_create(struct furing_req *req, const char *path, mode_t mode, struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	struct file *f = NULL;
	pthread_mutex_lock(&fs->lock);
	int err = make(req, path, S_IFREG | (mode & 07777), &f);
	if (!err) {
		f->opens++;
		fi->fh = (uintptr_t)f;
	}
	pthread_mutex_unlock(&fs->lock);
	return err;
}

/* Whether a directory has a name below it. */
static bool has_children(struct pathfs *fs, const char *dir)
{
	size_t len = strlen(dir);
	for (size_t i = 0; i < fs->nbuckets; i++)
		for (struct file *f = fs->buckets[i]; f; f = f->next)
			if (strncmp(f->path, dir, len) == 0 && f->path[len] == '/')
				return true;
	return false;
}

static int do_remove(struct pathfs *fs, const char *path, bool dir)
{
	struct file *f = find(fs, path);
	if (!f)
		return -ENOENT;
	if (dir != S_ISDIR(f->st.st_mode))
		return dir ? -ENOTDIR : -EISDIR;
	if (dir && has_children(fs, path))
		return -ENOTEMPTY;
	struct file *p = parent_of(fs, path);
	if (dir)
		p->st.st_nlink--;
	clock_gettime(CLOCK_REALTIME, &p->st.st_mtim);
	drop(fs, f);
	return 0;
}

static int pf_unlink(struct furing_req *req, const char *path)
{
	struct pathfs *fs = fs_of(req);
	return LOCKED(fs, do_remove(fs, path, false));
}

static int pf_rmdir(struct furing_req *req, const char *path)
{
	struct pathfs *fs = fs_of(req);
	return LOCKED(fs, do_remove(fs, path, true));
}

/* Renames every name at or below @from to the same place below @to. */
static int move_tree(struct pathfs *fs, const char *from, const char *to)
{
	size_t len = strlen(from), n = 0;
	struct file **moving = malloc(fs->count * sizeof(*moving));
	if (!moving)
		return -ENOMEM;
	for (size_t i = 0; i < fs->nbuckets; i++)
		for (struct file *f = fs->buckets[i]; f; f = f->next)
			if (strncmp(f->path, from, len) == 0 && (f->path[len] == '/' || !f->path[len]))
				moving[n++] = f;
	for (size_t i = 0; i < n; i++) {
		struct file *f = moving[i];
		char *p;
		if (asprintf(&p, "%s%s", to, f->path + len) < 0)
			continue; /* ENOMEM mid-way: that name keeps its old path */
		unhash(fs, f);
		free(f->path);
		f->path = p;
		rehash(fs, f);
	}
	free(moving);
	return 0;
}

static int do_rename(struct pathfs *fs, const char *from, const char *to, unsigned int flags)
{
	struct file *f = find(fs, from), *t = find(fs, to), *tdir = parent_of(fs, to);
	size_t flen = strlen(from);
	if (!f || !tdir)
		return -ENOENT;
	if (strncmp(to, from, flen) == 0 && to[flen] == '/')
		return -EINVAL; /* into itself */
	if (t && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (flags & RENAME_EXCHANGE) {
		if (!t)
			return -ENOENT;
		static const char tmp[] = "/\x01pathfs-exchange";
		move_tree(fs, from, tmp);
		move_tree(fs, to, from);
		return move_tree(fs, tmp, to);
	}
	if (t == f)
		return 0;
	if (t) {
		if (S_ISDIR(t->st.st_mode) != S_ISDIR(f->st.st_mode))
			return S_ISDIR(t->st.st_mode) ? -EISDIR : -ENOTDIR;
		if (S_ISDIR(t->st.st_mode) && has_children(fs, to))
			return -ENOTEMPTY;
		if (S_ISDIR(t->st.st_mode))
			tdir->st.st_nlink--;
		drop(fs, t);
	}
	if (S_ISDIR(f->st.st_mode)) {
		parent_of(fs, from)->st.st_nlink--;
		tdir->st.st_nlink++;
	}
	return move_tree(fs, from, to);
}

static int pf_rename(struct furing_req *req, const char *from, const char *to, unsigned int flags)
{
	struct pathfs *fs = fs_of(req);
	return LOCKED(fs, do_rename(fs, from, to, flags));
}

static int pf_open(struct furing_req *req, const char *path, struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	pthread_mutex_lock(&fs->lock);
	struct file *f = find(fs, path);
	if (f) {
		f->opens++;
		fi->fh = (uintptr_t)f;
	}
	pthread_mutex_unlock(&fs->lock);
	return f ? 0 : -ENOENT;
}

static int pf_release(struct furing_req *req, const char *path, const struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	struct file *f = (struct file *)(uintptr_t)fi->fh;
	pthread_mutex_lock(&fs->lock);
	if (!--f->opens && !f->path)
		file_free(f); /* unlinked while open: gone with its last close */
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

static int pf_read(struct furing_req *req, const char *path, void *buf, uint32_t size, uint64_t off,
		   const struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	struct file *f = (struct file *)(uintptr_t)fi->fh;
	pthread_mutex_lock(&fs->lock);
	uint64_t len = (uint64_t)f->st.st_size;
	uint32_t n = off >= len ? 0 : (uint32_t)(len - off < size ? len - off : size);
	memcpy(buf, f->data + off, n);
	pthread_mutex_unlock(&fs->lock);
	return (int)n;
}

static int do_write(struct file *f, const void *buf, uint32_t size, uint64_t off)
{
	if (off + size > (uint64_t)f->st.st_size) {
		int err = do_truncate(f, off + size);
		if (err)
			return err;
	}
	memcpy(f->data + off, buf, size);
	clock_gettime(CLOCK_REALTIME, &f->st.st_mtim);
	f->st.st_ctim = f->st.st_mtim;
	return (int)size;
}

static int pf_write(struct furing_req *req, const char *path, const void *buf, uint32_t size, uint64_t off,
		    const struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	return LOCKED(fs, do_write((struct file *)(uintptr_t)fi->fh, buf, size, off));
}

/* Every name directly below @path: "." and "..", then a scan of the table.
 * next_off 0: the library keeps the listing for the later offsets. */
static int do_readdir(struct pathfs *fs, const char *path, furing_path_fill_fn fill, void *dh)
{
	size_t len = strcmp(path, "/") == 0 ? 0 : strlen(path);
	struct file *d = find(fs, path);
	if (!d)
		return -ENOENT;
	if (fill(dh, ".", &d->st, 0) < 0 || fill(dh, "..", NULL, 0) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < fs->nbuckets; i++)
		for (struct file *f = fs->buckets[i]; f; f = f->next)
			if (strncmp(f->path, path, len) == 0 && f->path[len] == '/' && f->path[len + 1] &&
			    !strchr(f->path + len + 1, '/') && fill(dh, f->path + len + 1, &f->st, 0) < 0)
				return -ENOMEM;
	return 0;
}

static int pf_readdir(struct furing_req *req, const char *path, uint64_t off, furing_path_fill_fn fill, void *dh,
		      const struct furing_path_file *fi)
{
	struct pathfs *fs = fs_of(req);
	return LOCKED(fs, do_readdir(fs, path, fill, dh));
}

static int pf_statfs(struct furing_req *req, const char *path, struct statvfs *st)
{
	struct pathfs *fs = fs_of(req);
	st->f_bsize = st->f_frsize = 4096;
	st->f_namemax = 255;
	st->f_files = LOCKED(fs, (int)fs->count);
	/* The asynchronous form, for show: a filesystem that answers later
	 * (from a completion or another thread) returns FURING_PATH_ASYNC and
	 * calls furing_path_done once; the answer may come before the return,
	 * as here, after which nothing handed to the operation is touched. */
	furing_path_done(req, 0);
	return FURING_PATH_ASYNC;
}

static const struct furing_path_ops pathfs_ops = {
	.getattr = pf_getattr,
	.setattr = pf_setattr,
	.mknod = pf_mknod,
	.mkdir = pf_mkdir,
	.unlink = pf_unlink,
	.rmdir = pf_rmdir,
	.rename = pf_rename,
	.statfs = pf_statfs,
	.open = pf_open,
	.create = pf_create,
	.read = pf_read,
	.write = pf_write,
	.release = pf_release,
	.readdir = pf_readdir,
	/* Its listing hands over each file's whole stat already: the same
	 * function serves READDIRPLUS, and the kernel looks up no name it listed. */
	.readdirplus = pf_readdir,
};

static void log_quiet(void *data, enum furing_log_level level, const char *msg)
{
	if (level != FURING_LOG_INFO)
		furing_log_stderr(data, level, msg);
}

int main(int argc, char **argv)
{
	struct furing_config cfg = {.fsname = "pathfs", .subtype = "pathfs", .log = log_quiet,
				    .default_permissions = true};
	struct furing_cmdline cl;
	char err[512];
	static struct pathfs fs = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_ino = 2};

	if (furing_parse_cmdline(argc, argv, 0, &cl, sizeof(cl), &cfg, sizeof(cfg), err, sizeof(err)) < 0) {
		fprintf(stderr, "pathfs: %s (see pathfs --help)\n", err);
		return 2;
	}
	if (cl.help || cl.version) {
		if (cl.help)
			printf("usage: pathfs [OPTIONS] MOUNTPOINT\n\noptions:\n%s", furing_cmdline_help());
		else
			printf("pathfs (libfuring %s)\n", furing_version());
		furing_cmdline_free(&cl);
		return 0;
	}
	fs.nbuckets = 4096;
	fs.buckets = calloc(fs.nbuckets, sizeof(*fs.buckets));
	struct file *root = calloc(1, sizeof(*root));
	struct furing_path *p = furing_path_new(&pathfs_ops, sizeof(pathfs_ops), &fs);
	if (!fs.buckets || !root || !(root->path = strdup("/")) || !p) {
		fprintf(stderr, "pathfs: out of memory\n");
		return 1;
	}
	root->st = (struct stat){.st_ino = 1, .st_mode = S_IFDIR | 0755, .st_nlink = 2, .st_blksize = 4096};
	rehash(&fs, root);
	int ret = furing_main(cl.mountpoint, cl.foreground ? FURING_MAIN_FOREGROUND : 0, furing_path_lowlevel_ops(),
			      sizeof(struct furing_ops), &cfg, sizeof(cfg), p);
	furing_path_destroy(p);
	furing_cmdline_free(&cl);
	return ret;
}
