/* `furing daemon --control PATH`: one process serving many exports, added
 * and removed at run time through a unix socket that speaks the control
 * protocol (doc/control.md). This file is the socket and its clients; the
 * exports are daemon_exports.c's. One thread runs it all, one request at a
 * time, but for the start of an export (export-add), which runs on a
 * thread of its own while the others are served; each export's session
 * has its own workers. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <furing/furing.h>

#include "cli.h"
#include "control_proto.h"
#include "daemon_config.h"
#include "daemon_events.h"
#include "daemon_exports.h"
#include "daemon_notify.h"
#include "daemon_stats.h"

int cmd_daemon(int argc, char **argv);

static const char daemon_help[] =
	"Usage: furing daemon --control PATH [--config FILE] [--max-buffer-memory BYTES]\n"
	"\n"
	"Serve any number of exports and passthrough mounts from one process, added, listed and removed at run\n"
	"time through the unix socket PATH (created mode 0600; only root and the daemon's\n"
	"own user may connect), which speaks JSON, one object per line (doc/control.md).\n"
	"furing ctl PATH COMMAND [KEY=VALUE...] is its client. Each export has its own\n"
	"session (its threads: one worker per online CPU, or threads=N, and one more)\n"
	"and takes the options of furing export (type export) or furing passthrough\n"
	"(type passthrough) as arguments of the same names. Runs in the foreground\n"
	"until SIGINT/SIGTERM, which remove every export and exit.\n"
	"\n"
	"  --control PATH        the control socket (a stale one left there is replaced)\n"
	"  --config FILE         exports to start at launch: JSON, {\"exports\": [{export-add's\n"
	"                        arguments}, ...]} (furing-daemon.conf(5)); SIGHUP or the reload\n"
	"                        command reads it again and adds/removes exports to match\n"
	"  --max-buffer-memory BYTES  the most memory the exports' request buffers may\n"
	"                        take together (K/M/G/T suffix; default: half the\n"
	"                        machine's): export-add refuses an export past it.\n"
	"                        Each needs queues x queue-depth x payload-size (68M\n"
	"                        on two CPUs by default), touched as requests use it\n"
	"  -h, --help            this text\n"
	"  -V, --version         the version\n"
	"\n"
	"Signals: SIGINT/SIGTERM remove every export and exit; SIGHUP reloads --config;\n"
	"SIGUSR1 prints every export's counters. With $NOTIFY_SOCKET set (systemd\n"
	"Type=notify) it sends READY=1 once every configured export serves.\n"
	"Exit status: 0 clean stop, 1 runtime error (an export of --config cannot start),\n"
	"2 usage error or an invalid --config file.\n";

/* Enough for people and scripts; a bound on what connections can hold
 * (each has a message buffer). */
#define CLIENTS_MAX 16
/* A client that does not read its replies must not stop the daemon. */
#define SEND_TIMEOUT_S 2

struct client {
	int fd;
	uint64_t serial; /* names it to an export-add that answers later */
	/* An export-add starting for it: its later requests wait (replies go
	 * in order), unread, until that one's reply is sent. */
	bool waiting;
	json_t *waiting_tag;
	size_t len;
	char buf[CONTROL_MAX_MESSAGE + 1]; /* a whole message and its newline */
};

struct daemon {
	const char *control_path;
	const char *config_path;
	uint64_t buffer_limit; /* --max-buffer-memory */
	struct daemon_config *config; /* NULL without --config */
	struct stat sock_st; /* the socket we made: removed at exit only if still ours */
	int listen_fd;
	int signal_fd;
	struct daemon_exports *exports;
	struct daemon_watch *watch; /* the backends' states, for their events */
	struct client *clients[CLIENTS_MAX];
	uint64_t next_serial;
	bool stop;
};

/* ------------------------------------------------------------ the socket */

/* A socket left at @path by a daemon that died refuses connections: it
 * may go. A live daemon's answers: leave it. Anything else is not ours. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int saved = errno;
	close(fd);
	if (r == 0)
		return -EADDRINUSE;
	if (saved != ECONNREFUSED)
		return -saved;
	return unlink(path) == 0 ? 0 : -errno;
}

static int control_listen(struct daemon *dm)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = dm->control_path;

	if (strlen(path) >= sizeof(sa.sun_path))
		die(EXIT_USAGE, "--control %s: a socket path has at most %zu bytes", path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int r = remove_stale_socket(path, &sa);
	if (r == -EADDRINUSE)
		die(EXIT_RUNTIME, "--control %s: another daemon answers there", path);
	if (r == -EEXIST)
		die(EXIT_RUNTIME, "--control %s exists and is not a socket", path);
	if (r < 0)
		die(EXIT_RUNTIME, "--control %s: %s", path, strerror(-r));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(EXIT_RUNTIME, "socket: %s", strerror(errno));
	/* Mode 0600 from the start: a chmod after bind would leave a moment
	 * in which anyone could connect. */
	mode_t old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int saved = errno;
	umask(old);
	if (r < 0)
		die(EXIT_RUNTIME, "--control %s: %s", path, strerror(saved));
	if (lstat(path, &dm->sock_st) < 0 || listen(fd, CLIENTS_MAX) < 0) {
		saved = errno;
		unlink(path);
		die(EXIT_RUNTIME, "--control %s: %s", path, strerror(saved));
	}
	return fd;
}

static void remove_socket(const struct daemon *dm)
{
	struct stat st;

	if (lstat(dm->control_path, &st) == 0 && st.st_dev == dm->sock_st.st_dev && st.st_ino == dm->sock_st.st_ino)
		unlink(dm->control_path);
}

/* ------------------------------------------------------------ messages */

/* Sends @msg (consumed) as one line. -1 when it cannot: drop the client. */
static int send_message(int fd, json_t *msg)
{
	size_t len;
	char *line = msg ? control_encode(msg, &len) : NULL;

	json_decref(msg);
	if (!line)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(line);
			return -1;
		}
		off += (size_t)n;
	}
	free(line);
	return 0;
}

/* SIGHUP and the reload command; systemd hears RELOADING=1 and READY=1
 * around it whatever the outcome, since the daemon goes on serving. */
static json_t *reload(struct daemon *dm, struct control_error *e)
{
	if (!dm->config) {
		control_fail(e, CONTROL_ERR_UNSUPPORTED, "the daemon was started without --config: nothing to reload");
		return NULL;
	}
	daemon_notify_reloading();
	json_t *ret = daemon_config_reload(dm->config, dm->exports, e);
	if (ret)
		fprintf(stderr, "furing: reloaded %s\n", daemon_config_path(dm->config));
	else
		fprintf(stderr, "furing: reload: %s\n", e->desc);
	daemon_notify("READY=1");
	return ret;
}

static json_t *run_command(struct daemon *dm, const struct control_request *req, struct control_error *e)
{
	if (!strcmp(req->command, "export-del"))
		return daemon_exports_del(dm->exports, req->args, e);
	if (!strcmp(req->command, "query-exports"))
		return daemon_exports_query(dm->exports, req->args, e);
	if (!strcmp(req->command, "reload")) {
		static const char *const none[] = {NULL};
		return control_known_args(req->args, none, "reload", e) < 0 ? NULL : reload(dm, e);
	}
	if (!strcmp(req->command, "query-stats"))
		return daemon_stats_query(dm->exports, req->args, e);
	if (!strcmp(req->command, "metrics"))
		return daemon_stats_metrics(dm->exports, req->args, e);
	control_fail(e, CONTROL_ERR_COMMAND, "unknown command '%s'", req->command);
	return NULL;
}

/* One message from a client: its reply sent, or (an export-add that
 * started) to come. -1: drop the client. */
static int handle_message(struct daemon *dm, struct client *c, const char *msg, size_t len)
{
	struct control_request req;
	struct control_error e;
	json_t *reply;

	if (control_parse(msg, len, &req, &e) < 0) {
		reply = control_reply_error(req.command, &e, req.tag);
	} else if (!strcmp(req.command, "export-add")) {
		if (daemon_exports_add_async(dm->exports, req.args, c->serial, &e) == 0) {
			c->waiting = true;
			c->waiting_tag = json_incref(req.tag);
			control_request_free(&req);
			return 0;
		}
		reply = control_reply_error(req.command, &e, req.tag);
	} else {
		json_t *ret = run_command(dm, &req, &e);
		reply = ret ? control_reply_ok(req.command, ret, req.tag) : control_reply_error(req.command, &e, req.tag);
	}
	control_request_free(&req);
	return send_message(c->fd, reply);
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

static int send_error(int fd, const char *cls, const char *desc)
{
	struct control_error e;

	control_fail(&e, cls, "%s", desc);
	return send_message(fd, control_reply_error(NULL, &e, NULL));
}

/* Every whole line a client sent, until one makes it wait. -1: drop the
 * client. */
static int client_lines(struct daemon *dm, struct client *c)
{
	size_t start = 0;
	char *nl;

	while (!c->waiting && (nl = memchr(c->buf + start, '\n', c->len - start))) {
		size_t line = (size_t)(nl - (c->buf + start));
		size_t at = start;
		start += line + 1;
		if (!blank(c->buf + at, line) && handle_message(dm, c, c->buf + at, line) < 0)
			return -1;
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	if (!c->waiting && c->len == sizeof(c->buf)) {
		char desc[128];
		snprintf(desc, sizeof(desc), "message longer than %d bytes: connection closed", CONTROL_MAX_MESSAGE);
		send_error(c->fd, CONTROL_ERR_PROTOCOL, desc);
		return -1;
	}
	return 0;
}

/* What a client sent: every whole line handled. -1: drop the client (it
 * hung up, mid-message or not, or sent a message too long to take). */
static int client_input(struct daemon *dm, struct client *c)
{
	ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return -1;
	c->len += (size_t)n;
	return client_lines(dm, c);
}

/* ------------------------------------------------------------ clients */

static json_t *capabilities(uint64_t buffer_limit)
{
	json_t *commands = json_array();
	json_t *events = json_array();

	for (int i = 0; commands && control_commands[i]; i++)
		json_array_append_new(commands, json_string(control_commands[i]));
	for (int i = 0; events && daemon_event_names[i]; i++)
		json_array_append_new(events, json_string(daemon_event_names[i]));
	return json_pack("{s:o, s:o, s:[s,s], s:[s,s], s:i, s:I}", "commands", commands, "events", events, "types",
			 "export", "passthrough", "del-modes", "safe", "hard", "max-message", CONTROL_MAX_MESSAGE,
			 "max-buffer-memory", (json_int_t)(buffer_limit > INT64_MAX ? INT64_MAX : buffer_limit));
}

/* Only root and the daemon's own user: the socket's mode says the same,
 * but a socket passed on or a directory with loose modes must not widen it. */
static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void accept_client(struct daemon *dm)
{
	int fd = accept4(dm->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	struct timeval tv = {.tv_sec = SEND_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!peer_allowed(fd)) {
		send_error(fd, CONTROL_ERR_PERMISSION, "only root and the daemon's user may use this socket");
		close(fd);
		return;
	}
	int slot = 0;
	while (slot < CLIENTS_MAX && dm->clients[slot])
		slot++;
	struct client *c = slot < CLIENTS_MAX ? malloc(sizeof(*c)) : NULL;
	if (!c) {
		send_error(fd, CONTROL_ERR_FAILED, "too many connections: try again later");
		close(fd);
		return;
	}
	c->fd = fd;
	c->serial = ++dm->next_serial;
	c->waiting = false;
	c->waiting_tag = NULL;
	c->len = 0;
	if (send_message(fd, control_greeting(furing_version(), capabilities(dm->buffer_limit))) < 0) {
		close(fd);
		free(c);
		return;
	}
	dm->clients[slot] = c;
}

static void drop_client(struct daemon *dm, int slot)
{
	json_decref(dm->clients[slot]->waiting_tag);
	close(dm->clients[slot]->fd);
	free(dm->clients[slot]);
	dm->clients[slot] = NULL;
}

/* An event (consumed) to every client. One that cannot take the message
 * is dropped, as for a reply. */
static void broadcast(void *data, json_t *ev)
{
	struct daemon *dm = data;

	for (int i = 0; ev && i < CLIENTS_MAX; i++)
		if (dm->clients[i] && send_message(dm->clients[i]->fd, json_incref(ev)) < 0)
			drop_client(dm, i);
	json_decref(ev);
}

static void export_gone(void *data, const char *id, bool error, json_t *removed)
{
	broadcast(data, daemon_event_export_gone(id, error, removed));
}

/* An export-add that started in the background is done: its reply to the
 * client that asked (if still connected), whose waiting requests then go
 * on. */
static void export_added(void *data, uint64_t token, json_t *ret, const struct control_error *e)
{
	struct daemon *dm = data;
	int slot = 0;

	while (slot < CLIENTS_MAX && !(dm->clients[slot] && dm->clients[slot]->serial == token))
		slot++;
	if (slot == CLIENTS_MAX) {
		json_decref(ret);
		return;
	}
	struct client *c = dm->clients[slot];
	json_t *reply = ret ? control_reply_ok("export-add", ret, c->waiting_tag)
			    : control_reply_error("export-add", e, c->waiting_tag);
	json_decref(c->waiting_tag);
	c->waiting_tag = NULL;
	c->waiting = false;
	if (send_message(c->fd, reply) < 0 || client_lines(dm, c) < 0)
		drop_client(dm, slot);
}

/* ------------------------------------------------------------ the loop */

static void on_signal(struct daemon *dm)
{
	struct signalfd_siginfo si;

	if (read(dm->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGUSR1)
		daemon_exports_log_stats(dm->exports);
	else if (si.ssi_signo == SIGHUP && !dm->config)
		fprintf(stderr, "furing: SIGHUP ignored: the daemon was started without --config\n");
	else if (si.ssi_signo == SIGHUP) {
		struct control_error e;
		json_decref(reload(dm, &e));
	}
	else
		dm->stop = true;
}

static void serve(struct daemon *dm)
{
	enum { P_SIGNAL, P_WAKE, P_LISTEN, P_CLIENTS };
	struct pollfd p[P_CLIENTS + CLIENTS_MAX];
	int slot_of[CLIENTS_MAX];

	while (!dm->stop) {
		p[P_SIGNAL] = (struct pollfd){.fd = dm->signal_fd, .events = POLLIN};
		p[P_WAKE] = (struct pollfd){.fd = daemon_exports_wake_fd(dm->exports), .events = POLLIN};
		p[P_LISTEN] = (struct pollfd){.fd = dm->listen_fd, .events = POLLIN};
		nfds_t n = P_CLIENTS;
		for (int i = 0; i < CLIENTS_MAX; i++) {
			if (!dm->clients[i] || dm->clients[i]->waiting)
				continue;
			slot_of[n - P_CLIENTS] = i;
			p[n++] = (struct pollfd){.fd = dm->clients[i]->fd, .events = POLLIN};
		}
		/* A timer only while a backend can fail without telling us:
		 * everything else (signals, ended sessions, clients) is an fd. */
		int timeout = daemon_exports_watched(dm->exports) ? DAEMON_WATCH_INTERVAL_MS : -1;
		if (poll(p, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			die(EXIT_RUNTIME, "poll: %s", strerror(errno));
		}
		/* Ended exports first, so that no command sees one half gone. */
		if (p[P_WAKE].revents)
			daemon_exports_reap(dm->exports);
		daemon_watch_backends(dm->watch, dm->exports, broadcast, dm);
		if (p[P_SIGNAL].revents)
			on_signal(dm);
		if (dm->stop)
			break;
		/* dm->clients[...] may be gone: dropped by an event's send. */
		for (nfds_t i = P_CLIENTS; i < n; i++)
			if (p[i].revents && dm->clients[slot_of[i - P_CLIENTS]] && client_input(dm, dm->clients[slot_of[i - P_CLIENTS]]) < 0)
				drop_client(dm, slot_of[i - P_CLIENTS]);
		if (p[P_LISTEN].revents)
			accept_client(dm);
	}
}

/* Signals arrive through a signalfd in the loop: blocked in this thread
 * before any other starts, so that every thread (workers included)
 * inherits the mask and none is interrupted by them. */
static int signals_to_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		die(EXIT_RUNTIME, "cannot block signals");
	signal(SIGPIPE, SIG_IGN);
	int fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (fd < 0)
		die(EXIT_RUNTIME, "signalfd: %s", strerror(errno));
	return fd;
}

/* BYTES with an optional K/M/G/T suffix, at least 1 MiB. */
static uint64_t parse_memory(const char *opt, const char *v)
{
	char *end;
	unsigned int shift = 0;

	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end && strchr("kK", *end))
		shift = 10;
	else if (*end && strchr("mM", *end))
		shift = 20;
	else if (*end && strchr("gG", *end))
		shift = 30;
	else if (*end && strchr("tT", *end))
		shift = 40;
	if (shift)
		end++;
	/* A digit first: strtoull would take " -1" as a huge number. */
	if (errno || !(v[0] >= '0' && v[0] <= '9') || *end || n > (UINT64_MAX >> shift) || (n << shift) < (1u << 20))
		die(EXIT_USAGE, "%s needs a byte count of at least 1M (K/M/G/T suffix allowed), not '%s'", opt, v);
	return (uint64_t)n << shift;
}

/* Half the machine: room for the exports' buffers at their worst (every
 * one under large requests at once) and for everything else. */
static uint64_t default_buffer_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

	return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2 : UINT64_MAX;
}

static void parse(int argc, char **argv, struct daemon *dm)
{
	static const struct option opts[] = {
		{"control", required_argument, NULL, 'c'},
		{"config", required_argument, NULL, 'f'},
		{"max-buffer-memory", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int o;

	opterr = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			dm->control_path = optarg;
			break;
		case 'f':
			dm->config_path = optarg;
			break;
		case 'm':
			dm->buffer_limit = parse_memory("--max-buffer-memory", optarg);
			break;
		case 'h':
			fputs(daemon_help, stdout);
			exit(0);
		case 'V':
			printf("furing %s\n", furing_version());
			exit(0);
		case ':':
			die(EXIT_USAGE, "option %s needs a value (see furing daemon --help)", argv[optind - 1]);
		default:
			die(EXIT_USAGE, "unknown option %s (see furing daemon --help)", argv[optind - 1]);
		}
	}
	if (optind != argc)
		die(EXIT_USAGE, "daemon takes no arguments but options (see furing daemon --help)");
	if (!dm->control_path)
		die(EXIT_USAGE, "daemon needs --control PATH (see furing daemon --help)");
	if (!dm->buffer_limit)
		dm->buffer_limit = default_buffer_limit();
}

/* Every export removed, the socket gone. */
static void shut_down(struct daemon *dm)
{
	for (int i = 0; i < CLIENTS_MAX; i++)
		if (dm->clients[i])
			drop_client(dm, i);
	close(dm->listen_fd);
	remove_socket(dm);
	daemon_exports_free(dm->exports);
	daemon_watch_free(dm->watch);
	daemon_config_free(dm->config);
	close(dm->signal_fd);
}

int cmd_daemon(int argc, char **argv)
{
	struct daemon dm;
	char err[1024];

	memset(&dm, 0, sizeof(dm));
	parse(argc, argv, &dm);
	daemon_notify_init();
	/* A file that is not valid stops the start before anything exists. */
	if (dm.config_path && !(dm.config = daemon_config_open(dm.config_path, err, sizeof(err))))
		die(EXIT_USAGE, "%s", err);
	/* Passthrough mounts need it (passthrough_run.h); every file the
	 * daemon makes itself has an explicit mode. */
	umask(0);
	dm.signal_fd = signals_to_fd();
	dm.exports = daemon_exports_new();
	if (!dm.exports)
		die(EXIT_RUNTIME, "cannot set up: %s", strerror(errno));
	daemon_exports_set_buffer_limit(dm.exports, dm.buffer_limit);
	daemon_exports_on_gone(dm.exports, export_gone, &dm);
	daemon_exports_on_added(dm.exports, export_added, &dm);
	dm.watch = daemon_watch_new();
	if (!dm.watch)
		die(EXIT_RUNTIME, "cannot set up: out of memory");
	dm.listen_fd = control_listen(&dm);
	fprintf(stderr, "furing: daemon %s listening on %s\n", furing_version(), dm.control_path);
	if (dm.config && daemon_config_start(dm.config, dm.exports, err, sizeof(err)) < 0) {
		fprintf(stderr, "furing: %s\n", err);
		shut_down(&dm);
		return EXIT_RUNTIME;
	}
	/* Every configured export serves: export-add returns once mounted. */
	daemon_notify("READY=1");

	serve(&dm);

	daemon_notify("STOPPING=1");
	fprintf(stderr, "furing: daemon stopping: removing every export\n");
	shut_down(&dm);
	fprintf(stderr, "furing: daemon stopped\n");
	return 0;
}
