/* `furing passthrough [OPTIONS] SOURCE MOUNTPOINT`: the command line
 * around one passthrough mount (passthrough_args.c parses its options,
 * passthrough_run.c starts it). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <furing/furing.h>

#include "cli.h"
#include "passthrough_args.h"
#include "passthrough_run.h"

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

static void print_passthrough_help(void)
{
	printf(passthrough_help, pt_inline_calls);
}

static int passthrough_option(void *args, int o, const char *v, char *err, size_t errlen)
{
	return passthrough_args_option(args, o, v, err, errlen);
}

static void parse(int argc, char **argv, struct passthrough_args *a, struct cli_session *cs)
{
	static const struct cli_command cmd = {
		.name = "passthrough",
		.options = passthrough_options,
		.option = passthrough_option,
		.help = print_passthrough_help,
		.operands = "SOURCE and MOUNTPOINT",
	};

	cli_session_init(cs, "passthrough");
	passthrough_args_init(a, &cs->cfg);
	cli_parse_command(&cmd, argc, argv, a, cs, &a->pt.source, &a->mountpoint);
	passthrough_args_finish(a);
}

int cmd_passthrough(int argc, char **argv)
{
	struct cli_session cs;
	struct passthrough_args a;
	struct passthrough_run r;
	char err[2 * PATH_MAX + 128]; /* two paths, for the mountpoint's check */

	parse(argc, argv, &a, &cs);

	/* Modes arrive with the caller's umask already applied by the kernel;
	 * SOURCE's filesystem would apply ours again. One umask serves every
	 * worker and io_uring thread of the process, so it is 0. */
	umask(0);
	cli_daemonize(&cs);
	if (passthrough_run_start(&r, &a, true, err, sizeof(err)) < 0)
		die(EXIT_RUNTIME, "%s", err);
	int code = EXIT_RUNTIME;
	if (cli_session_started(&cs, r.s) == 0) {
		fprintf(stderr, "furing: %s\n", r.serving);
		code = cli_session_serve(&cs, r.s);
	}
	passthrough_run_finish(&r);
	return code;
}
