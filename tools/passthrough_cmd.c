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

#include "../passthrough/pt.h"
#include "cli.h"

int cmd_passthrough(int argc, char **argv);

static const char passthrough_help[] =
	"Usage: furing passthrough [OPTIONS] SOURCE MOUNTPOINT\n"
	"\n"
	"Mirror the directory SOURCE at the directory MOUNTPOINT through FUSE: every file,\n"
	"directory, symlink, device node, hard link and extended attribute of SOURCE, read\n"
	"and written through the mount. Runs in the foreground until SIGINT/SIGTERM or until\n"
	"someone unmounts it, then prints one summary line.\n"
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
	"directories, symlinks and nodes as the caller (io_uring personalities), so they\n"
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
	"  --backend-io=auto|ring|inline  where SOURCE's calls run: ring = every call io_uring\n"
	"                        can do on the worker's io_uring; inline = the worker makes the\n"
	"                        metadata calls and reads/writes up to 64 KiB itself; auto\n"
	"                        (default) = inline when SOURCE is on tmpfs/ramfs (nothing there\n"
	"                        waits for a device, and io_uring would hand each call to a\n"
	"                        kernel thread), ring otherwise\n"
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
	"  --pin, --no-pin       bind each worker to the CPUs of its ring queues (default off)\n"
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
	struct furing_config cfg;
	bool daemonize;
	const char *pidfile;
	const char *mountpoint;
};

enum {
	OPT_CACHE = 256,
	OPT_KERNEL_PASSTHROUGH,
	OPT_BACKEND_IO,
	OPT_ALLOW_OTHER,
	OPT_IO_URING,
	OPT_THREADS,
	OPT_QUEUE_DEPTH,
	OPT_PAYLOAD_SIZE,
	OPT_BUSY_POLL,
	OPT_PIN,
	OPT_NO_PIN,
	OPT_DAEMONIZE,
	OPT_PIDFILE,
	OPT_DEBUG,
};

static void parse(int argc, char **argv, struct cli *c)
{
	static const struct option opts[] = {
		{"cache", required_argument, NULL, OPT_CACHE},
		{"kernel-passthrough", no_argument, NULL, OPT_KERNEL_PASSTHROUGH},
		{"backend-io", required_argument, NULL, OPT_BACKEND_IO},
		{"allow-other", no_argument, NULL, OPT_ALLOW_OTHER},
		{"io-uring", required_argument, NULL, OPT_IO_URING},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH},
		{"payload-size", required_argument, NULL, OPT_PAYLOAD_SIZE},
		{"busy-poll", required_argument, NULL, OPT_BUSY_POLL},
		{"pin", no_argument, NULL, OPT_PIN},
		{"no-pin", no_argument, NULL, OPT_NO_PIN},
		{"daemonize", no_argument, NULL, OPT_DAEMONIZE},
		{"pidfile", required_argument, NULL, OPT_PIDFILE},
		{"debug", no_argument, NULL, OPT_DEBUG},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int o;

	opterr = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (o) {
		case OPT_CACHE:
			if (!strcmp(optarg, "none"))
				c->pt.cache = PT_CACHE_NONE;
			else if (!strcmp(optarg, "auto"))
				c->pt.cache = PT_CACHE_AUTO;
			else if (!strcmp(optarg, "always"))
				c->pt.cache = PT_CACHE_ALWAYS;
			else
				die(EXIT_USAGE, "--cache must be none, auto or always, not '%s'", optarg);
			break;
		case OPT_KERNEL_PASSTHROUGH:
			c->pt.kernel_passthrough = true;
			break;
		case OPT_BACKEND_IO:
			if (!strcmp(optarg, "auto"))
				c->pt.backend_io = PT_IO_AUTO;
			else if (!strcmp(optarg, "ring"))
				c->pt.backend_io = PT_IO_RING;
			else if (!strcmp(optarg, "inline"))
				c->pt.backend_io = PT_IO_INLINE;
			else
				die(EXIT_USAGE, "--backend-io must be auto, ring or inline, not '%s'", optarg);
			break;
		case OPT_ALLOW_OTHER:
			c->cfg.allow_other = true;
			break;
		case OPT_IO_URING:
			if (!strcmp(optarg, "auto"))
				c->cfg.io_uring = FURING_IO_URING_AUTO;
			else if (!strcmp(optarg, "on"))
				c->cfg.io_uring = FURING_IO_URING_ON;
			else if (!strcmp(optarg, "off"))
				c->cfg.io_uring = FURING_IO_URING_OFF;
			else
				die(EXIT_USAGE, "--io-uring must be auto, on or off, not '%s'", optarg);
			break;
		case OPT_THREADS:
			c->cfg.threads = (unsigned int)parse_count("--threads", optarg, 1, 1024);
			break;
		case OPT_QUEUE_DEPTH:
			c->cfg.queue_depth = (unsigned int)parse_count("--queue-depth", optarg, 1, 4096);
			break;
		case OPT_PAYLOAD_SIZE:
			c->cfg.payload_size = parse_bytes("--payload-size", optarg);
			break;
		case OPT_BUSY_POLL:
			c->cfg.busy_poll_us = (uint32_t)parse_count("--busy-poll", optarg, 0, 1000000);
			c->cfg.busy_poll_off = c->cfg.busy_poll_us == 0;
			break;
		case OPT_PIN:
			c->cfg.pin = FURING_PIN_ON;
			break;
		case OPT_NO_PIN:
			c->cfg.pin = FURING_PIN_OFF;
			break;
		case OPT_DAEMONIZE:
			c->daemonize = true;
			break;
		case OPT_PIDFILE:
			c->pidfile = optarg;
			break;
		case OPT_DEBUG:
			c->cfg.debug = true;
			break;
		case 'h':
			printf(passthrough_help, pt_inline_calls);
			exit(0);
		case 'V':
			printf("furing %s\n", furing_version());
			exit(0);
		case ':':
			die(EXIT_USAGE, "option %s needs a value (see furing passthrough --help)", argv[optind - 1]);
		default:
			die(EXIT_USAGE, "unknown option %s (see furing passthrough --help)", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		die(EXIT_USAGE, "passthrough needs SOURCE and MOUNTPOINT (see furing passthrough --help)");
	c->pt.source = argv[optind];
	c->mountpoint = argv[optind + 1];
	/* The kernel checks permissions from the attributes, which are
	 * SOURCE's (see ident.c for why this and not a check per call). */
	c->cfg.default_permissions = true;
	const char *wait = getenv("FURING_LOOP_WAIT");
	c->cfg.wait_with_poll = wait && !strcmp(wait, "poll");
}

/* An existing directory, not below SOURCE: a mount inside the tree it
 * mirrors would contain itself (SOURCE itself is fine: the daemon holds
 * SOURCE open from before the mount and sees below it). */
static char *check_mountpoint(const char *path, const char *source)
{
	struct stat st;

	if (stat(path, &st) < 0)
		die(EXIT_RUNTIME, "mountpoint %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die(EXIT_RUNTIME, "mountpoint %s is not a directory", path);
	char *abs = realpath(path, NULL);
	if (!abs)
		die(EXIT_RUNTIME, "mountpoint %s: %s", path, strerror(errno));
	size_t n = strlen(source);
	if (strncmp(abs, source, n) == 0 && (abs[n] == '/' || (n == 1 && abs[1])))
		die(EXIT_RUNTIME, "mountpoint %s is inside SOURCE %s: the mount would contain itself", abs, source);
	return abs;
}

static const char *cache_name(enum pt_cache c)
{
	return c == PT_CACHE_NONE ? "none" : c == PT_CACHE_ALWAYS ? "always" : "auto";
}

int cmd_passthrough(int argc, char **argv)
{
	struct cli c;
	char err[512];

	memset(&c, 0, sizeof(c));
	parse(argc, argv, &c);

	/* Modes arrive with the caller's umask already applied by the kernel;
	 * SOURCE's filesystem would apply ours again. One umask serves every
	 * worker and io_uring thread of the process, so it is 0. */
	umask(0);
	struct pt_fs *fs = pt_open(&c.pt, err, sizeof(err));
	if (!fs)
		die(EXIT_RUNTIME, "%s", err);
	char *mnt_abs = check_mountpoint(c.mountpoint, fs->source);
	c.cfg.root_mode = pt_root_mode(fs);
	c.cfg.fsname = fs->source;

	int ready_fd = c.daemonize ? daemonize_start() : -1;
	int code = EXIT_RUNTIME;
	struct furing_session *s = furing_session_new(&pt_ops, sizeof(pt_ops), &c.cfg, sizeof(c.cfg), fs, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "furing: %s\n", err);
		goto out;
	}
	int ret = furing_session_handle_signals(s);
	if (ret < 0) {
		fprintf(stderr, "furing: cannot install signal handlers: %s\n", strerror(-ret));
		furing_session_destroy(s);
		goto out;
	}
	if (furing_session_start(s, c.mountpoint, err, sizeof(err)) < 0) {
		if (fs->init_error[0])
			fprintf(stderr, "furing: %s\n", fs->init_error);
		else
			print_start_error(&c.cfg, err);
		furing_session_destroy(s);
		goto out;
	}
	if (c.pidfile && write_pidfile(c.pidfile) < 0) {
		furing_session_stop(s);
		furing_session_wait(s);
		furing_session_destroy(s);
		goto out;
	}
	const struct furing_conn *conn = furing_session_conn(s);
	fprintf(stderr, "furing: serving %s at %s (cache=%s%s%s, %s)\n", fs->source, mnt_abs, cache_name(c.pt.cache),
		fs->writeback ? ", writeback" : "", fs->passthrough ? ", kernel passthrough" : "",
		conn->over_io_uring ? "FUSE-over-io_uring" : "/dev/fuse");
	if (ready_fd >= 0) {
		daemonize_ready(ready_fd);
		ready_fd = -1;
	}
	code = furing_session_wait(s) < 0 ? EXIT_RUNTIME : 0;
	char line[4096];
	furing_session_stats_line(s, line, sizeof(line));
	fprintf(stderr, "furing: summary %s\n", line);
	furing_session_destroy(s);
out:
	if (c.pidfile && code == 0)
		unlink(c.pidfile);
	free(mnt_abs);
	pt_close(fs);
	return code;
}
