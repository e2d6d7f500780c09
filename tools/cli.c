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

unsigned long parse_count(const char *opt, const char *v, unsigned long min, unsigned long max)
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

uint32_t parse_bytes(const char *opt, const char *v)
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

int write_pidfile(const char *path)
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
int daemonize_start(void)
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

void daemonize_ready(int fd)
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

/* The library names its own settings; on the command line they are
 * options. */
void print_start_error(const struct furing_config *cfg, const char *err)
{
	static const char lib_on[] = "io_uring = FURING_IO_URING_ON: ";

	if (cfg->io_uring == FURING_IO_URING_ON && !strncmp(err, lib_on, sizeof(lib_on) - 1))
		fprintf(stderr, "furing: --io-uring=on: %s\n", err + sizeof(lib_on) - 1);
	else
		fprintf(stderr, "furing: %s\n", err);
}
