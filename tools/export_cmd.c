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
	"  --kernel-passthrough=auto|on|off  the kernel's FUSE passthrough: the kernel reads\n"
	"                        (and writes) the image itself, and furing neither sees nor\n"
	"                        counts that I/O; auto (default): a read-only export's reads,\n"
	"                        when the image is a regular local file, furing runs as root\n"
	"                        and the kernel allows it, else one line says why not; on:\n"
	"                        refuse to start without it, and on a writable export take the\n"
	"                        writes through it as well (not with --growable or\n"
	"                        --writethrough): the kernel does not hold them to the\n"
	"                        export's size, a write past the end extends the image\n"
	"                        (said at exit); off: never\n"
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
	CLI_HELP_PIN
	CLI_HELP_LINUX73
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
	struct cli_session session;
	const char *image;
	const char *mountpoint;
};

enum {
	OPT_WRITABLE = 256,
	OPT_GROWABLE,
	OPT_BACKEND_DIRECT,
	OPT_WRITETHROUGH,
	OPT_CACHE,
	OPT_KERNEL_PASSTHROUGH,
	OPT_BACKEND_IO,
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
		{"backend-direct", no_argument, NULL, OPT_BACKEND_DIRECT},
		{"writethrough", no_argument, NULL, OPT_WRITETHROUGH},
		{"cache", required_argument, NULL, OPT_CACHE},
		{"kernel-passthrough", required_argument, NULL, OPT_KERNEL_PASSTHROUGH},
		{"backend-io", required_argument, NULL, OPT_BACKEND_IO},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		CLI_SHARED_OPTIONS,
	};
	/* Each choice list in the order of the enum it picks from. */
	static const char *const kpt_modes[] = {"auto", "on", "off", NULL};
	static const char *const cache_modes[] = {"none", "kernel", NULL};
	static const char *const io_modes[] = {"auto", "ring", "inline", NULL};
	_Static_assert(EXPORT_KPT_AUTO == 0 && EXPORT_KPT_ON == 1 && EXPORT_KPT_OFF == 2, "kpt_modes");
	_Static_assert(EXPORT_CACHE_NONE == 0 && EXPORT_CACHE_KERNEL == 1, "cache_modes");
	_Static_assert(EXPORT_IO_AUTO == 0 && EXPORT_IO_RING == 1 && EXPORT_IO_INLINE == 2, "io_modes");
	struct furing_config *cfg = &c->session.cfg;
	int o;

	cli_session_init(&c->session, "export");
	c->ex.nbd_timeout_s = EXPORT_NBD_TIMEOUT_DEFAULT;
	/* The export's messages while no session runs (qemu-nbd's stop, the
	 * final flush) look like the session's. */
	c->ex.log = (struct export_log){.fn = furing_log_stderr};
	while ((o = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (o) {
		case OPT_WRITABLE:
			c->ex.writable = true;
			break;
		case OPT_GROWABLE:
			c->ex.growable = true;
			break;
		case OPT_BACKEND_DIRECT:
			c->ex.backend_direct = true;
			break;
		case OPT_WRITETHROUGH:
			c->ex.writethrough = true;
			break;
		case OPT_KERNEL_PASSTHROUGH:
			c->ex.kernel_passthrough = parse_choice("--kernel-passthrough", optarg, kpt_modes);
			break;
		case OPT_CACHE:
			c->ex.cache = parse_choice("--cache", optarg, cache_modes);
			break;
		case OPT_BACKEND_IO:
			c->ex.backend_io = parse_choice("--backend-io", optarg, io_modes);
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
		default:
			cli_shared_option(&c->session, o, argv);
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
	cfg->read_only = !c->ex.writable;
	/* The export's owner and mode are what the kernel checks against. */
	cfg->default_permissions = true;
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
	struct furing_config *cfg = &c.session.cfg;
	char err[512];

	memset(&c, 0, sizeof(c));
	parse_export(argc, argv, &c);

	/* Before the export opens: a qemu-nbd it starts must be the serving
	 * process's child, and its connections the serving process's. */
	cli_daemonize(&c.session);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	c.ex.workers = cfg->threads ? cfg->threads : cpus > 0 ? (unsigned int)cpus : 1;
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
		if (cfg->threads)
			fprintf(stderr, "furing: note: %s allows %u connection%s: %u worker thread%s, not --threads %u\n",
				c.image, max_workers, max_workers == 1 ? "" : "s", max_workers, max_workers == 1 ? "" : "s",
				cfg->threads);
		cfg->threads = max_workers;
	}
	bool created = prepare_mountpoint(c.mountpoint);
	char *mnt_abs = realpath(c.mountpoint, NULL);
	cfg->root_mode = export_root_mode(e);
	/* The source shown in /proc/mounts; a comma would end the mount option. */
	cfg->fsname = strpbrk(c.image, ", \t\n") ? "furing-nbd" : c.image;

	int code = EXIT_RUNTIME;
	struct furing_session *s = cli_session_start(&c.session, &export_ops, sizeof(export_ops), e, c.mountpoint, NULL);
	if (!s)
		goto out;
	bool kpt = export_passthrough_active(e, s);
	if (!kpt && !no_kpt) {
		no_kpt = "the kernel did not offer FUSE passthrough (CONFIG_FUSE_PASSTHROUGH)";
		if (c.ex.kernel_passthrough == EXPORT_KPT_ON) {
			fprintf(stderr, "furing: --kernel-passthrough=on: %s\n", no_kpt);
			cli_session_abort(&c.session, s);
			goto out;
		}
	}
	/* What reads (and writes) the image: the kernel, or furing and why. */
	char reads[256] = "";
	if (kpt)
		snprintf(reads, sizeof(reads), ", %s through kernel passthrough",
			 c.ex.writable ? "reads and writes" : "reads");
	else if (!c.ex.writable && c.ex.kernel_passthrough == EXPORT_KPT_AUTO)
		snprintf(reads, sizeof(reads), "; kernel passthrough off: %s", no_kpt);
	const char *how = export_describe(e);
	fprintf(stderr, "furing: serving %s (%llu bytes, %s%s%s%s) at %s\n", c.image,
		(unsigned long long)export_size(e), c.ex.writable ? (c.ex.growable ? "writable, growable" : "writable")
								  : "read-only",
		how ? ", " : "", how ? how : "", reads, mnt_abs ? mnt_abs : c.mountpoint);
	code = cli_session_serve(&c.session, s);
	uint64_t grew = export_image_grew(e);
	if (grew)
		fprintf(stderr, "furing: warning: writes past the end through kernel passthrough extended %s to %llu bytes "
				"(the export is %llu)\n",
			c.image, (unsigned long long)grew, (unsigned long long)export_size(e));
out:
	if (created && mnt_abs)
		unlink(mnt_abs);
	free(mnt_abs);
	if (export_close(e) < 0 && code == 0)
		code = EXIT_RUNTIME;
	return code;
}
