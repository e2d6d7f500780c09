/* The furing command line: `furing export [OPTIONS] IMAGE MOUNTPOINT`.
 *
 * Exit codes: 0 clean stop, 1 runtime error (files, mount, kernel), 2 usage
 * error. Every error is one line on stderr starting with "furing: ". */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <furing/furing.h>

#include "../export/export.h"
#include "../lib/mount.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char export_help[] =
	"Usage: furing export [OPTIONS] IMAGE MOUNTPOINT\n"
	"\n"
	"Present IMAGE (a raw disk image file or a block device) as one regular file at\n"
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
	"\n"
	"Transport:\n"
	"  --io-uring=auto|on|off  FUSE-over-io_uring: auto (default) uses it when the kernel\n"
	"                        offers it, on refuses to start without it, off uses /dev/fuse\n"
	"  --threads N           worker threads (default: online CPUs)\n"
	"  --queue-depth N       requests in flight per ring queue, and per worker on /dev/fuse\n"
	"                        (default 32)\n"
	"  --payload-size BYTES  ring entry buffer and largest request (default 1M; K/M suffixes)\n"
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

static const char main_help[] =
	"Usage: furing COMMAND [OPTIONS] ...\n"
	"\n"
	"Commands:\n"
	"  export   present a raw disk image or block device as one file (furing export --help)\n"
	"\n"
	"  -h, --help     this text\n"
	"  -V, --version  the version\n";

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("furing: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* strtoul/strtoull skip white space and take a sign, and they negate a
 * '-' number in unsigned arithmetic: " -18446744073709551615" parses as 1
 * with no error. So a number must start with a digit. */
static bool starts_with_digit(const char *v)
{
	return v[0] >= '0' && v[0] <= '9';
}

static unsigned long parse_count(const char *opt, const char *v, unsigned long min, unsigned long max)
{
	char *end;

	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!starts_with_digit(v) || errno || *end || n < min || n > max)
		die(EXIT_USAGE, "%s needs a whole number from %lu to %lu, not '%s'", opt, min, max, v);
	return n;
}

#define BYTES_MIN 8192u
#define BYTES_MAX (16u << 20)

static uint32_t parse_bytes(const char *opt, const char *v)
{
	char *end;
	unsigned int shift = 0;

	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (!starts_with_digit(v) || errno)
		die(EXIT_USAGE, "%s needs a size in bytes (K/M suffixes), not '%s'", opt, v);
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	/* Compare before shifting: a shift past 64 bits wraps (2^52+1 M is 1 M). */
	if (*end || n > BYTES_MAX >> shift || n << shift < BYTES_MIN || (n << shift) % 4096)
		die(EXIT_USAGE, "%s must be a multiple of 4096 from 8K to 16M, not '%s'", opt, v);
	return (uint32_t)(n << shift);
}

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
	OPT_BACKEND_IO,
	OPT_IO_URING,
	OPT_THREADS,
	OPT_QUEUE_DEPTH,
	OPT_PAYLOAD_SIZE,
	OPT_PIN,
	OPT_NO_PIN,
	OPT_DAEMONIZE,
	OPT_PIDFILE,
	OPT_DEBUG,
};

static void parse_export(int argc, char **argv, struct cli *c)
{
	static const struct option opts[] = {
		{"writable", no_argument, NULL, OPT_WRITABLE},
		{"growable", no_argument, NULL, OPT_GROWABLE},
		{"allow-other", no_argument, NULL, OPT_ALLOW_OTHER},
		{"backend-direct", no_argument, NULL, OPT_BACKEND_DIRECT},
		{"writethrough", no_argument, NULL, OPT_WRITETHROUGH},
		{"cache", required_argument, NULL, OPT_CACHE},
		{"backend-io", required_argument, NULL, OPT_BACKEND_IO},
		{"io-uring", required_argument, NULL, OPT_IO_URING},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH},
		{"payload-size", required_argument, NULL, OPT_PAYLOAD_SIZE},
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
			fputs(export_help, stdout);
			exit(0);
		case 'V':
			puts("furing " FURING_VERSION);
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
	c->ex.image = c->image;
	c->cfg.read_only = !c->ex.writable;
	c->cfg.direct_io_allow_mmap = false;
}

/* A live server answers in well under a millisecond; a stopped one never. */
#define PROBE_TIMEOUT_MS 2000

/* What the user runs to remove the mount at @m by hand. */
static const char *unmount_command(const struct fu_mount_entry *m, char *buf, size_t len)
{
	if (geteuid() == 0)
		snprintf(buf, len, "umount -l %s", m->mountpoint);
	else if (m->user_id == (long)getuid())
		snprintf(buf, len, "fusermount3 -u -z %s", m->mountpoint);
	else /* someone else's mount: fusermount3 would refuse */
		snprintf(buf, len, "as root: umount -l %s", m->mountpoint);
	return buf;
}

/* A furing killed with SIGKILL (or crashed) leaves its mount behind with a
 * dead connection: every access to the mountpoint fails with ENOTCONN,
 * prepare_mountpoint()'s lstat() included. When the dead mount is furing's,
 * removing it is what the user would do next by hand, so do that and say
 * so; another filesystem's is not ours to remove, so name the command. The
 * mountpoint is only looked at through mountinfo and a probe that cannot
 * hang us, since a stopped server's mount would hang a plain stat(). */
static void clear_dead_mount(const char *path)
{
	char cmd[PATH_MAX + 32];

	for (int i = 0; i < 8; i++) { /* mounts stack: each pass takes the topmost */
		struct fu_mount_entry m;
		if (fu_mount_lookup(path, &m) != 1 || strncmp(m.fstype, "fuse", 4) != 0)
			return; /* nothing there, or not FUSE: the usual checks speak */
		int r = fu_probe_path(m.mountpoint, PROBE_TIMEOUT_MS);
		if (r == -ETIMEDOUT)
			die(EXIT_RUNTIME, "mountpoint %s is busy: the %s mount there does not answer (is its server stopped?)",
			    m.mountpoint, m.fstype);
		if (r != -ENOTCONN && r != -ECONNABORTED)
			return; /* alive: busy, which furing_session_start reports */
		if (strcmp(m.fstype, "fuse.furing") != 0)
			die(EXIT_RUNTIME, "mountpoint %s: a dead %s mount is left there, not furing's to remove; run %s",
			    m.mountpoint, m.fstype, unmount_command(&m, cmd, sizeof(cmd)));
		/* Another export starting here may have replaced the dead mount
		 * meanwhile: unmount only the one probed (narrows that window). */
		struct fu_mount_entry now;
		if (fu_mount_lookup(path, &now) != 1 || now.dev != m.dev)
			continue;
		int ret = fu_unmount(m.mountpoint, geteuid() != 0);
		if (ret < 0)
			die(EXIT_RUNTIME, "mountpoint %s: cannot remove the dead furing mount left there (%s); run %s",
			    m.mountpoint, geteuid() == 0 ? strerror(-ret) : "fusermount3 failed",
			    unmount_command(&m, cmd, sizeof(cmd)));
		fprintf(stderr, "furing: lazily unmounted the stale furing mount at %s (its server had died)\n",
			m.mountpoint);
	}
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

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "we");

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
		fprintf(stderr, "furing: cannot write pidfile %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Forks; the parent waits until the child reports the mount serving (one
 * byte on the pipe) and exits 0, or exits 1 if the child fails first. */
static int daemonize_start(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		die(EXIT_RUNTIME, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die(EXIT_RUNTIME, "fork: %s", strerror(errno));
	if (pid > 0) {
		char b = 0;
		close(p[1]);
		ssize_t n;
		do
			n = read(p[0], &b, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 && b == 'R' ? 0 : EXIT_RUNTIME);
	}
	close(p[0]);
	setsid();
	return p[1];
}

static void daemonize_ready(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (write(fd, "R", 1) != 1)
		exit(EXIT_RUNTIME);
	close(fd);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (chdir("/") < 0)
		return;
}

static int cmd_export(int argc, char **argv)
{
	struct cli c;
	char err[512];

	memset(&c, 0, sizeof(c));
	parse_export(argc, argv, &c);

	struct export *e = export_open(&c.ex, err, sizeof(err));
	if (!e)
		die(EXIT_RUNTIME, "%s", err);
	clear_dead_mount(c.mountpoint);
	bool created = prepare_mountpoint(c.mountpoint);
	char *mnt_abs = realpath(c.mountpoint, NULL);
	c.cfg.root_mode = export_root_mode(e);
	c.cfg.fsname = c.image;

	int ready_fd = c.daemonize ? daemonize_start() : -1;
	int code = EXIT_RUNTIME;
	struct furing_session *s = furing_session_new(&export_ops, e, &c.cfg, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "furing: %s\n", err);
		goto out;
	}
	if (furing_session_start(s, c.mountpoint, err, sizeof(err)) < 0) {
		fprintf(stderr, "furing: %s\n", err);
		furing_session_destroy(s);
		goto out;
	}
	if (c.pidfile && write_pidfile(c.pidfile) < 0) {
		furing_session_stop(s);
		furing_session_wait(s);
		furing_session_destroy(s);
		goto out;
	}
	fprintf(stderr, "furing: serving %s (%llu bytes, %s) at %s\n", c.image,
		(unsigned long long)export_size(e), c.ex.writable ? (c.ex.growable ? "writable, growable" : "writable")
								  : "read-only",
		mnt_abs ? mnt_abs : c.mountpoint);
	if (ready_fd >= 0) {
		daemonize_ready(ready_fd);
		ready_fd = -1;
	}
	code = furing_session_wait(s);
	char line[4096];
	furing_session_stats_line(s, line, sizeof(line));
	fprintf(stderr, "%s\n", line);
	furing_session_destroy(s);
out:
	if (c.pidfile && code == 0)
		unlink(c.pidfile);
	if (created && mnt_abs)
		unlink(mnt_abs);
	free(mnt_abs);
	export_close(e);
	return code;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "furing: missing command (see furing --help)\n");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(main_help, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		puts("furing " FURING_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "export"))
		return cmd_export(argc - 1, argv + 1);
	fprintf(stderr, "furing: unknown command '%s' (see furing --help)\n", argv[1]);
	return EXIT_USAGE;
}
