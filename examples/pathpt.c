/* pathpt: a directory mirrored through libfuring's path API.
 *
 *   $ pathpt /srv/data /mnt/data &
 *   $ ls /mnt/data && echo hi > /mnt/data/f && cat /srv/data/f
 *
 * What it shows: a passthrough filesystem written against paths, as one is
 * written against libfuse's fuse.h, and what bench/pathapi.sh measures
 * against libfuse's high-level passthrough. Every operation is the system
 * call of its name on the source directory: the path the library hands over
 * ("/a/b") is taken relative to a descriptor of SOURCE ("a/b", the *at(2)
 * calls), so a rename above a path needs nothing here. An open file's
 * handle is a descriptor of the source file (a directory's also keeps its
 * DIR stream), so reads, writes and fstat of a file unlinked while open
 * keep working, as the library hands path NULL then.
 *
 * The calls block on the worker that runs them: fine for a local directory
 * (they take microseconds); a slow source wants -o threads=N, or the I/O on
 * the worker's ring (furing_req_sqe) and FURING_PATH_ASYNC.
 *
 * Options besides the library's (furing_parse_cmdline), for
 * furing_path_set_timeouts:
 *   -o timeout=SECONDS           how long the kernel caches names and
 *                                attributes (default 1; 0: not at all)
 *   -o negative_timeout=SECONDS  and that a name is missing (default 0)
 *   -o noreaddirplus             listings without attributes (readdirplus
 *                                left NULL): the kernel looks each name up
 * Build against the installed library:
 *   cc -o pathpt pathpt.c $(pkg-config --cflags --libs furing)
 * Usage: pathpt [-f] [-d] [-o OPT[,OPT...]] SOURCE MOUNTPOINT   (pathpt --help) */
#define _GNU_SOURCE 1 /* renameat2 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <furing/furing.h>

/* An open file or directory (fi->fh points at it). */
struct handle {
	int fd;
	DIR *dir; /* opendir only; fd is then its dirfd */
};

static int src_fd; /* the source directory, O_PATH */

/* @path relative to the source: "/" -> ".", "/a/b" -> "a/b". */
static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static struct handle *handle_of(const struct furing_path_file *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static int neg_errno(int ret)
{
	return ret < 0 ? -errno : 0;
}

static int pt_getattr(struct furing_req *req, const char *path, struct stat *st, const struct furing_path_file *fi)
{
	if (fi)
		return neg_errno(fstat(handle_of(fi)->fd, st));
	return neg_errno(fstatat(src_fd, rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int truncate_path(const char *path, uint64_t size)
{
	int fd = openat(src_fd, rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = neg_errno(ftruncate(fd, (off_t)size));
	close(fd);
	return err;
}

/* Through the open file when there is one (the only way once unlinked). */
static int pt_setattr(struct furing_req *req, const char *path, const struct furing_setattr *a,
		      const struct furing_path_file *fi)
{
	int fd = fi ? handle_of(fi)->fd : -1;
	int err = 0;
	if (a->valid & FURING_SET_MODE)
		err = neg_errno(fd >= 0 ? fchmod(fd, a->mode & 07777) : fchmodat(src_fd, rel(path), a->mode & 07777, 0));
	if (!err && (a->valid & (FURING_SET_UID | FURING_SET_GID))) {
		uid_t uid = a->valid & FURING_SET_UID ? a->uid : (uid_t)-1;
		gid_t gid = a->valid & FURING_SET_GID ? a->gid : (gid_t)-1;
		err = neg_errno(fd >= 0 ? fchown(fd, uid, gid)
					: fchownat(src_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
	}
	if (!err && (a->valid & FURING_SET_SIZE))
		err = fd >= 0 ? neg_errno(ftruncate(fd, (off_t)a->size)) : truncate_path(path, a->size);
	struct timespec ts[2];
	if (!err && furing_setattr_times(a, ts))
		err = neg_errno(fd >= 0 ? futimens(fd, ts) : utimensat(src_fd, rel(path), ts, AT_SYMLINK_NOFOLLOW));
	return err;
}

static int pt_mknod(struct furing_req *req, const char *path, mode_t mode, dev_t rdev)
{
	return neg_errno(mknodat(src_fd, rel(path), mode, rdev));
}

static int pt_mkdir(struct furing_req *req, const char *path, mode_t mode)
{
	return neg_errno(mkdirat(src_fd, rel(path), mode));
}

static int pt_unlink(struct furing_req *req, const char *path)
{
	return neg_errno(unlinkat(src_fd, rel(path), 0));
}

static int pt_rmdir(struct furing_req *req, const char *path)
{
	return neg_errno(unlinkat(src_fd, rel(path), AT_REMOVEDIR));
}

static int pt_rename(struct furing_req *req, const char *from, const char *to, unsigned int flags)
{
	return neg_errno(renameat2(src_fd, rel(from), src_fd, rel(to), flags));
}

static int pt_statfs(struct furing_req *req, const char *path, struct statvfs *st)
{
	return neg_errno(fstatvfs(src_fd, st));
}

/* A handle for descriptor @fd into fi->fh; closes @fd on failure. */
static int set_handle(struct furing_path_file *fi, int fd)
{
	if (fd < 0)
		return -errno;
	struct handle *h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int pt_open(struct furing_req *req, const char *path, struct furing_path_file *fi)
{
	return set_handle(fi, openat(src_fd, rel(path), fi->flags | O_CLOEXEC));
}

static int pt_create(struct furing_req *req, const char *path, mode_t mode, struct furing_path_file *fi)
{
	return set_handle(fi, openat(src_fd, rel(path), fi->flags | O_CREAT | O_CLOEXEC, mode));
}

static int pt_read(struct furing_req *req, const char *path, void *buf, uint32_t size, uint64_t off,
		   const struct furing_path_file *fi)
{
	ssize_t n = pread(handle_of(fi)->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : (int)n;
}

static int pt_write(struct furing_req *req, const char *path, const void *buf, uint32_t size, uint64_t off,
		    const struct furing_path_file *fi)
{
	ssize_t n = pwrite(handle_of(fi)->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : (int)n;
}

static int pt_fsync(struct furing_req *req, const char *path, bool datasync, const struct furing_path_file *fi)
{
	int fd = handle_of(fi)->fd;
	return neg_errno(datasync ? fdatasync(fd) : fsync(fd));
}

static int pt_fallocate(struct furing_req *req, const char *path, int mode, uint64_t off, uint64_t len,
			const struct furing_path_file *fi)
{
	return neg_errno(fallocate(handle_of(fi)->fd, mode, (off_t)off, (off_t)len));
}

static int pt_lseek(struct furing_req *req, const char *path, uint64_t *off, int whence,
		    const struct furing_path_file *fi)
{
	off_t at = lseek(handle_of(fi)->fd, (off_t)*off, whence);
	if (at < 0)
		return -errno;
	*off = (uint64_t)at;
	return 0;
}

static int pt_copy_file_range(struct furing_req *req, const char *path_in, const struct furing_path_file *fi_in,
			      uint64_t off_in, const char *path_out, const struct furing_path_file *fi_out,
			      uint64_t off_out, size_t len, unsigned int flags)
{
	loff_t in = (loff_t)off_in, out = (loff_t)off_out;
	ssize_t n = copy_file_range(handle_of(fi_in)->fd, &in, handle_of(fi_out)->fd, &out, len, flags);
	return n < 0 ? -errno : (int)n;
}

static int pt_fsyncdir(struct furing_req *req, const char *path, bool datasync, const struct furing_path_file *fi)
{
	return pt_fsync(req, path, datasync, fi);
}

static int pt_release(struct furing_req *req, const char *path, const struct furing_path_file *fi)
{
	struct handle *h = handle_of(fi);
	if (h->dir)
		closedir(h->dir); /* closes h->fd too */
	else
		close(h->fd);
	free(h);
	return 0;
}

static int pt_opendir(struct furing_req *req, const char *path, struct furing_path_file *fi)
{
	int err = set_handle(fi, openat(src_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (err)
		return err;
	struct handle *h = handle_of(fi);
	h->dir = fdopendir(h->fd);
	if (!h->dir) {
		err = -errno;
		close(h->fd);
		free(h);
		return err;
	}
	return 0;
}

/* The whole listing, each call (next_off 0: the library keeps it and serves
 * the kernel's later offsets), from the start of the stream. With @attrs
 * each entry goes with its attributes (an lstat in the directory): the
 * library answers the kernel's READDIRPLUS with them, so `ls -l` costs no
 * LOOKUP per name; a name that vanished since goes without (NULL). */
static int list_dir(const struct furing_path_file *fi, furing_path_fill_fn fill, void *dh, bool attrs)
{
	DIR *dir = handle_of(fi)->dir;
	rewinddir(dir);
	for (;;) {
		errno = 0;
		struct dirent *d = readdir(dir);
		if (!d)
			return -errno;
		struct stat st = {.st_ino = d->d_ino, .st_mode = (mode_t)DTTOIF(d->d_type)};
		bool ok = !attrs || fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
		if (fill(dh, d->d_name, ok ? &st : NULL, 0) < 0)
			return -ENOMEM;
	}
}

static int pt_readdir(struct furing_req *req, const char *path, uint64_t off, furing_path_fill_fn fill, void *dh,
		      const struct furing_path_file *fi)
{
	return list_dir(fi, fill, dh, false);
}

static int pt_readdirplus(struct furing_req *req, const char *path, uint64_t off, furing_path_fill_fn fill,
			  void *dh, const struct furing_path_file *fi)
{
	return list_dir(fi, fill, dh, true);
}

static int pt_symlink(struct furing_req *req, const char *target, const char *path)
{
	return neg_errno(symlinkat(target, src_fd, rel(path)));
}

static int pt_readlink(struct furing_req *req, const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(src_fd, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int pt_link(struct furing_req *req, const char *from, const char *to)
{
	return neg_errno(linkat(src_fd, rel(from), src_fd, rel(to), 0));
}

/* There are no *at calls for extended attributes before Linux 6.13: the
 * source directory's descriptor is reached through /proc/self/fd. */
static int xattr_path(char *buf, size_t size, const char *path)
{
	int n = snprintf(buf, size, "/proc/self/fd/%d/%s", src_fd, rel(path));
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int pt_setxattr(struct furing_req *req, const char *path, const char *name, const void *value, size_t size,
		       int flags)
{
	char p[4096 + 64];
	int err = xattr_path(p, sizeof(p), path);
	return err ? err : neg_errno(lsetxattr(p, name, value, size, flags));
}

static int pt_getxattr(struct furing_req *req, const char *path, const char *name, void *buf, size_t size)
{
	char p[4096 + 64];
	int err = xattr_path(p, sizeof(p), path);
	if (err)
		return err;
	ssize_t n = lgetxattr(p, name, buf, size);
	return n < 0 ? -errno : (int)n;
}

static int pt_listxattr(struct furing_req *req, const char *path, char *buf, size_t size)
{
	char p[4096 + 64];
	int err = xattr_path(p, sizeof(p), path);
	if (err)
		return err;
	ssize_t n = llistxattr(p, buf, size);
	return n < 0 ? -errno : (int)n;
}

static int pt_removexattr(struct furing_req *req, const char *path, const char *name)
{
	char p[4096 + 64];
	int err = xattr_path(p, sizeof(p), path);
	return err ? err : neg_errno(lremovexattr(p, name));
}

static struct furing_path_ops pathpt_ops = {
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.statfs = pt_statfs,
	.open = pt_open,
	.create = pt_create,
	.read = pt_read,
	.write = pt_write,
	.fsync = pt_fsync,
	.release = pt_release,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_release,
	.symlink = pt_symlink,
	.readlink = pt_readlink,
	.link = pt_link,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.fallocate = pt_fallocate,
	.lseek = pt_lseek,
	.copy_file_range = pt_copy_file_range,
	.fsyncdir = pt_fsyncdir,
};

/* pathpt's own -o items (the library took its own already); false on an
 * unknown one or a bad number. */
static bool parse_own(const char *opts, double *timeout, double *negative, bool *plus)
{
	char *copy = strdup(opts), *s = copy, *val, *end;
	char *const keys[] = {"timeout", "negative_timeout", "noreaddirplus", NULL};
	bool ok = copy != NULL;
	while (ok && *s) {
		int k = getsubopt(&s, keys, &val);
		if (k == 2) {
			ok = !val;
			*plus = false;
			continue;
		}
		double *to = k == 0 ? timeout : negative;
		ok = k >= 0 && val && (*to = strtod(val, &end)) >= 0 && end != val && !*end;
	}
	free(copy);
	return ok;
}

/* Quiet but for warnings, errors and the counters SIGUSR1 asks for. */
static void log_quiet(void *data, enum furing_log_level level, const char *msg)
{
	if (level != FURING_LOG_INFO || !strncmp(msg, "stats ", 6))
		furing_log_stderr(data, level, msg);
}

int main(int argc, char **argv)
{
	/* Each worker on the CPUs of its queues: a caller's request is then
	 * served on its own CPU, a cheap switch rather than a cross-CPU wake-up
	 * (on this 2-CPU machine twice the metadata rate of unpinned workers,
	 * bench/README.md "bench/pathapi.sh"). */
	struct furing_config cfg = {.fsname = "pathpt", .subtype = "pathpt", .log = log_quiet,
				    .default_permissions = true, .pin = FURING_PIN_ON};
	struct furing_cmdline cl;
	char err[512];
	double timeout = 1.0, negative = 0.0;
	bool plus = true;

	if (furing_parse_cmdline(argc, argv, FURING_CMDLINE_ARGS | FURING_CMDLINE_FS_OPTIONS, &cl, sizeof(cl), &cfg,
				 sizeof(cfg), err, sizeof(err)) < 0) {
		fprintf(stderr, "pathpt: %s (see pathpt --help)\n", err);
		return 2;
	}
	if (cl.help || cl.version) {
		if (cl.help)
			printf("usage: pathpt [OPTIONS] SOURCE MOUNTPOINT\n\noptions:\n%s"
			       "    -o timeout=SECONDS     kernel cache of names and attributes (default 1)\n"
			       "    -o negative_timeout=SECONDS  of names found missing (default 0)\n"
			       "    -o noreaddirplus       listings without attributes (a LOOKUP per name)\n",
			       furing_cmdline_help());
		else
			printf("pathpt (libfuring %s)\n", furing_version());
		furing_cmdline_free(&cl);
		return 0;
	}
	if (cl.nargs != 1 || !cl.mountpoint) {
		fprintf(stderr, "pathpt: need SOURCE and MOUNTPOINT (see pathpt --help)\n");
		furing_cmdline_free(&cl);
		return 2;
	}
	if (cl.fs_options && !parse_own(cl.fs_options, &timeout, &negative, &plus)) {
		fprintf(stderr, "pathpt: bad option in '%s' (see pathpt --help)\n", cl.fs_options);
		furing_cmdline_free(&cl);
		return 2;
	}
	src_fd = open(cl.args[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (src_fd < 0) {
		fprintf(stderr, "pathpt: %s: %s\n", cl.args[0], strerror(errno));
		furing_cmdline_free(&cl);
		return 1;
	}
	if (!plus)
		pathpt_ops.readdirplus = NULL;
	struct furing_path *p = furing_path_new(&pathpt_ops, sizeof(pathpt_ops), NULL);
	if (!p || furing_path_set_timeouts(p, timeout, timeout, negative) < 0) {
		fprintf(stderr, "pathpt: %s\n", strerror(errno));
		return 1;
	}
	int ret = furing_main(cl.mountpoint, cl.foreground ? FURING_MAIN_FOREGROUND : 0, furing_path_lowlevel_ops(),
			      sizeof(struct furing_ops), &cfg, sizeof(cfg), p);
	furing_path_destroy(p);
	furing_cmdline_free(&cl);
	close(src_fd);
	return ret;
}
