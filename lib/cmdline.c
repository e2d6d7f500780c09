/* The conveniences of a program's main (furing.h, "A program's main"): the
 * usual FUSE command line parsed into a furing_config, and furing_main,
 * which runs a session the way a daemon does. Nothing here is used by the
 * rest of the library: a program that does not call these gets none of
 * their behaviour (no fork, no signal handler, no output).
 *
 * The parser is written without getopt(3): getopt keeps its state in
 * globals (optind, optarg, opterr) that belong to the application. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <furing/furing.h>

#include "mount.h"

#define THREADS_MAX 1024
#define QUEUE_DEPTH_MAX 4096

/* Everything the parse allocates, in one block (cl->priv). */
struct cmdline_store {
	char *mount_options; /* the caller's and the command line's, joined */
	char *fs_options;
	char **args;
	unsigned int nargs;
};

struct parse_state {
	struct cmdline_store *st;
	struct furing_cmdline cl;
	struct furing_config cfg;
	unsigned int flags;
	size_t cfg_n; /* the caller's sizeof(struct furing_config) */
	const char *mountpoint_candidate;
	char *err;
	size_t errlen;
};

static int fail(struct parse_state *p, int ret, const char *fmt, const char *a, const char *b)
{
	snprintf(p->err, p->errlen, fmt, a, b);
	return ret;
}

/* Appends @item to the comma-separated string *@list. */
static int append_item(char **list, const char *item)
{
	size_t old = *list ? strlen(*list) : 0;
	char *n = realloc(*list, old + strlen(item) + 2);

	if (!n)
		return -ENOMEM;
	if (old)
		n[old++] = ',';
	strcpy(n + old, item);
	*list = n;
	return 0;
}

/* A whole number from @min to @max, digits only. */
static int parse_number(struct parse_state *p, const char *item, const char *v, unsigned long min,
			unsigned long max, unsigned int *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = *v >= '0' && *v <= '9' ? strtoul(v, &end, 10) : 0;
	if (!(*v >= '0' && *v <= '9') || errno || *end || n < min || n > max) {
		char range[64];
		snprintf(range, sizeof(range), "%lu to %lu", min, max);
		return fail(p, -EINVAL, "-o %s: needs a whole number from %s", item, range);
	}
	*out = (unsigned int)n;
	return 0;
}

/* A caller built against an older header has a shorter furing_config: an
 * option whose field it lacks fails instead of vanishing. */
#define NEED(p, field, what)                                                                                \
	do {                                                                                                 \
		if (offsetof(struct furing_config, field) + sizeof((p)->cfg.field) > (p)->cfg_n)             \
			return fail(p, -EINVAL, "%s: this program's struct furing_config has no %s field", what, \
				    #field);                                                                 \
	} while (0)

static int set_debug(struct parse_state *p, const char *what)
{
	NEED(p, debug, what);
	NEED(p, log, what);
	p->cfg.debug = true;
	p->cl.foreground = true;
	/* Asked for on the command line: the lines must go somewhere. */
	if (!p->cfg.log)
		p->cfg.log = furing_log_stderr;
	return 0;
}

/* One item of -o. */
static int option_item(struct parse_state *p, const char *item)
{
	const char *v = strchr(item, '=');
	size_t klen = v ? (size_t)(v - item) : strlen(item);
	int ret;

#define KEY(name) (klen == sizeof(name) - 1 && !strncmp(item, name, klen))
	if (!*item)
		return fail(p, -EINVAL, "-o: empty option (two commas, or one at an end)%s%s", "", "");
	if (!v && KEY("allow_other")) {
		NEED(p, allow_other, "-o allow_other");
		p->cfg.allow_other = true;
		return 0;
	}
	if (!v && KEY("default_permissions")) {
		NEED(p, default_permissions, "-o default_permissions");
		p->cfg.default_permissions = true;
		return 0;
	}
	if (!v && (KEY("ro") || KEY("rw"))) {
		NEED(p, read_only, "-o ro/rw");
		p->cfg.read_only = item[1] == 'o';
		return 0;
	}
	if (!v && KEY("debug"))
		return set_debug(p, "-o debug");
	if (v && KEY("io_uring")) {
		NEED(p, io_uring, "-o io_uring=");
		v++;
		if (!strcmp(v, "auto"))
			p->cfg.io_uring = FURING_IO_URING_AUTO;
		else if (!strcmp(v, "on"))
			p->cfg.io_uring = FURING_IO_URING_ON;
		else if (!strcmp(v, "off"))
			p->cfg.io_uring = FURING_IO_URING_OFF;
		else
			return fail(p, -EINVAL, "-o %s: io_uring must be auto, on or off%s", item, "");
		return 0;
	}
	if (v && KEY("threads")) {
		NEED(p, threads, "-o threads=");
		return parse_number(p, item, v + 1, 1, THREADS_MAX, &p->cfg.threads);
	}
	if (v && KEY("queue_depth")) {
		NEED(p, queue_depth, "-o queue_depth=");
		return parse_number(p, item, v + 1, 1, QUEUE_DEPTH_MAX, &p->cfg.queue_depth);
	}
#undef KEY
	char why[512];
	ret = fu_mount_option_check(item, why, sizeof(why));
	if (ret == 0)
		NEED(p, mount_options, item);
	if (ret == 0)
		return append_item(&p->st->mount_options, item) < 0 ? fail(p, -ENOMEM, "out of memory%s%s", "", "") : 0;
	if (ret != -ENOENT) {
		/* "mount_options: ..." is the configuration's name for it. */
		const char *msg = strncmp(why, "mount_options: ", 15) ? why : why + 15;
		return fail(p, ret, "-o %s", msg, "");
	}
	if (!(p->flags & FURING_CMDLINE_FS_OPTIONS))
		return fail(p, -EINVAL, "unknown option '-o %s'%s", item, "");
	return append_item(&p->st->fs_options, item) < 0 ? fail(p, -ENOMEM, "out of memory%s%s", "", "") : 0;
}

/* The value of -o: items separated by commas (no escapes). */
static int option_list(struct parse_state *p, const char *list)
{
	char *copy = strdup(list), *rest = copy;
	int ret = 0;

	if (!copy)
		return fail(p, -ENOMEM, "out of memory%s%s", "", "");
	for (char *item = strsep(&rest, ","); item && ret == 0; item = strsep(&rest, ","))
		ret = option_item(p, item);
	free(copy);
	return ret;
}

static int positional(struct parse_state *p, char *arg)
{
	struct cmdline_store *st = p->st;

	/* Every argument is a candidate for the mountpoint; the one before
	 * becomes an argument of the filesystem's. */
	if (p->mountpoint_candidate) {
		if (!(p->flags & FURING_CMDLINE_ARGS))
			return fail(p, -EINVAL, "one MOUNTPOINT expected, not '%s' and '%s'", p->mountpoint_candidate, arg);
		char **n = realloc(st->args, (st->nargs + 2) * sizeof(*n));
		if (!n)
			return fail(p, -ENOMEM, "out of memory%s%s", "", "");
		st->args = n;
		st->args[st->nargs++] = (char *)p->mountpoint_candidate;
		st->args[st->nargs] = NULL;
	}
	p->mountpoint_candidate = arg;
	return 0;
}

/* One argument that starts with '-' (not "-" alone, not "--"). @next: the
 * argument after it, which -o may take; *used set when it did. */
static int short_flags(struct parse_state *p, const char *arg, const char *next, bool *used)
{
	for (const char *c = arg + 1; *c; c++) {
		switch (*c) {
		case 'h':
			p->cl.help = true;
			break;
		case 'V':
			p->cl.version = true;
			break;
		case 'f':
			p->cl.foreground = true;
			break;
		case 'd': {
			int ret = set_debug(p, "-d");
			if (ret < 0)
				return ret;
			break;
		}
		case 's':
			NEED(p, threads, "-s");
			p->cfg.threads = 1;
			break;
		case 'o':
			if (c[1])
				return option_list(p, c + 1);
			if (!next)
				return fail(p, -EINVAL, "option %s needs a value (-o OPT[,OPT...])%s", arg, "");
			*used = true;
			return option_list(p, next);
		default: {
			char flag[3] = {'-', *c, '\0'};
			return fail(p, -EINVAL, "unknown option %s%s", flag,
				    c == arg + 1 && !c[1] ? "" : " (in a group of short options)");
		}
		}
	}
	return 0;
}

static int parse(struct parse_state *p, int argc, char *const argv[])
{
	bool options_end = false;
	int ret = 0;

	for (int i = 1; i < argc && ret == 0; i++) {
		char *arg = argv[i];

		if (options_end || arg[0] != '-' || !arg[1]) {
			ret = positional(p, arg);
		} else if (!strcmp(arg, "--")) {
			options_end = true;
		} else if (!strcmp(arg, "--help")) {
			p->cl.help = true;
		} else if (!strcmp(arg, "--version")) {
			p->cl.version = true;
		} else if (arg[1] == '-') {
			ret = fail(p, -EINVAL, "unknown option %s%s", arg, "");
		} else {
			bool used = false;
			ret = short_flags(p, arg, i + 1 < argc ? argv[i + 1] : NULL, &used);
			if (used)
				i++;
		}
	}
	if (ret == 0 && !p->mountpoint_candidate && !p->cl.help && !p->cl.version)
		ret = fail(p, -EINVAL, "no MOUNTPOINT given%s%s", "", "");
	return ret;
}

int furing_parse_cmdline(int argc, char *const argv[], unsigned int flags, struct furing_cmdline *cl,
			 size_t cl_size, struct furing_config *cfg, size_t cfg_size, char *err, size_t errlen)
{
	char dummy[1];
	struct parse_state p = {.flags = flags, .err = err ? err : dummy, .errlen = err ? errlen : sizeof(dummy)};
	size_t cfg_n = cfg_size < sizeof(p.cfg) ? cfg_size : sizeof(p.cfg);
	size_t cl_n = cl_size < sizeof(p.cl) ? cl_size : sizeof(p.cl);
	int ret;

	if (!cl || cl_n < sizeof(void *) || !cfg || !argv || argc < 0) {
		snprintf(p.err, p.errlen, "furing_parse_cmdline: cl, cfg and argv are needed");
		return -EINVAL;
	}
	memset(cl, 0, cl_n);
	memcpy(&p.cfg, cfg, cfg_n);
	p.cfg_n = cfg_n;
	p.st = calloc(1, sizeof(*p.st));
	if (!p.st) {
		snprintf(p.err, p.errlen, "out of memory");
		return -ENOMEM;
	}
	if (cfg_n >= offsetof(struct furing_config, mount_options) + sizeof(p.cfg.mount_options) &&
	    p.cfg.mount_options && p.cfg.mount_options[0] &&
	    (p.st->mount_options = strdup(p.cfg.mount_options)) == NULL) {
		free(p.st);
		snprintf(p.err, p.errlen, "out of memory");
		return -ENOMEM;
	}
	ret = parse(&p, argc, argv);
	if (ret < 0) {
		p.cl.priv = p.st;
		furing_cmdline_free(&p.cl);
		return ret;
	}
	p.cl.priv = p.st;
	p.cl.mountpoint = p.mountpoint_candidate;
	if (!p.st->args && !(p.st->args = calloc(1, sizeof(*p.st->args)))) {
		/* an empty, NULL-terminated list all the same */
		furing_cmdline_free(&p.cl);
		snprintf(p.err, p.errlen, "out of memory");
		return -ENOMEM;
	}
	p.cl.args = p.st->args;
	p.cl.nargs = p.st->nargs;
	p.cl.fs_options = p.st->fs_options;
	if (p.st->mount_options)
		p.cfg.mount_options = p.st->mount_options;
	memcpy(cfg, &p.cfg, cfg_n);
	memcpy(cl, &p.cl, cl_n);
	return 0;
}

void furing_cmdline_free(struct furing_cmdline *cl)
{
	struct cmdline_store *st = cl ? cl->priv : NULL;

	if (!st)
		return;
	free(st->mount_options);
	free(st->fs_options);
	free(st->args);
	free(st);
	cl->priv = NULL;
}

const char *furing_cmdline_help(void)
{
	return "    -h, --help             print this help\n"
	       "    -V, --version          print the version\n"
	       "    -f                     stay in the foreground (do not daemonize)\n"
	       "    -d, -o debug           one line per request on stderr (implies -f)\n"
	       "    -s                     one worker thread (-o threads=1)\n"
	       "    -o OPT[,OPT...]        mount and session options:\n"
	       "    -o allow_other         other users may use the mount\n"
	       "    -o default_permissions the kernel checks permissions from the attributes\n"
	       "    -o ro, -o rw           mount read-only, read-write (the default)\n"
	       "    -o io_uring=MODE       FUSE-over-io_uring: auto (when offered), on (required), off\n"
	       "    -o threads=N           worker threads (default: online CPUs)\n"
	       "    -o queue_depth=N       requests in flight per queue (default 32)\n"
	       "    -o noexec, -o noatime  the mount flags (nosuid and nodev are always on)\n"
	       "    -o fsname=NAME         the mount's source in /proc/mounts\n"
	       "    -o subtype=NAME        the mount's type: fuse.NAME\n"
	       "    -o max_read=BYTES      the largest read request\n"
	       "    -o context=CONTEXT     the security context of every file (root, SELinux)\n";
}

/* ---- furing_main ---- */

static void print_error(const char *what, const char *why)
{
	fprintf(stderr, "%s: %s%s\n", program_invocation_short_name, what, why);
}

/* The parent's side of daemonizing: waits for the child's word on @fd and
 * exits. 'R': serving; 'E' and a message: failed, the message goes to
 * stderr. */
_Noreturn static void parent_wait(int fd)
{
	char buf[1024];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
		if (buf[0] == 'R')
			break;
	}
	buf[got] = '\0';
	if (got >= 1 && buf[0] == 'R')
		_exit(0);
	if (got >= 1 && buf[0] == 'E')
		fprintf(stderr, "%s: %s\n", program_invocation_short_name, buf + 1);
	else
		fprintf(stderr, "%s: the daemon ended before it served\n", program_invocation_short_name);
	_exit(1);
}

/* Forks: the parent never returns. Returns the child's end of the pipe, or
 * -1 with the reason printed. */
static int daemon_fork(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		print_error("pipe: ", strerror(errno));
		return -1;
	}
	fflush(NULL); /* what is buffered now would be written twice */
	pid_t pid = fork();
	if (pid < 0) {
		print_error("fork: ", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		parent_wait(p[0]);
	}
	close(p[0]);
	setsid();
	return p[1];
}

static void daemon_failed(int fd, const char *what, const char *why)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "E%s%s", what, why);

	if (n > (int)sizeof(msg) - 1)
		n = (int)sizeof(msg) - 1;
	if (write(fd, msg, (size_t)n) < 0)
		print_error(what, why);
	close(fd);
}

static void daemon_ready(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (chdir("/") < 0) {
		/* "/" is always there; nothing else to do about it */
	}
	/* Last: the parent exits on this, and the mount must not hold the
	 * caller's terminal by then. */
	if (write(fd, "R", 1) < 0) {
		/* the parent is gone: nobody to tell */
	}
	close(fd);
}

int furing_main(const char *mountpoint, unsigned int flags, const struct furing_ops *ops, size_t ops_size,
		const struct furing_config *cfg, size_t cfg_size, void *fs)
{
	char err[512];
	int ready_fd = -1, ret;

	if (!mountpoint) {
		print_error("no mountpoint given", "");
		return 1;
	}
	struct furing_session *s = furing_session_new(ops, ops_size, cfg, cfg_size, fs, err, sizeof(err));
	if (!s) {
		print_error(err, "");
		return 1;
	}
	if (!(flags & FURING_MAIN_FOREGROUND) && (ready_fd = daemon_fork()) < 0) {
		furing_session_destroy(s);
		return 1;
	}
	ret = furing_session_handle_signals(s);
	if (ret < 0)
		snprintf(err, sizeof(err), "cannot install signal handlers: %s", strerror(-ret));
	else
		ret = furing_session_start(s, mountpoint, err, sizeof(err));
	if (ret < 0) {
		if (ready_fd >= 0)
			daemon_failed(ready_fd, err, "");
		else
			print_error(err, "");
		furing_session_destroy(s);
		return 1;
	}
	if (ready_fd >= 0)
		daemon_ready(ready_fd);
	ret = furing_session_wait(s); /* a fatal error's reason went to the log */
	furing_session_destroy(s);
	return ret < 0 ? 1 : 0;
}
