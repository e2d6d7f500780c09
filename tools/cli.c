/* See cli.h. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void die(int code, const char *fmt, ...)
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

bool value_count(const char *opt, const char *v, unsigned long min, unsigned long max, unsigned long *out, char *err,
		 size_t errlen)
{
	char *end;

	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!starts_with_digit(v) || errno || *end || n < min || n > max) {
		snprintf(err, errlen, "%s needs a whole number from %lu to %lu, not '%s'", opt, min, max, v);
		return false;
	}
	*out = n;
	return true;
}

#define BYTES_MIN 8192u
#define BYTES_MAX (16u << 20)

bool value_bytes(const char *opt, const char *v, uint32_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned int shift = 0;

	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (!starts_with_digit(v) || errno) {
		snprintf(err, errlen, "%s needs a size in bytes (K/M suffixes), not '%s'", opt, v);
		return false;
	}
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	/* Compare before shifting: a shift past 64 bits wraps (2^52+1 M is 1 M). */
	if (*end || n > BYTES_MAX >> shift || n << shift < BYTES_MIN || (n << shift) % 4096) {
		snprintf(err, errlen, "%s must be a multiple of 4096 from 8K to 16M, not '%s'", opt, v);
		return false;
	}
	*out = (uint32_t)(n << shift);
	return true;
}

bool value_choice(const char *opt, const char *v, const char *const names[], int *out, char *err, size_t errlen)
{
	char list[256] = "";
	size_t n = 0;

	for (int i = 0; names[i]; i++) {
		if (!strcmp(v, names[i])) {
			*out = i;
			return true;
		}
		n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s%s",
				      i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
		if (n >= sizeof(list))
			n = sizeof(list) - 1;
	}
	snprintf(err, errlen, "%s must be %s, not '%s'", opt, list, v);
	return false;
}

/* A byte count with an optional K/M/G suffix, from 4 KiB to 4 GiB. */
static bool value_size(const char *opt, const char *v, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	unsigned int shift = 0;

	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (errno || end == v || *end || *v == '-' || n > (4ull << 30) >> shift || (n << shift) < 4096) {
		snprintf(err, errlen, "%s must be a byte count from 4K to 4G (K/M/G suffix allowed), not '%s'", opt, v);
		return false;
	}
	*out = (uint64_t)n << shift;
	return true;
}

unsigned long parse_count(const char *opt, const char *v, unsigned long min, unsigned long max)
{
	char err[256];
	unsigned long n;

	if (!value_count(opt, v, min, max, &n, err, sizeof(err)))
		die(EXIT_USAGE, "%s", err);
	return n;
}

int parse_choice(const char *opt, const char *v, const char *const names[])
{
	char err[512];
	int i;

	if (!value_choice(opt, v, names, &i, err, sizeof(err)))
		die(EXIT_USAGE, "%s", err);
	return i;
}

static int write_pidfile(const char *path)
{
	/* The mode is explicit: passthrough runs with umask 0. */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
		fprintf(stderr, "furing: cannot write pidfile %s: %s\n", path, strerror(errno));
		if (!f && fd >= 0)
			close(fd);
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

/* The library names its own settings; on the command line (and in the
 * daemon's arguments) they are options. */
static void start_error(const struct furing_config *cfg, const char *lib_err, char *err, size_t errlen)
{
	static const char lib_on[] = "io_uring = FURING_IO_URING_ON: ";

	if (cfg->io_uring == FURING_IO_URING_ON && !strncmp(lib_err, lib_on, sizeof(lib_on) - 1))
		snprintf(err, errlen, "--io-uring=on: %s", lib_err + sizeof(lib_on) - 1);
	else
		snprintf(err, errlen, "%s", lib_err);
}

void cli_config_defaults(struct furing_config *cfg)
{
	/* valgrind does not see a waiting io_uring_enter as blocking: the
	 * valgrind test asks the loop to wait in poll(2) instead. */
	const char *wait = getenv("FURING_LOOP_WAIT");
	cfg->wait_with_poll = wait && !strcmp(wait, "poll");
	/* Placement follows the load by default (see --help and
	 * bench/README.md): bound while other callers keep other queues busy,
	 * free while one caller runs alone. */
	cfg->pin = FURING_PIN_AUTO;
	/* The library is silent by default; the tool shows its messages. */
	cfg->log = furing_log_stderr;
}

void cli_session_init(struct cli_session *cs, const char *command)
{
	memset(cs, 0, sizeof(*cs));
	cs->command = command;
	cs->ready_fd = -1;
	/* Our own messages for getopt's complaints, and a fresh scan. */
	opterr = 0;
	optind = 1;
	cli_config_defaults(&cs->cfg);
}

int cli_transport_option(struct furing_config *cfg, int o, const char *v, char *err, size_t errlen)
{
	static const char *const io_uring_modes[] = {"auto", "on", "off", NULL};
	static const enum furing_io_uring_mode io_uring_values[] = {FURING_IO_URING_AUTO, FURING_IO_URING_ON,
								    FURING_IO_URING_OFF};
	static const char *const pin_modes[] = {"auto", "on", "off", NULL};
	static const enum furing_pin pin_values[] = {FURING_PIN_AUTO, FURING_PIN_ON, FURING_PIN_OFF};
	static const char *const feature_modes[] = {"auto", "on", "off", NULL};
	static const enum furing_feature feature_values[] = {FURING_FEATURE_AUTO, FURING_FEATURE_ON,
							     FURING_FEATURE_OFF};
	unsigned long n;
	int i;

	switch (o) {
	case CLI_OPT_ALLOW_OTHER:
		cfg->allow_other = true;
		return 1;
	case CLI_OPT_IO_URING:
		if (!value_choice("--io-uring", v, io_uring_modes, &i, err, errlen))
			return -1;
		cfg->io_uring = io_uring_values[i];
		return 1;
	case CLI_OPT_THREADS:
		if (!value_count("--threads", v, 1, 1024, &n, err, errlen))
			return -1;
		cfg->threads = (unsigned int)n;
		return 1;
	case CLI_OPT_QUEUE_DEPTH:
		if (!value_count("--queue-depth", v, 1, 4096, &n, err, errlen))
			return -1;
		cfg->queue_depth = (unsigned int)n;
		return 1;
	case CLI_OPT_PAYLOAD_SIZE:
		return value_bytes("--payload-size", v, &cfg->payload_size, err, errlen) ? 1 : -1;
	case CLI_OPT_BUSY_POLL:
		if (!value_count("--busy-poll", v, 0, 1000000, &n, err, errlen))
			return -1;
		cfg->busy_poll_us = (uint32_t)n;
		cfg->busy_poll_off = cfg->busy_poll_us == 0;
		return 1;
	case CLI_OPT_PIN:
		if (!v) {
			cfg->pin = FURING_PIN_ON;
			return 1;
		}
		if (!value_choice("--pin", v, pin_modes, &i, err, errlen))
			return -1;
		cfg->pin = pin_values[i];
		return 1;
	case CLI_OPT_NO_PIN:
		cfg->pin = FURING_PIN_OFF;
		return 1;
	case CLI_OPT_DEBUG:
		cfg->debug = true;
		return 1;
	case CLI_OPT_BUFFER_POOL:
		if (!value_choice("--buffer-pool", v, feature_modes, &i, err, errlen))
			return -1;
		cfg->buffer_pool = feature_values[i];
		return 1;
	case CLI_OPT_BUFFER_POOL_SIZE:
		return value_size("--buffer-pool-size", v, &cfg->buffer_pool_size, err, errlen) ? 1 : -1;
	case CLI_OPT_ZERO_COPY:
		if (!value_choice("--zero-copy", v, feature_modes, &i, err, errlen))
			return -1;
		cfg->zero_copy = feature_values[i];
		return 1;
	default:
		return 0;
	}
}

void cli_shared_option(struct cli_session *cs, int o, char **argv)
{
	char err[512];

	switch (cli_transport_option(&cs->cfg, o, optarg, err, sizeof(err))) {
	case 1:
		return;
	case -1:
		die(EXIT_USAGE, "%s", err);
	}
	switch (o) {
	case CLI_OPT_DAEMONIZE:
		cs->daemonize = true;
		break;
	case CLI_OPT_PIDFILE:
		cs->pidfile = optarg;
		break;
	case 'V':
		printf("furing %s\n", furing_version());
		exit(0);
	case ':':
		die(EXIT_USAGE, "option %s needs a value (see furing %s --help)", argv[optind - 1], cs->command);
	default:
		die(EXIT_USAGE, "unknown option %s (see furing %s --help)", argv[optind - 1], cs->command);
	}
}

void cli_parse_command(const struct cli_command *cmd, int argc, char **argv, void *args, struct cli_session *cs,
		       const char **first, const char **second)
{
	char err[512];
	int o;

	while ((o = getopt_long(argc, argv, ":hV", cmd->options, NULL)) != -1) {
		if (o == 'h') {
			cmd->help();
			exit(0);
		}
		int r = cmd->option(args, o, optarg, err, sizeof(err));
		if (r < 0)
			die(EXIT_USAGE, "%s", err);
		if (r == 0)
			cli_shared_option(cs, o, argv);
	}
	if (argc - optind != 2)
		die(EXIT_USAGE, "%s needs %s (see furing %s --help)", cmd->name, cmd->operands, cmd->name);
	*first = argv[optind];
	*second = argv[optind + 1];
}

void cli_daemonize(struct cli_session *cs)
{
	if (cs->daemonize)
		cs->ready_fd = daemonize_start();
}

struct furing_session *session_launch(const struct furing_config *cfg, const struct furing_ops *ops, size_t ops_size,
				      void *fs, const char *mountpoint, bool own_signals, const char *init_error,
				      char *err, size_t errlen)
{
	char lib_err[512];
	struct furing_session *s = furing_session_new(ops, ops_size, cfg, sizeof(*cfg), fs, lib_err, sizeof(lib_err));

	if (!s) {
		snprintf(err, errlen, "%s", lib_err);
		return NULL;
	}
	if (own_signals) {
		int ret = furing_session_handle_signals(s);
		if (ret < 0) {
			snprintf(err, errlen, "cannot install signal handlers: %s", strerror(-ret));
			furing_session_destroy(s);
			return NULL;
		}
	}
	if (furing_session_start(s, mountpoint, lib_err, sizeof(lib_err)) < 0) {
		if (init_error && init_error[0])
			snprintf(err, errlen, "%s", init_error);
		else
			start_error(cfg, lib_err, err, errlen);
		furing_session_destroy(s);
		return NULL;
	}
	return s;
}

int cli_session_started(struct cli_session *cs, struct furing_session *s)
{
	if (cs->pidfile) {
		if (write_pidfile(cs->pidfile) < 0) {
			cli_session_abort(cs, s);
			return -1;
		}
		cs->pidfile_written = true;
	}
	return 0;
}

struct furing_session *cli_session_start(struct cli_session *cs, const struct furing_ops *ops, size_t ops_size,
					 void *fs, const char *mountpoint, const char *init_error)
{
	char err[1024];
	struct furing_session *s =
		session_launch(&cs->cfg, ops, ops_size, fs, mountpoint, true, init_error, err, sizeof(err));

	if (!s) {
		fprintf(stderr, "furing: %s\n", err);
		return NULL;
	}
	return cli_session_started(cs, s) < 0 ? NULL : s;
}

static void remove_pidfile(struct cli_session *cs)
{
	if (cs->pidfile_written)
		unlink(cs->pidfile);
	cs->pidfile_written = false;
}

int cli_session_serve(struct cli_session *cs, struct furing_session *s)
{
	if (cs->ready_fd >= 0) {
		daemonize_ready(cs->ready_fd);
		cs->ready_fd = -1;
	}
	int code = furing_session_wait(s) < 0 ? EXIT_RUNTIME : 0;
	char line[4096];
	furing_session_stats_line(s, line, sizeof(line));
	fprintf(stderr, "furing: summary %s\n", line);
	furing_session_destroy(s);
	/* After a failure the pidfile stays, to tell which process it was. */
	if (code == 0)
		remove_pidfile(cs);
	return code;
}

void cli_session_abort(struct cli_session *cs, struct furing_session *s)
{
	furing_session_stop(s);
	furing_session_wait(s);
	furing_session_destroy(s);
	remove_pidfile(cs);
}
