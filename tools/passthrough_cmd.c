/* `furing passthrough [OPTIONS] SOURCE MOUNTPOINT`: options, the
 * mountpoint, and the session around the passthrough filesystem
 * (passthrough/). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <furing/furing.h>

#include "../passthrough/passthrough.h"
#include "cli.h"

int cmd_passthrough(int argc, char **argv);

static const char passthrough_help[] =
	"Usage: furing passthrough [OPTIONS] SOURCE MOUNTPOINT\n"
	"\n"
	"Mirror the directory SOURCE at the directory MOUNTPOINT through FUSE: every file,\n"
	"directory, symlink, device node, hard link and extended attribute of SOURCE, read\n"
	"and written through the mount (extended attributes unless --no-xattr). Runs in the\n"
	"foreground until SIGINT/SIGTERM or until someone unmounts it, then prints one\n"
	"summary line.\n"
	"\n"
	"Backend calls (openat2, statx, read, write, fsync, fallocate, mkdirat, unlinkat,\n"
	"renameat2, linkat, symlinkat, getxattr, setxattr, close, ftruncate) run on each\n"
	"worker's io_uring and are answered from their completion (see --backend-io for a\n"
	"SOURCE in memory). Inline, because io_uring has no operation for them (metadata,\n"
	"answered from memory in the common case):\n"
	"  %s.\n"
	"\n"
	"Identity: the kernel checks every access against SOURCE's owners and modes with the\n"
	"caller's credentials (default_permissions). Run as root, furing creates files,\n"
	"directories, symlinks and nodes as the caller (io_uring personalities, or the\n"
	"thread's fsuid/fsgid for a call made inline), so they\n"
	"belong to the caller, or to the directory's group when it is setgid. Run as another\n"
	"user (through fusermount3), everything created belongs to that user.\n"
	"\n"
	"Filesystem:\n"
	"  --cache=none|auto|always  none: no caching, every access reaches SOURCE (direct\n"
	"                        I/O; changes made to SOURCE directly show at once);\n"
	"                        auto (default): names and attributes cached for 1 s, file\n"
	"                        data kept only while the file is unchanged (dropped at open\n"
	"                        otherwise); always: names and attributes cached for a day,\n"
	"                        file data kept across opens, writes collected in the kernel's\n"
	"                        writeback cache (for a SOURCE nobody else changes)\n"
	"  --kernel-passthrough  reads, writes and mmap go from the kernel straight to SOURCE's\n"
	"                        files (FUSE passthrough with backing files); furing serves only\n"
	"                        metadata. Needs root and a kernel that offers it (6.9+); with\n"
	"                        it --cache sets only the name and attribute timeouts (no\n"
	"                        writeback cache: the kernel grants one or the other)\n"
	"  --no-xattr            no extended attributes through the mount (EOPNOTSUPP): the\n"
	"                        kernel then stops asking for security.capability before\n"
	"                        every write, which --kernel-passthrough writes otherwise wait\n"
	"                        for (a round trip each)\n"
	"  --backend-io=auto|ring|inline  where SOURCE's calls run: ring = every call io_uring\n"
	"                        can do on the worker's io_uring; inline = the worker makes the\n"
	"                        metadata calls and reads/writes up to 64 KiB itself; auto\n"
	"                        (default) = inline when SOURCE is on tmpfs/ramfs (nothing there\n"
	"                        waits for a device, and io_uring would hand each call to a\n"
	"                        kernel thread); on ext4/xfs/btrfs/f2fs statx and the calls that\n"
	"                        create, link, remove or rename names inline, the rest on the\n"
	"                        ring; ring elsewhere\n"
	"  --allow-other         let users other than the mounting one use the mount (a user\n"
	"                        other than root needs user_allow_other in /etc/fuse.conf)\n"
	"\n"
	"Transport:\n"
	"  --io-uring=auto|on|off  FUSE-over-io_uring: auto (default) uses it when the kernel\n"
	"                        offers it, on refuses to start without it, off uses /dev/fuse\n"
	"  --threads N           worker threads, each with its own io_uring (default: online CPUs)\n"
	"  --queue-depth N       requests in flight per ring queue, and per worker on /dev/fuse\n"
	"                        (default 32)\n"
	"  --payload-size BYTES  ring entry buffer and largest request (default 1M; K/M suffixes)\n"
	"  --busy-poll=US        before sleeping, a worker spins up to US microseconds for its\n"
	"                        next request while recent requests came that fast (default 50;\n"
	"                        0 turns it off)\n"
	CLI_HELP_PIN
	CLI_HELP_LINUX73
	"\n"
	"Process:\n"
	"  --daemonize           run in the background; return once the mount serves requests\n"
	"  --pidfile FILE        write the serving process's pid to FILE\n"
	"  --debug               one line per request on stderr: transport, opcode, unique,\n"
	"                        node, name or range, result\n"
	"  -h, --help            this text\n"
	"  -V, --version         the version\n"
	"\n"
	"Without io_uring at all (sysctl kernel.io_uring_disabled=2) every backend call runs\n"
	"inline on blocking workers. fcntl(2) locks are kept by the kernel for the mount's\n"
	"users; flock(2) locks reach SOURCE.\n"
	"Signals: SIGINT/SIGTERM unmount and exit; SIGUSR1 prints the counters.\n"
	"Exit status: 0 clean stop, 1 runtime error, 2 usage error.\n";

struct cli {
	struct pt_opts pt;
	struct cli_session session;
	const char *mountpoint;
};

enum {
	OPT_CACHE = 256,
	OPT_KERNEL_PASSTHROUGH,
	OPT_BACKEND_IO,
	OPT_NO_XATTR,
};

static void parse(int argc, char **argv, struct cli *c)
{
	static const struct option opts[] = {
		{"cache", required_argument, NULL, OPT_CACHE},
		{"kernel-passthrough", no_argument, NULL, OPT_KERNEL_PASSTHROUGH},
		{"backend-io", required_argument, NULL, OPT_BACKEND_IO},
		{"no-xattr", no_argument, NULL, OPT_NO_XATTR},
		CLI_SHARED_OPTIONS,
	};
	static const char *const cache_modes[] = {"none", "auto", "always", NULL};
	static const enum pt_cache cache_values[] = {PT_CACHE_NONE, PT_CACHE_AUTO, PT_CACHE_ALWAYS};
	/* In the order of enum pt_io. */
	static const char *const io_modes[] = {"auto", "ring", "inline", NULL};
	_Static_assert(PT_IO_AUTO == 0 && PT_IO_RING == 1 && PT_IO_INLINE == 2, "io_modes");
	int o;

	cli_session_init(&c->session, "passthrough");
	while ((o = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (o) {
		case OPT_CACHE:
			c->pt.cache = cache_values[parse_choice("--cache", optarg, cache_modes)];
			break;
		case OPT_KERNEL_PASSTHROUGH:
			c->pt.kernel_passthrough = true;
			break;
		case OPT_BACKEND_IO:
			c->pt.backend_io = parse_choice("--backend-io", optarg, io_modes);
			break;
		case OPT_NO_XATTR:
			c->pt.no_xattr = true;
			break;
		case 'h':
			printf(passthrough_help, pt_inline_calls);
			exit(0);
		default:
			cli_shared_option(&c->session, o, argv);
		}
	}
	if (argc - optind != 2)
		die(EXIT_USAGE, "passthrough needs SOURCE and MOUNTPOINT (see furing passthrough --help)");
	c->pt.source = argv[optind];
	c->mountpoint = argv[optind + 1];
	/* The kernel checks permissions from the attributes, which are
	 * SOURCE's (see ident.c for why this and not a check per call). */
	c->session.cfg.default_permissions = true;
}

/* An existing directory, not below SOURCE: a mount inside the tree it
 * mirrors would contain itself (SOURCE itself is fine: the daemon holds
 * SOURCE open from before the mount and sees below it). Its realpath, or
 * NULL with @err (one line). */
static char *check_mountpoint(const char *path, const char *source, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "mountpoint %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mountpoint %s is not a directory", path);
		return NULL;
	}
	char *abs = realpath(path, NULL);
	if (!abs) {
		snprintf(err, errlen, "mountpoint %s: %s", path, strerror(errno));
		return NULL;
	}
	size_t n = strlen(source);
	if (strncmp(abs, source, n) == 0 && (abs[n] == '/' || (n == 1 && abs[1]))) {
		snprintf(err, errlen, "mountpoint %s is inside SOURCE %s: the mount would contain itself", abs, source);
		free(abs);
		return NULL;
	}
	return abs;
}

static const char *cache_name(enum pt_cache c)
{
	return c == PT_CACHE_NONE ? "none" : c == PT_CACHE_ALWAYS ? "always" : "auto";
}

int cmd_passthrough(int argc, char **argv)
{
	struct cli c;
	char err[2 * PATH_MAX + 128]; /* two paths, for check_mountpoint */

	memset(&c, 0, sizeof(c));
	parse(argc, argv, &c);

	/* Modes arrive with the caller's umask already applied by the kernel;
	 * SOURCE's filesystem would apply ours again. One umask serves every
	 * worker and io_uring thread of the process, so it is 0. */
	umask(0);
	struct pt_fs *fs = pt_open(&c.pt, err, sizeof(err));
	if (!fs)
		die(EXIT_RUNTIME, "%s", err);
	char *mnt_abs = check_mountpoint(c.mountpoint, pt_source(fs), err, sizeof(err));
	if (!mnt_abs) {
		pt_close(fs);
		die(EXIT_RUNTIME, "%s", err);
	}
	c.session.cfg.root_mode = pt_root_mode(fs);
	c.session.cfg.fsname = pt_source(fs);

	cli_daemonize(&c.session);
	int code = EXIT_RUNTIME;
	struct furing_session *s =
		cli_session_start(&c.session, &pt_ops, sizeof(pt_ops), fs, c.mountpoint, pt_init_error(fs));
	if (s) {
		const struct furing_conn *conn = furing_session_conn(s);
		fprintf(stderr, "furing: serving %s at %s (cache=%s%s%s, %s)\n", pt_source(fs), mnt_abs,
			cache_name(c.pt.cache), pt_writeback_active(fs) ? ", writeback" : "",
			pt_passthrough_active(fs) ? ", kernel passthrough" : "",
			conn->over_io_uring ? "FUSE-over-io_uring" : "/dev/fuse");
		code = cli_session_serve(&c.session, s);
	}
	free(mnt_abs);
	pt_close(fs);
	return code;
}
