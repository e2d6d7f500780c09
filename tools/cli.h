/* What the furing subcommands share: one-line errors and exit codes,
 * option value parsers, and running a session in the foreground or as a
 * daemon. */
#ifndef FURING_TOOLS_CLI_H
#define FURING_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <furing/furing.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* "furing: <message>" on stderr and exit(@code). */
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* A whole number in [min, max] for option @opt, or a usage error. */
unsigned long parse_count(const char *opt, const char *v, unsigned long min, unsigned long max);
/* A byte size with an optional K/M suffix, a multiple of 4096 from 8K to
 * 16M (a ring payload size), or a usage error. */
uint32_t parse_bytes(const char *opt, const char *v);

/* --daemonize: forks; the parent exits once the child calls
 * daemonize_ready (0) or dies first (1). Returns the child's end. */
int daemonize_start(void);
void daemonize_ready(int fd);
int write_pidfile(const char *path);

/* How the library's start errors read on the command line: the library
 * names its own settings, the tool its options. */
void print_start_error(const struct furing_config *cfg, const char *err);

#endif
