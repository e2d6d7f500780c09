/* See qemu_nbd.h. qemu-nbd reads the format; furing only speaks NBD to it.
 *
 * It runs as our child in a session of its own (so a terminal's Ctrl-C
 * reaches only furing, which flushes and then stops it in order), dies with
 * us if we are killed (spawn.h), and writes its messages to a log in its
 * private directory, whose last line becomes our one-line error when it
 * fails to start. Our own messages after the start go to the export's log
 * (export_log: no session runs while qemu-nbd stops). */
#include "qemu_nbd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 10000

struct qemu_nbd {
	pid_t pid;
	struct export_log msgs;
	struct qemu_nbd *prev, *next; /* in `running`, while `listed` */
	bool listed;
	char dir[64];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char log[128];
	char uri[192];
};

/* Every qemu-nbd this process runs, for exit(): a fatal error after an
 * export opened (the tool's die()) must not leave one running or its
 * directory behind. Each belongs to its export, which stops it and takes it
 * off the list; the list itself is the process's because exit() is (it ends
 * every export at once: a process serving several has several here). One
 * pointer would keep only the last one started, and forget it when any of
 * them stopped. Whoever takes one off the list (its export, or the exit
 * handler) is the one that stops it. */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static struct qemu_nbd *running;
static bool exit_handler_set;

static int stop_child(struct qemu_nbd *q);

static void stop_all_at_exit(void)
{
	for (;;) {
		pthread_mutex_lock(&running_lock);
		struct qemu_nbd *q = running;
		if (q) {
			running = q->next;
			if (running)
				running->prev = NULL;
			q->listed = false;
		}
		pthread_mutex_unlock(&running_lock);
		if (!q)
			return;
		stop_child(q);
	}
}

static void add_running(struct qemu_nbd *q)
{
	pthread_mutex_lock(&running_lock);
	if (!exit_handler_set)
		exit_handler_set = atexit(stop_all_at_exit) == 0;
	q->prev = NULL;
	q->next = running;
	if (running)
		running->prev = q;
	running = q;
	q->listed = true;
	pthread_mutex_unlock(&running_lock);
}

/* False when the exit handler took it first (exit() on another thread). */
static bool remove_running(struct qemu_nbd *q)
{
	pthread_mutex_lock(&running_lock);
	bool was = q->listed;
	if (was) {
		if (q->prev)
			q->prev->next = q->next;
		else
			running = q->next;
		if (q->next)
			q->next->prev = q->prev;
		q->prev = q->next = NULL;
		q->listed = false;
	}
	pthread_mutex_unlock(&running_lock);
	return was;
}

static bool find_in_path(const char *name, char *out, size_t outlen)
{
	const char *path = getenv("PATH");

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && (size_t)snprintf(out, outlen, "%.*s/%s", (int)n, path, name) < outlen &&
		    access(out, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The last non-empty line qemu-nbd wrote, without its "qemu-nbd: " tag. */
static void last_log_line(const struct qemu_nbd *q, char *out, size_t outlen)
{
	char buf[4096];
	int fd = open(q->log, O_RDONLY | O_CLOEXEC);
	ssize_t n = 0;

	snprintf(out, outlen, "no message");
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	if (end > (off_t)sizeof(buf) - 1)
		lseek(fd, end - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (!strncmp(line, "qemu-nbd: ", 10))
		line += 10;
	size_t len = strlen(line);
	if (len >= outlen)
		len = outlen - 1;
	if (len) {
		memcpy(out, line, len);
		out[len] = 0;
	}
}

static void remove_files(struct qemu_nbd *q)
{
	unlink(q->sock);
	unlink(q->log);
	rmdir(q->dir);
}

/* Its exit status once it is gone: 0..255, 128+signal, or -1 while it runs. */
static int reap(struct qemu_nbd *q, bool wait)
{
	int status;
	pid_t r;

	do
		r = waitpid(q->pid, &status, wait ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r != q->pid)
		return r < 0 ? 255 : -1;
	q->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool accepts_connections(const struct qemu_nbd *q)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	memcpy(sa.sun_path, q->sock, strlen(q->sock) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

struct exec_args {
	const struct qemu_nbd *q;
	const char *prog;
	char **argv;
};

/* In the child (spawn_tied): only async-signal-safe calls until exec. */
static void exec_qemu_nbd(void *arg)
{
	const struct exec_args *a = arg;

	setsid();
	int null = open("/dev/null", O_RDWR);
	int log = open(a->q->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (null < 0 || log < 0)
		_exit(127);
	dup2(null, STDIN_FILENO);
	dup2(log, STDOUT_FILENO);
	dup2(log, STDERR_FILENO);
	execv(a->prog, a->argv);
	_exit(127);
}

struct qemu_nbd *qemu_nbd_start(const char *image, const char *format, bool writable, bool direct,
				unsigned int clients, const struct export_log *msgs, char *err, size_t errlen)
{
	char prog[4096], arg_format[128], arg_socket[160], arg_shared[32], line[512];
	struct qemu_nbd *q;

	if (!find_in_path("qemu-nbd", prog, sizeof(prog))) {
		snprintf(err, errlen, "--format=%s needs qemu-nbd, which is not installed (Debian: apt-get install qemu-utils)",
			 format);
		return NULL;
	}
	if (access(image, F_OK) < 0) {
		snprintf(err, errlen, "image %s: %s", image, strerror(errno));
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->msgs = *msgs;
	snprintf(q->dir, sizeof(q->dir), "/tmp/furing-qemu-nbd-XXXXXX");
	if (!mkdtemp(q->dir)) {
		snprintf(err, errlen, "cannot make a directory for qemu-nbd's socket: %s", strerror(errno));
		free(q);
		return NULL;
	}
	snprintf(q->sock, sizeof(q->sock), "%s/nbd.sock", q->dir);
	snprintf(q->log, sizeof(q->log), "%s/qemu-nbd.log", q->dir);
	snprintf(q->uri, sizeof(q->uri), "nbd+unix:///?socket=%s", q->sock);
	snprintf(arg_format, sizeof(arg_format), "--format=%s", format);
	snprintf(arg_socket, sizeof(arg_socket), "--socket=%s", q->sock);
	/* One more than we connect, so that the readiness probe never makes a
	 * real connection wait for a free slot. */
	snprintf(arg_shared, sizeof(arg_shared), "--shared=%u", clients + 1);
	char *argv[16];
	int n = 0;
	argv[n++] = "qemu-nbd";
	argv[n++] = arg_format;
	argv[n++] = arg_socket;
	argv[n++] = arg_shared;
	argv[n++] = "--persistent"; /* stay up across our reconnects */
	argv[n++] = direct ? "--cache=none" : "--cache=writeback";
	argv[n++] = "--discard=unmap"; /* punched holes free space in the image */
	if (!writable)
		argv[n++] = "--read-only";
	argv[n++] = (char *)image;
	argv[n] = NULL;

	q->pid = spawn_tied(exec_qemu_nbd, &(struct exec_args){.q = q, .prog = prog, .argv = argv});
	if (q->pid < 0) {
		snprintf(err, errlen, "cannot start qemu-nbd: %s", strerror(errno));
		remove_files(q);
		free(q);
		return NULL;
	}
	for (int waited = 0;; waited += 10) {
		int status = reap(q, false);
		if (status >= 0) {
			last_log_line(q, line, sizeof(line));
			snprintf(err, errlen, "qemu-nbd cannot serve %s as %s: %s", image, format, line);
			remove_files(q);
			free(q);
			return NULL;
		}
		if (accepts_connections(q)) {
			add_running(q);
			return q;
		}
		if (waited >= START_TIMEOUT_MS) {
			snprintf(err, errlen, "qemu-nbd did not accept connections for %s within %d s", image,
				 START_TIMEOUT_MS / 1000);
			kill(q->pid, SIGKILL);
			reap(q, true);
			remove_files(q);
			free(q);
			return NULL;
		}
		sleep_ms(10);
	}
}

bool qemu_nbd_explain(struct qemu_nbd *q, const char *image, const char *format, char *err, size_t errlen)
{
	char line[512];

	for (int waited = 0; q->pid > 0 && reap(q, false) < 0 && waited < 2000; waited += 10)
		sleep_ms(10);
	if (q->pid > 0)
		return false;
	last_log_line(q, line, sizeof(line));
	snprintf(err, errlen, "qemu-nbd cannot serve %s as %s: %s", image, format, line);
	return true;
}

const char *qemu_nbd_uri(const struct qemu_nbd *q)
{
	return q->uri;
}

int qemu_nbd_stop(struct qemu_nbd *q)
{
	return remove_running(q) ? stop_child(q) : 0;
}

/* Off the list: ours alone. */
static int stop_child(struct qemu_nbd *q)
{
	int status = -1;
	char line[512];

	if (q->pid > 0) {
		kill(q->pid, SIGTERM);
		for (int waited = 0; (status = reap(q, false)) < 0 && waited < STOP_TIMEOUT_MS; waited += 10)
			sleep_ms(10);
		if (status < 0) {
			kill(q->pid, SIGKILL);
			reap(q, true);
			export_log(&q->msgs, NULL, FURING_LOG_ERROR, "qemu-nbd did not stop within %d s of SIGTERM: killed",
				   STOP_TIMEOUT_MS / 1000);
		} else if (status != 0 && status != 128 + SIGTERM) {
			last_log_line(q, line, sizeof(line));
			export_log(&q->msgs, NULL, FURING_LOG_ERROR, "qemu-nbd exited with status %d: %s", status, line);
		}
	}
	remove_files(q);
	free(q);
	return status == 0 || status == 128 + SIGTERM ? 0 : -1;
}
