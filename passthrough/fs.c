/* The passthrough filesystem as a whole: SOURCE opened and checked, the
 * cache mode turned into timeouts and INIT capabilities, and the
 * operations table. */
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "../fscommon/inline_io.h"
#include "pt.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

/* Timeouts of the cache modes (seconds). */
#define AUTO_TIMEOUT_S 1.0
#define ALWAYS_TIMEOUT_S 86400.0

/* Filesystems whose close(2) has nothing to do (no ->flush: no delayed
 * errors to report, no writeback at close): a FLUSH would be a dup and a
 * close for nothing, so their files are opened with FOPEN_NOFLUSH. Network
 * and FUSE filesystems, and anything unknown, keep FLUSH. */
static bool close_is_local(unsigned long type)
{
	switch (type) {
	case EXT4_SUPER_MAGIC: /* also ext2, ext3 */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
	case RAMFS_MAGIC:
	case F2FS_SUPER_MAGIC:
		return true;
	default:
		return false;
	}
}

/* Every node the kernel knows holds an O_PATH handle: a directory of a
 * million files listed with readdirplus holds a million. Raise the soft
 * limit as far as allowed (a root daemon: the kernel's nr_open). */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (geteuid() == 0) {
		FILE *f = fopen("/proc/sys/fs/nr_open", "re");
		unsigned long n = 0;
		if (f) {
			if (fscanf(f, "%lu", &n) == 1 && n > rl.rlim_max)
				rl.rlim_max = n;
			fclose(f);
		}
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

struct pt_fs *pt_open(const struct pt_opts *o, char *err, size_t errlen)
{
	struct stat st;
	struct statfs sfs;

	if (o->kernel_passthrough && geteuid() != 0) {
		snprintf(err, errlen,
			 "--kernel-passthrough needs root: the kernel lets only CAP_SYS_ADMIN register backing files");
		return NULL;
	}
	struct pt_fs *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	fs->o = *o;
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->handles.next = fs->handles.prev = &fs->handles;
	fs->source = realpath(o->source, NULL);
	if (!fs->source) {
		snprintf(err, errlen, "SOURCE %s: %s", o->source, strerror(errno));
		free(fs);
		return NULL;
	}
	int fd = open(fs->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0) {
		snprintf(err, errlen, "SOURCE %s: %s", o->source,
			 errno == ENOTDIR ? "not a directory" : strerror(errno));
		if (fd >= 0)
			close(fd);
		free(fs->source);
		free(fs);
		return NULL;
	}
	fs->root_dev = st.st_dev;
	fs->root_ino = st.st_ino;
	fs->root_mem = inline_io_in_memory((long)sfs.f_type);
	fs->root_local = close_is_local((unsigned long)sfs.f_type);
	fs->timeout = o->cache == PT_CACHE_NONE ? 0 : o->cache == PT_CACHE_ALWAYS ? ALWAYS_TIMEOUT_S : AUTO_TIMEOUT_S;
	fs->negative_cache = o->cache != PT_CACHE_NONE;
	fs->inline_mem_io = o->backend_io == PT_IO_AUTO;
	fs->inline_all_io = o->backend_io == PT_IO_INLINE;
	fs->inline_calls = fs->inline_all_io || (o->backend_io == PT_IO_AUTO && fs->root_mem);
	fs->inline_names = o->backend_io == PT_IO_AUTO && fs->root_local && !fs->root_mem;
	fs->uid = geteuid();
	fs->gid = getegid();
	fs->ident = fs->uid == 0;
	be_probe(fs);
	raise_nofile();
	if (pt_table_init(fs, fd, &st, fs->root_mem, err, errlen) < 0) {
		close(fd);
		free(fs->source);
		free(fs);
		return NULL;
	}
	/* A backing file on a stacking filesystem (FUSE, overlayfs) needs one
	 * level more (max_stack_depth 2); elsewhere 1 keeps this mount
	 * stackable itself. */
	fs->stack_depth = (sfs.f_type == FUSE_SUPER_MAGIC || sfs.f_type == OVERLAYFS_SUPER_MAGIC) ? 2 : 1;
	return fs;
}

void pt_close(struct pt_fs *fs)
{
	if (!fs)
		return;
	pt_handles_free_all(fs);
	pt_table_destroy(fs);
	pthread_mutex_destroy(&fs->handles_lock);
	free(fs->source);
	free(fs);
}

mode_t pt_root_mode(const struct pt_fs *fs)
{
	struct stat st;

	if (fstat(fs->root->fd, &st) < 0)
		return S_IFDIR | 0755;
	return S_IFDIR | (st.st_mode & 07777);
}

const char *pt_source(const struct pt_fs *fs)
{
	return fs->source;
}

const char *pt_init_error(const struct pt_fs *fs)
{
	return fs->init_error;
}

bool pt_writeback_active(const struct pt_fs *fs)
{
	return fs->writeback;
}

bool pt_passthrough_active(const struct pt_fs *fs)
{
	return fs->passthrough;
}

/* ---- INIT ---- */

static int pt_init(void *fsp, struct furing_conn *c)
{
	struct pt_fs *fs = fsp;
	uint64_t want = c->want | FURING_CAP_DIRECT_IO_ALLOW_MMAP; /* mmap of FOPEN_DIRECT_IO files */

	if (fs->o.cache == PT_CACHE_NONE)
		/* Entries expire at once: a readdirplus would look up what the
		 * kernel cannot keep. */
		want &= ~(FURING_CAP_READDIRPLUS | FURING_CAP_READDIRPLUS_AUTO);
	else
		want |= FURING_CAP_CACHE_SYMLINKS;
	if (fs->o.kernel_passthrough) {
		if (!(c->capable & FURING_CAP_PASSTHROUGH)) {
			snprintf(fs->init_error, sizeof(fs->init_error),
				 "--kernel-passthrough: the kernel does not offer FUSE passthrough "
				 "(it needs Linux 6.9+ built with CONFIG_FUSE_PASSTHROUGH)");
			return -EOPNOTSUPP;
		}
		/* Not with the writeback cache: the kernel grants one or the
		 * other, never both. */
		want |= FURING_CAP_PASSTHROUGH;
		c->max_stack_depth = fs->stack_depth;
	} else if (fs->o.cache == PT_CACHE_ALWAYS) {
		want |= FURING_CAP_WRITEBACK_CACHE;
	}
	if (!fs->o.kernel_passthrough)
		/* We clear setuid/setgid where the kernel says (write, truncate,
		 * open with O_TRUNC): without this the kernel asks for
		 * security.capability (a GETXATTR round trip) before every
		 * buffered write(2). Not with kernel passthrough, whose writes
		 * never reach us: the kernel keeps that job there. */
		want |= FURING_CAP_HANDLE_KILLPRIV_V2;
	c->want = want & c->capable;
	c->time_gran = 1;
	fs->writeback = (c->want & FURING_CAP_WRITEBACK_CACHE) != 0;
	fs->passthrough = (c->want & FURING_CAP_PASSTHROUGH) != 0;
	return 0;
}

const struct furing_ops pt_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget_one,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.symlink = pt_symlink,
	.rename = pt_rename,
	.link = pt_link,
	/* access: the kernel decides from the attributes (default_permissions)
	 * and never sends ACCESS. */
	.statfs = pt_statfs,
	.statx = pt_statx,
	.open = pt_open_file,
	.create = pt_create,
	.tmpfile = pt_tmpfile,
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.fallocate = pt_fallocate,
	.lseek = pt_lseek,
	.copy_file_range = pt_copy_file_range,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	/* flock(2) reaches SOURCE; fcntl locks stay the kernel's own
	 * (getlk/setlk not set): POSIX locks belong to processes, and every
	 * request here comes from one process, the daemon. */
	.flock = pt_flock,
	.ioctl = pt_ioctl,
	.worker_start = ident_worker_start,
	.worker_stop = ident_worker_stop,
};
