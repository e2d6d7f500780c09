/* What the furing subcommands share: one-line errors and exit codes,
 * option value parsers, and running a session in the foreground or as a
 * daemon. */
#ifndef FURING_TOOLS_CLI_H
#define FURING_TOOLS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <furing/furing.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* "furing: <message>" on stderr and exit(@code). */
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Option values, for the command line and the daemon's arguments alike:
 * each stores the value of option @opt (named so in the reason) and
 * returns true, or returns false with a one-line reason in @err. */
/* A whole number in [min, max]. */
bool value_count(const char *opt, const char *v, unsigned long min, unsigned long max, unsigned long *out, char *err,
		 size_t errlen);
/* A byte size with an optional K/M suffix, a multiple of 4096 from 8K to
 * 16M (a ring payload size). */
bool value_bytes(const char *opt, const char *v, uint32_t *out, char *err, size_t errlen);
/* @v as the index of one of @names (NULL-terminated); the reason lists
 * them: "--cache must be none or kernel, not 'x'". */
bool value_choice(const char *opt, const char *v, const char *const names[], int *out, char *err, size_t errlen);

/* The same, for the command line: a bad value is a usage error. */
unsigned long parse_count(const char *opt, const char *v, unsigned long min, unsigned long max);
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

/* The tool's defaults in a zeroed @cfg (placement, log, valgrind's wait). */
void cli_config_defaults(struct furing_config *cfg);
/* Sets up @cs for subcommand @command (its getopt state too). */
void cli_session_init(struct cli_session *cs, const char *command);
/* Applies transport option @o (CLI_OPT_*, not a process one) with value
 * @v (NULL for a flag, or --pin alone) to @cfg: 1 applied, 0 not a
 * transport option, -1 a bad value (@err says why). */
int cli_transport_option(struct furing_config *cfg, int o, const char *v, char *err, size_t errlen);
/* getopt_long's answer @o when it is not one of the subcommand's own
 * options: a shared option is applied, -V prints the version and exits, a
 * missing value or an unknown option is a usage error. */
void cli_shared_option(struct cli_session *cs, int o, char **argv);

/* A subcommand's own options: @option applies one (1), says it is not one
 * of them (0) or refuses its value (-1, @err says why); @help prints the
 * --help text. */
struct cli_command {
	const char *name;                 /* "export": messages and getopt's state */
	const struct option *options;     /* its getopt_long table */
	int (*option)(void *args, int o, const char *v, char *err, size_t errlen);
	void (*help)(void);
	const char *operands;             /* "IMAGE and MOUNTPOINT": the two it needs */
};

/* Parses a subcommand's command line: @cmd's own options into @args, the
 * shared ones into @cs (set up first with cli_session_init); --help prints
 * and exits 0, a bad option or value exits 2. Returns argv's two operands in
 * @first and @second. */
void cli_parse_command(const struct cli_command *cmd, int argc, char **argv, void *args, struct cli_session *cs,
		       const char **first, const char **second);

/* --daemonize: forks; the parent exits once the child is serving (0) or
 * dies first (1). Call it before opening what the serving process must own
 * (a child process, connections). */
void cli_daemonize(struct cli_session *cs);
/* Creates the session over @fs with @cfg, with @own_signals the usual
 * signal handlers (one session per process), and starts it at
 * @mountpoint. On failure NULL, with nothing left behind and one line in
 * @err (the filesystem's own reason from @init_error when it has one). */
struct furing_session *session_launch(const struct furing_config *cfg, const struct furing_ops *ops, size_t ops_size,
				      void *fs, const char *mountpoint, bool own_signals, const char *init_error,
				      char *err, size_t errlen);
/* After a successful start: writes the pidfile; on failure aborts @s and
 * returns -1. */
int cli_session_started(struct cli_session *cs, struct furing_session *s);
/* session_launch with the signal handlers, the error printed, and
 * cli_session_started. */
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
