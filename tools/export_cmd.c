/* `furing export [OPTIONS] IMAGE|URI MOUNTPOINT`: options, the mountpoint
 * file, and the session around the export filesystem (export/). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <furing/furing.h>

#include "../export/export.h"
#include "cli.h"
#include "stale_mount.h"

int cmd_export(int argc, char **argv);

static const char export_help[] =
	"Usage: furing export [OPTIONS] IMAGE MOUNTPOINT\n"
	"       furing export [OPTIONS] NBD-URI MOUNTPOINT\n"
	"\n"
	"Present IMAGE (a raw disk image file or a block device, or with --format an image\n"
	"qemu-nbd reads) or the disk an NBD server offers (nbd://HOST[:PORT]/EXPORT,\n"
	"nbd+unix:///EXPORT?socket=PATH, nbds://... with TLS) as one regular file at\n"
	"MOUNTPOINT through FUSE. MOUNTPOINT is an existing regular file, or is created\n"
	"when missing and removed at exit. A dead furing mount left there by a killed\n"
	"server is unmounted first. Runs in the foreground until SIGINT/SIGTERM or\n"
	"until someone unmounts it, then prints one summary line.\n"
	"\n"
	"Export:\n"
	"  --writable            allow writes (default: read-only)\n"
	"  --growable            writes past the end and truncate grow the image (needs --writable)\n"
	"  --allow-other         let users other than the mounting one use the file\n"
	"  --backend-direct      open the image with O_DIRECT (no host page cache)\n"
	"  --writethrough        make every write durable before acknowledging it\n"
	"  --backend-io=auto|ring|inline  ring: reads and writes asynchronous on the worker's\n"
	"                        io_uring; inline: pread/pwrite in the worker; auto (default):\n"
	"                        inline when the image is in memory (tmpfs), else ring\n"
	"  --cache=none|kernel   none (default): direct I/O, every access reaches furing;\n"
	"                        kernel: the kernel page cache on the exported file (mmap works)\n"
	"  --kernel-passthrough=auto|on|off  a read-only export's reads through the kernel's\n"
	"                        FUSE passthrough: the kernel reads the image itself, and\n"
	"                        furing neither sees nor counts them; auto (default): when\n"
	"                        the image is a local file, furing runs as root and the\n"
	"                        kernel allows it, else one line says why not; on: refuse\n"
	"                        to start without it; off: never. Writable exports: never\n"
	"  --format=FMT          IMAGE is in format FMT (qcow2, vmdk, vhdx, ...): served through a\n"
	"                        private qemu-nbd (qemu-utils), stopped at exit (default raw)\n"
	"  --timeout S           NBD: a request the server leaves unanswered for S seconds fails\n"
	"                        with EIO and its connection is reset (default 30; 0: never)\n"
	"\n"
	"Transport:\n"
	"  --io-uring=auto|on|off  FUSE-over-io_uring: auto (default) uses it when the kernel\n"
	"                        offers it, on refuses to start without it, off uses /dev/fuse\n"
	"  --threads N           worker threads (default: online CPUs)\n"
	"  --queue-depth N       requests in flight per ring queue, and per worker on /dev/fuse\n"
	"                        (default 32)\n"
	"  --payload-size BYTES  ring entry buffer and largest request (default 1M; K/M suffixes)\n"
	"  --busy-poll=US        before sleeping, a worker spins up to US microseconds for its\n"
	"                        next request while recent requests came that fast (default 50;\n"
	"                        0 turns it off): one request at a time skips a CPU wake-up\n"
	"  --pin, --no-pin       bind each worker to the CPUs of its ring queues (/dev/fuse: one\n"
	"                        worker per CPU); faster small random I/O, slower large\n"
	"                        sequential I/O when the application shares those CPUs (default off)\n"
	"\n"
	"Process:\n"
	"  --daemonize           run in the background; return once the mount serves requests\n"
	"  --pidfile FILE        write the serving process's pid to FILE\n"
	"  --debug               one line per request on stderr: transport, opcode, unique,\n"
	"                        offset/size, result\n"
	"  -h, --help            this text\n"
	"  -V, --version         the version\n"
	"\n"
	"Signals: SIGINT/SIGTERM unmount and exit; SIGUSR1 prints the counters.\n"
	"Exit status: 0 clean stop, 1 runtime error, 2 usage error.\n";

struct cli {
	struct export_opts ex;
	struct furing_config cfg;
	bool daemonize;
	const char *pidfile;
	const char *image;
	const char *mountpoint;
};

enum {
	OPT_WRITABLE = 256,
	OPT_GROWABLE,
	OPT_ALLOW_OTHER,
	OPT_BACKEND_DIRECT,
	OPT_WRITETHROUGH,
	OPT_CACHE,
	OPT_KERNEL_PASSTHROUGH,
	OPT_BACKEND_IO,
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
	OPT_FORMAT,
	OPT_TIMEOUT,
};

/* Options that mean nothing for a disk behind an NBD server. */
static void check_nbd_options(const struct cli *c)
{
	bool uri = export_is_nbd_uri(c->image);
	bool qemu = c->ex.format && strcmp(c->ex.format, "raw") != 0;

	if (uri && c->ex.format)
		die(EXIT_USAGE, "--format is for image files; the NBD server at %s decides the format", c->image);
	if (!uri && !qemu)
		return;
	if (c->ex.growable)
		die(EXIT_USAGE, "--growable: an NBD disk has a fixed size%s", qemu ? " (qemu-nbd serves the image as one)" : "");
	if (uri && c->ex.backend_direct)
		die(EXIT_USAGE, "--backend-direct is for image files; the NBD server decides its caching");
	if (c->ex.backend_io != EXPORT_IO_AUTO)
		die(EXIT_USAGE, "--backend-io is for raw image files; NBD requests always go out asynchronously");
}

static void parse_export(int argc, char **argv, struct cli *c)
{
	static const struct option opts[] = {
		{"writable", no_argument, NULL, OPT_WRITABLE},
		{"growable", no_argument, NULL, OPT_GROWABLE},
		{"allow-other", no_argument, NULL, OPT_ALLOW_OTHER},
		{"backend-direct", no_argument, NULL, OPT_BACKEND_DIRECT},
		{"writethrough", no_argument, NULL, OPT_WRITETHROUGH},
		{"cache", required_argument, NULL, OPT_CACHE},
		{"kernel-passthrough", required_argument, NULL, OPT_KERNEL_PASSTHROUGH},
		{"backend-io", required_argument, NULL, OPT_BACKEND_IO},
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
		{"format", required_argument, NULL, OPT_FORMAT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int o;

	c->ex.nbd_timeout_s = EXPORT_NBD_TIMEOUT_DEFAULT;
	opterr = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (o) {
		case OPT_WRITABLE:
			c->ex.writable = true;
			break;
		case OPT_GROWABLE:
			c->ex.growable = true;
			break;
		case OPT_ALLOW_OTHER:
			c->cfg.allow_other = true;
			break;
		case OPT_BACKEND_DIRECT:
			c->ex.backend_direct = true;
			break;
		case OPT_WRITETHROUGH:
			c->ex.writethrough = true;
			break;
		case OPT_KERNEL_PASSTHROUGH:
			if (!strcmp(optarg, "auto"))
				c->ex.kernel_passthrough = EXPORT_KPT_AUTO;
			else if (!strcmp(optarg, "on"))
				c->ex.kernel_passthrough = EXPORT_KPT_ON;
			else if (!strcmp(optarg, "off"))
				c->ex.kernel_passthrough = EXPORT_KPT_OFF;
			else
				die(EXIT_USAGE, "--kernel-passthrough must be auto, on or off, not '%s'", optarg);
			break;
		case OPT_CACHE:
			if (!strcmp(optarg, "none"))
				c->ex.cache = EXPORT_CACHE_NONE;
			else if (!strcmp(optarg, "kernel"))
				c->ex.cache = EXPORT_CACHE_KERNEL;
			else
				die(EXIT_USAGE, "--cache must be none or kernel, not '%s'", optarg);
			break;
		case OPT_BACKEND_IO:
			if (!strcmp(optarg, "auto"))
				c->ex.backend_io = EXPORT_IO_AUTO;
			else if (!strcmp(optarg, "ring"))
				c->ex.backend_io = EXPORT_IO_RING;
			else if (!strcmp(optarg, "inline"))
				c->ex.backend_io = EXPORT_IO_INLINE;
			else
				die(EXIT_USAGE, "--backend-io must be auto, ring or inline, not '%s'", optarg);
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
		case OPT_FORMAT:
			if (!*optarg || optarg[strspn(optarg, "abcdefghijklmnopqrstuvwxyz0123456789_-")])
				die(EXIT_USAGE, "--format needs a format name such as qcow2, not '%s'", optarg);
			c->ex.format = optarg;
			break;
		case OPT_TIMEOUT:
			c->ex.nbd_timeout_s = (unsigned int)parse_count("--timeout", optarg, 0, 86400);
			break;
		case 'h':
			fputs(export_help, stdout);
			exit(0);
		case 'V':
			printf("furing %s\n", furing_version());
			exit(0);
		case ':':
			die(EXIT_USAGE, "option %s needs a value (see furing export --help)", argv[optind - 1]);
		default:
			die(EXIT_USAGE, "unknown option %s (see furing export --help)", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		die(EXIT_USAGE, "export needs IMAGE and MOUNTPOINT (see furing export --help)");
	c->image = argv[optind];
	c->mountpoint = argv[optind + 1];
	if (c->ex.growable && !c->ex.writable)
		die(EXIT_USAGE, "--growable needs --writable");
	if (c->ex.writethrough && !c->ex.writable)
		die(EXIT_USAGE, "--writethrough needs --writable");
	check_nbd_options(c);
	c->ex.image = c->image;
	c->cfg.read_only = !c->ex.writable;
	/* The export's owner and mode are what the kernel checks against. */
	c->cfg.default_permissions = true;
	/* valgrind does not see a waiting io_uring_enter as blocking: the
	 * valgrind test asks the loop to wait in poll(2) instead. */
	const char *wait = getenv("FURING_LOOP_WAIT");
	c->cfg.wait_with_poll = wait && !strcmp(wait, "poll");
}

/* An existing regular file, or a new one we remove at exit. */
static bool prepare_mountpoint(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			die(EXIT_RUNTIME, "mountpoint %s is a directory: furing exports one file, give a file path", path);
		if (!S_ISREG(st.st_mode))
			die(EXIT_RUNTIME, "mountpoint %s is not a regular file", path);
		return false;
	}
	if (errno != ENOENT)
		die(EXIT_RUNTIME, "mountpoint %s: %s", path, strerror(errno));
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		die(EXIT_RUNTIME, "cannot create mountpoint %s: %s", path, strerror(errno));
	close(fd);
	return true;
}

int cmd_export(int argc, char **argv)
{
	struct cli c;
	char err[512];

	memset(&c, 0, sizeof(c));
	parse_export(argc, argv, &c);

	/* Before the export opens: a qemu-nbd it starts must be the serving
	 * process's child, and its connections the serving process's. */
	int ready_fd = c.daemonize ? daemonize_start() : -1;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	c.ex.workers = c.cfg.threads ? c.cfg.threads : cpus > 0 ? (unsigned int)cpus : 1;
	struct export *e = export_open(&c.ex, err, sizeof(err));
	if (!e)
		die(EXIT_RUNTIME, "%s", err);
	const char *no_kpt = export_passthrough_refused(e);
	if (no_kpt && c.ex.kernel_passthrough == EXPORT_KPT_ON) {
		export_close(e);
		die(EXIT_RUNTIME, "--kernel-passthrough=on: %s", no_kpt);
	}
	clear_dead_mount(c.mountpoint);
	unsigned int max_workers = export_max_workers(e);
	if (max_workers && c.ex.workers > max_workers) {
		if (c.cfg.threads)
			fprintf(stderr, "furing: note: %s allows %u connection%s: %u worker thread%s, not --threads %u\n",
				c.image, max_workers, max_workers == 1 ? "" : "s", max_workers, max_workers == 1 ? "" : "s",
				c.cfg.threads);
		c.cfg.threads = max_workers;
	}
	bool created = prepare_mountpoint(c.mountpoint);
	char *mnt_abs = realpath(c.mountpoint, NULL);
	c.cfg.root_mode = export_root_mode(e);
	/* The source shown in /proc/mounts; a comma would end the mount option. */
	c.cfg.fsname = strpbrk(c.image, ", \t\n") ? "furing-nbd" : c.image;

	int code = EXIT_RUNTIME;
	struct furing_session *s =
		furing_session_new(&export_ops, sizeof(export_ops), &c.cfg, sizeof(c.cfg), e, err, sizeof(err));
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
	bool kpt = export_passthrough_active(e, s);
	if (!kpt && !no_kpt) {
		no_kpt = "the kernel did not offer FUSE passthrough (CONFIG_FUSE_PASSTHROUGH)";
		if (c.ex.kernel_passthrough == EXPORT_KPT_ON) {
			fprintf(stderr, "furing: --kernel-passthrough=on: %s\n", no_kpt);
			furing_session_stop(s);
			furing_session_wait(s);
			furing_session_destroy(s);
			goto out;
		}
	}
	/* What reads a read-only export: the kernel, or furing and why. */
	char reads[256] = "";
	if (kpt)
		snprintf(reads, sizeof(reads), ", reads through kernel passthrough");
	else if (!c.ex.writable && c.ex.kernel_passthrough == EXPORT_KPT_AUTO)
		snprintf(reads, sizeof(reads), "; kernel passthrough off: %s", no_kpt);
	const char *how = export_describe(e);
	fprintf(stderr, "furing: serving %s (%llu bytes, %s%s%s%s) at %s\n", c.image,
		(unsigned long long)export_size(e), c.ex.writable ? (c.ex.growable ? "writable, growable" : "writable")
								  : "read-only",
		how ? ", " : "", how ? how : "", reads, mnt_abs ? mnt_abs : c.mountpoint);
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
	if (created && mnt_abs)
		unlink(mnt_abs);
	free(mnt_abs);
	if (export_close(e) < 0 && code == 0)
		code = EXIT_RUNTIME;
	return code;
}
