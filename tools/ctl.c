/* `furing ctl [--json] SOCKET COMMAND [KEY=VALUE...]`: one request to a
 * furing daemon, its reply printed (doc/control.md). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <furing/furing.h>

#include "cli.h"
#include "control_proto.h"

int cmd_ctl(int argc, char **argv);

static const char ctl_help[] =
	"Usage: furing ctl [--json] SOCKET COMMAND [KEY=VALUE...]\n"
	"\n"
	"Send COMMAND with the arguments KEY=VALUE to the furing daemon at SOCKET and print\n"
	"its reply. A VALUE that is JSON (true, 32, [1,2], \"text\") is sent as that, any\n"
	"other as a string. Commands: export-add, export-del, query-exports,\n"
	"query-stats, metrics (which prints the Prometheus text as it is)\n"
	"(doc/control.md). Example:\n"
	"  furing ctl /run/furing.sock export-add id=vm1 type=export \\\n"
	"      source=/images/vm1.raw mountpoint=/run/vm1.img writable=true\n"
	"\n"
	"  --json                print the reply as it came, one JSON object\n"
	"  -h, --help            this text\n"
	"\n"
	"Exit status: 0 success, 1 an error reply or no answer, 2 usage error.\n";

/* export-add and export-del wait for a mount or an unmount: seconds. */
#define REPLY_TIMEOUT_S 60

/* One line from @fd into *@buf (grown as needed, up to
 * CONTROL_MAX_REPLY bytes: the statistics of many exports are longer than
 * a request may be), without its newline: the length, or -1. One byte at
 * a time: nothing after the line may be taken from the socket. */
static ssize_t read_line(int fd, char **buf, size_t *cap)
{
	size_t len = 0;

	while (len < CONTROL_MAX_REPLY) {
		if (len == *cap) {
			size_t ncap = *cap * 2;
			char *b = realloc(*buf, ncap);
			if (!b)
				return -1;
			*buf = b;
			*cap = ncap;
		}
		ssize_t n = read(fd, *buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if ((*buf)[len] == '\n')
			return (ssize_t)len;
		len++;
	}
	return -1;
}

/* The next message that is not an event: ctl asks one thing and the
 * events of exports it did not ask about are not its answer. */
static json_t *read_reply(int fd, char **buf, size_t *cap, ssize_t *n)
{
	for (;;) {
		*n = read_line(fd, buf, cap);
		json_t *msg = *n < 0 ? NULL : json_loadb(*buf, (size_t)*n, 0, NULL);
		if (!json_is_object(msg) || !json_object_get(msg, "event"))
			return msg;
		json_decref(msg);
	}
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sa.sun_path))
		die(EXIT_USAGE, "socket path %s is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(EXIT_RUNTIME, "cannot connect to %s: %s", path, strerror(errno));
	struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* KEY=VALUE...: VALUE as JSON when it parses as JSON, else as a string. */
static json_t *arguments(int argc, char **argv)
{
	json_t *args = json_object();

	for (int i = 0; args && i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i])
			die(EXIT_USAGE, "argument '%s' is not KEY=VALUE (see furing ctl --help)", argv[i]);
		*eq = 0;
		json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
		if (!v)
			v = json_string(eq + 1);
		if (!v)
			die(EXIT_USAGE, "argument %s: the value is not UTF-8", argv[i]);
		json_object_set_new(args, argv[i], v);
	}
	if (!args)
		die(EXIT_RUNTIME, "out of memory");
	return args;
}

static void print_value(const char *key, json_t *v)
{
	if (json_is_string(v)) {
		printf("%s: %s\n", key, json_string_value(v));
		return;
	}
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	printf("%s: %s\n", key, text ? text : "?");
	free(text);
}

/* A string member of @x, or "?" when it is missing (an older daemon). */
static const char *field(json_t *x, const char *key)
{
	const char *v = json_string_value(json_object_get(x, key));

	return v ? v : "?";
}

/* query-exports: one line per export. */
static void print_exports(json_t *list)
{
	size_t i;
	json_t *x;

	if (!json_array_size(list))
		printf("no exports\n");
	json_array_foreach(list, i, x) {
		printf("%s %s %s %s -> %s", field(x, "id"), field(x, "state"), field(x, "type"), field(x, "source"),
		       field(x, "mountpoint"));
		const char *key;
		json_t *v;
		json_object_foreach(json_object_get(x, "options"), key, v) {
			char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			printf(" %s=%s", key, text ? text : json_is_string(v) ? json_string_value(v) : "?");
			free(text);
		}
		printf("\n");
	}
}

/* query-stats: one line per export, then one per queue. */
static void print_stats(json_t *list)
{
	size_t i, k;
	json_t *x, *q;

	if (!json_array_size(list))
		printf("no exports\n");
	json_array_foreach(list, i, x) {
		printf("%s", field(x, "id"));
		const char *key;
		json_t *v;
		json_object_foreach(x, key, v)
			if (json_is_integer(v))
				printf(" %s=%lld", key, (long long)json_integer_value(v));
		printf("\n");
		json_array_foreach(json_object_get(x, "queues"), k, q)
			printf("%s queue %lld requests=%lld\n", field(x, "id"),
			       (long long)json_integer_value(json_object_get(q, "queue")),
			       (long long)json_integer_value(json_object_get(q, "requests")));
	}
}

static void print_return(const char *command, json_t *ret)
{
	const char *key;
	json_t *v;

	/* The exposition text as it is, for a pipe into a scraper's file. */
	if (!strcmp(command, "metrics") && json_is_string(json_object_get(ret, "text"))) {
		fputs(json_string_value(json_object_get(ret, "text")), stdout);
		return;
	}
	if (!strcmp(command, "query-stats") && json_is_array(json_object_get(ret, "exports"))) {
		print_stats(json_object_get(ret, "exports"));
		return;
	}

	if (json_is_array(json_object_get(ret, "exports"))) {
		print_exports(json_object_get(ret, "exports"));
		return;
	}
	if (!json_object_size(ret))
		printf("ok\n");
	json_object_foreach(ret, key, v)
		print_value(key, v);
}

int cmd_ctl(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool as_json = false;
	int o;

	opterr = 0;
	optind = 1;
	/* '+': options end at SOCKET, so that a VALUE may start with '-'. */
	while ((o = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (o == 'j')
			as_json = true;
		else if (o == 'h') {
			fputs(ctl_help, stdout);
			return 0;
		} else
			die(EXIT_USAGE, "unknown option %s (see furing ctl --help)", argv[optind - 1]);
	}
	if (argc - optind < 2)
		die(EXIT_USAGE, "ctl needs SOCKET and COMMAND (see furing ctl --help)");
	const char *path = argv[optind];
	const char *command = argv[optind + 1];
	json_t *request = json_pack("{s:s, s:o}", "command", command, "arguments",
				    arguments(argc - optind - 2, argv + optind + 2));
	if (!request)
		die(EXIT_USAGE, "command '%s' is not UTF-8", command);
	size_t len;
	char *line = control_encode(request, &len);
	json_decref(request);
	if (!line)
		die(EXIT_RUNTIME, "out of memory");

	int fd = connect_to(path);
	size_t cap = 4096;
	char *buf = malloc(cap);
	ssize_t n = buf ? read_line(fd, &buf, &cap) : -1;
	json_t *greeting = n < 0 ? NULL : json_loadb(buf, (size_t)n, 0, NULL);
	if (!json_is_object(json_object_get(greeting, "greeting"))) {
		/* A refusal (permissions, too many connections) comes instead. */
		json_t *err = json_object_get(json_object_get(greeting, "error"), "desc");
		die(EXIT_RUNTIME, "%s: %s", path, json_is_string(err) ? json_string_value(err) : "no greeting from a furing daemon");
	}
	json_decref(greeting);
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
		die(EXIT_RUNTIME, "cannot send to %s: %s", path, strerror(errno));
	free(line);
	json_t *reply = read_reply(fd, &buf, &cap, &n);
	close(fd);
	if (!json_is_object(reply))
		die(EXIT_RUNTIME, "%s: no reply to %s%s", path, command, n < 0 ? " (the connection closed)" : "");
	json_t *error = json_object_get(reply, "error");
	bool failed = error != NULL;
	if (as_json)
		printf("%.*s\n", (int)n, buf);
	else if (error)
		fprintf(stderr, "furing: %s: %s: %s\n", command, field(error, "class"), field(error, "desc"));
	else
		print_return(command, json_object_get(reply, "return"));
	free(buf);
	json_decref(reply);
	return failed ? EXIT_RUNTIME : 0;
}
