/* What the furing subcommands share: one-line errors and exit codes,
 * option value parsers, and running a session in the foreground or as a
 * daemon. */
#ifndef FURING_TOOLS_CLI_H
#define FURING_TOOLS_CLI_H

#include <getopt.h>
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

/* @v as the index of one of @names (NULL-terminated) for option @opt, or a
 * usage error that lists them: "--cache must be none or kernel, not 'x'". */
int parse_choice(const char *opt, const char *v, const char *const names[]);

/* The options every subcommand takes: transport and process. A subcommand
 * numbers its own options from 256 and puts CLI_SHARED_OPTIONS at the end
 * of its getopt_long table (it ends the table). */
enum {
	CLI_OPT_ALLOW_OTHER = 0x1000,
	CLI_OPT_IO_URING,
	CLI_OPT_THREADS,
	CLI_OPT_QUEUE_DEPTH,
	CLI_OPT_PAYLOAD_SIZE,
	CLI_OPT_BUSY_POLL,
	CLI_OPT_PIN,
	CLI_OPT_NO_PIN,
	CLI_OPT_DAEMONIZE,
	CLI_OPT_PIDFILE,
	CLI_OPT_DEBUG,
	CLI_OPT_BUFFER_POOL,
	CLI_OPT_BUFFER_POOL_SIZE,
	CLI_OPT_ZERO_COPY,
};
#define CLI_SHARED_OPTIONS                                                                                     \
	{"allow-other", no_argument, NULL, CLI_OPT_ALLOW_OTHER},                                               \
		{"io-uring", required_argument, NULL, CLI_OPT_IO_URING},                                       \
		{"threads", required_argument, NULL, CLI_OPT_THREADS},                                         \
		{"queue-depth", required_argument, NULL, CLI_OPT_QUEUE_DEPTH},                                 \
		{"payload-size", required_argument, NULL, CLI_OPT_PAYLOAD_SIZE},                               \
		{"busy-poll", required_argument, NULL, CLI_OPT_BUSY_POLL}, {"pin", optional_argument, NULL, CLI_OPT_PIN}, \
		{"no-pin", no_argument, NULL, CLI_OPT_NO_PIN}, {"daemonize", no_argument, NULL, CLI_OPT_DAEMONIZE}, \
		{"pidfile", required_argument, NULL, CLI_OPT_PIDFILE}, {"debug", no_argument, NULL, CLI_OPT_DEBUG}, \
		{"buffer-pool", required_argument, NULL, CLI_OPT_BUFFER_POOL},                                 \
		{"buffer-pool-size", required_argument, NULL, CLI_OPT_BUFFER_POOL_SIZE},                       \
		{"zero-copy", required_argument, NULL, CLI_OPT_ZERO_COPY},                                     \
		{"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, { NULL, 0, NULL, 0 }

/* The --help lines of --pin, the same for every command. */
#define CLI_HELP_PIN                                                                                 \
	"  --pin[=auto|on|off]   where workers run (ring). on: each on the CPUs of its queues\n"       \
	"                        (/dev/fuse: one worker per CPU); off: where the scheduler puts\n"     \
	"                        them; auto (default): on its queues' CPUs while other callers\n"      \
	"                        keep other queues busy (callers on every CPU), anywhere while\n"      \
	"                        one caller runs alone; re-decided every few ms. --pin = on,\n"        \
	"                        --no-pin = off\n"

/* The --help lines of the Linux 7.3 ring options, the same for every command. */
#define CLI_HELP_LINUX73                                                                             \
	"  --buffer-pool=auto|on|off  Linux 7.3: each queue's entries share one registered pool of\n" \
	"                        payload buffers instead of one buffer each; auto (default): when\n"  \
	"                        the kernel offers it and threads <= queues; on: or refuse to start\n"\
	"  --buffer-pool-size=BYTES  pool per queue (K/M/G suffix; default: queue depth / 4\n"       \
	"                        buffers of max_write, a quarter of the per-entry memory)\n"          \
	"  --zero-copy=auto|on|off  Linux 7.3, pools, CAP_SYS_ADMIN: the kernel lends the caller's\n" \
	"                        pages of READ/WRITE to the worker's ring, read and written with\n"  \
	"                        READ_FIXED/WRITE_FIXED: no copy; auto (default): where offered;\n"\
	"                        on: or refuse to start\n"

/* What the shared options set, and the session they run. */
struct cli_session {
	const char *command; /* "export": named in usage errors */
	struct furing_config cfg;
	bool daemonize;
	const char *pidfile;
	bool pidfile_written;
	int ready_fd; /* --daemonize: the parent's pipe until serving */
};

/* Sets up @cs for subcommand @command (its getopt state too). */
void cli_session_init(struct cli_session *cs, const char *command);
/* getopt_long's answer @o when it is not one of the subcommand's own
 * options: a shared option is applied, -V prints the version and exits, a
 * missing value or an unknown option is a usage error. */
void cli_shared_option(struct cli_session *cs, int o, char **argv);

/* --daemonize: forks; the parent exits once the child is serving (0) or
 * dies first (1). Call it before opening what the serving process must own
 * (a child process, connections). */
void cli_daemonize(struct cli_session *cs);
/* Creates the session over @fs, installs the usual signal handlers, starts
 * it at @mountpoint and writes the pidfile. On failure prints one line (the
 * filesystem's own reason from @init_error when it has one) and returns
 * NULL with nothing left behind. */
struct furing_session *cli_session_start(struct cli_session *cs, const struct furing_ops *ops, size_t ops_size,
					 void *fs, const char *mountpoint, const char *init_error);
/* Once the serving line is printed: detaches a daemon, waits until the
 * session ends, prints the summary, destroys it and removes the pidfile.
 * The exit code. */
int cli_session_serve(struct cli_session *cs, struct furing_session *s);
/* A started session that must not serve after all: stop it, tear it down,
 * remove the pidfile. */
void cli_session_abort(struct cli_session *cs, struct furing_session *s);

#endif
