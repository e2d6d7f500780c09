/* hello: the smallest useful libfuring filesystem.
 *
 *   $ hello /mnt/hello &
 *   $ cat /mnt/hello/hello
 *   Hello, World!
 *
 * A root directory holding one read-only file. Nothing changes, so every
 * answer is computed from constants and the operations need no locking.
 * Operations left NULL in the table answer ENOSYS; for most of them (xattrs,
 * opendir, flush, ...) the kernel then stops asking for the rest of the mount.
 *
 * Build against the installed library:
 *   cc -o hello hello.c $(pkg-config --cflags --libs furing)
 *
 * Usage: hello [-f] [-d] [-o OPT[,OPT...]] MOUNTPOINT   (hello --help lists the options)
 * The usual FUSE command line, parsed by furing_parse_cmdline; furing_main
 * then runs the server: in the background (it returns once the mount
 * serves) unless -f or -d, until SIGINT/SIGTERM/SIGHUP or until someone
 * unmounts MOUNTPOINT. Exit status: 0 clean stop, 1 runtime error, 2 usage
 * error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <furing/furing.h>

#define FILE_INO 2 /* node ids are ours to choose; 1 is the root */
static const char file_name[] = "hello";
static const char file_text[] = "Hello, World!\n";

/* Nothing ever changes: the kernel may cache names and attributes for long. */
#define CACHE_S 60.0

/* The attributes of node @ino; false when there is no such node. */
static bool node_stat(uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FURING_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == FILE_INO) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = sizeof(file_text) - 1;
	} else {
		return false;
	}
	return true;
}

static void hello_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	struct furing_entry e = {.ino = FILE_INO, .attr_timeout = CACHE_S, .entry_timeout = CACHE_S};

	if (parent != FURING_ROOT_ID || strcmp(name, file_name) != 0) {
		furing_reply_err(req, ENOENT);
		return;
	}
	node_stat(FILE_INO, &e.attr);
	furing_reply_entry(req, &e); /* the kernel now holds one lookup of FILE_INO */
}

static void hello_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct stat st;

	if (!node_stat(ino, &st))
		furing_reply_err(req, ENOENT);
	else
		furing_reply_attr(req, &st, CACHE_S);
}

/* The listing is ".", ".." and the file. @off is where the previous answer
 * stopped: each entry carries the offset of the one after it. */
static void hello_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			  const struct furing_file *fi)
{
	static const struct {
		const char *name;
		uint64_t ino;
	} entries[] = {{".", FURING_ROOT_ID}, {"..", FURING_ROOT_ID}, {file_name, FILE_INO}};
	struct furing_dirbuf d;

	if (ino != FURING_ROOT_ID) {
		furing_reply_err(req, ENOTDIR);
		return;
	}
	furing_dirbuf_init(&d, req, size, false);
	for (uint64_t i = off; i < sizeof(entries) / sizeof(entries[0]); i++) {
		struct stat st;
		node_stat(entries[i].ino, &st);
		if (!furing_dirbuf_add(&d, entries[i].name, &st, i + 1))
			break; /* full: the kernel asks again from i */
	}
	furing_reply_dirbuf(req, &d); /* an empty listing ends the directory */
}

static void hello_open(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	/* The mount has no default_permissions, so the mode bits are only
	 * advice to the kernel: refusing writes is up to us. */
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		furing_reply_err(req, EACCES);
		return;
	}
	struct furing_open o = {.flags = FURING_OPEN_KEEP_CACHE}; /* the content never changes */
	furing_reply_open(req, &o);
}

static void hello_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
		       const struct furing_file *fi)
{
	size_t len = sizeof(file_text) - 1;

	if (off >= len) {
		furing_reply_buf(req, 0); /* nothing: the end of the file */
		return;
	}
	if (size > len - off)
		size = (uint32_t)(len - off);
	furing_reply_data(req, file_text + off, size);
}

static const struct furing_ops hello_ops = {
	.lookup = hello_lookup,
	.getattr = hello_getattr,
	.readdir = hello_readdir,
	.open = hello_open,
	.read = hello_read,
	/* no opendir: the library asks for NO_OPENDIR_SUPPORT, and readdir gets fh 0 */
};

/* The library prints nothing by itself. Show its warnings, errors and (with
 * -d) one line per request, but not the start-up layout (INFO): a quiet
 * program until something goes wrong. */
static void log_quiet(void *data, enum furing_log_level level, const char *msg)
{
	if (level != FURING_LOG_INFO)
		furing_log_stderr(data, level, msg);
}

int main(int argc, char **argv)
{
	/* Our defaults; the command line may change them (-o fsname=...). */
	struct furing_config cfg = {.fsname = "hello", .subtype = "hello", .log = log_quiet}; /* zero: the defaults */
	struct furing_cmdline cl;
	char err[512];

	if (furing_parse_cmdline(argc, argv, 0, &cl, sizeof(cl), &cfg, sizeof(cfg), err, sizeof(err)) < 0) {
		fprintf(stderr, "hello: %s (see hello --help)\n", err);
		return 2;
	}
	if (cl.help || cl.version) {
		if (cl.help)
			printf("usage: hello [OPTIONS] MOUNTPOINT\n\noptions:\n%s", furing_cmdline_help());
		else
			printf("hello (libfuring %s)\n", furing_version());
		furing_cmdline_free(&cl);
		return 0;
	}
	/* Mounts, serves, stops on SIGINT/SIGTERM/SIGHUP; daemonizes without -f. */
	int ret = furing_main(cl.mountpoint, cl.foreground ? FURING_MAIN_FOREGROUND : 0, &hello_ops, sizeof(hello_ops),
			      &cfg, sizeof(cfg), NULL);
	furing_cmdline_free(&cl); /* after cfg's last use: its mount_options may live in cl */
	return ret;
}
