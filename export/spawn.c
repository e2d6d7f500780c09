/* See spawn.h.
 *
 * PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not
 * the process (prctl(2)). Forked on the caller's thread, a qemu-nbd started
 * by a thread that later ends (a daemon opening an export from a short-lived
 * control thread) would get SIGTERM under a serving export. So every fork
 * happens on one forker thread, started at the first request and never
 * ended: its exit is the process's. It blocks every signal, like the
 * engine's workers, so the application's handlers run where it expects. */
#include "spawn.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <unistd.h>

struct spawn_req {
	void (*in_child)(void *arg);
	void *arg;
	pid_t pid;
	int err;
	bool done;
	struct spawn_req *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_forker = PTHREAD_COND_INITIALIZER;
static pthread_cond_t wake_callers = PTHREAD_COND_INITIALIZER;
static struct spawn_req *queue;
/* The process the forker runs in: a fork of the whole process (after the
 * forker started) has no forker, and starts its own. */
static pid_t forker_pid;

static pid_t fork_tied(const struct spawn_req *r)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* The child: only async-signal-safe calls until exec. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent) /* the process ended before prctl */
		_exit(127);
	/* A blocked mask survives exec: the forker's would make the child deaf
	 * to SIGTERM (ours, and the death signal). */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	r->in_child(r->arg);
	_exit(127);
}

static void *forker(void *unused)
{
	pthread_mutex_lock(&lock);
	for (;;) {
		while (!queue)
			pthread_cond_wait(&wake_forker, &lock);
		struct spawn_req *r = queue;
		queue = r->next;
		pthread_mutex_unlock(&lock);
		pid_t pid = fork_tied(r);
		int err = errno;
		pthread_mutex_lock(&lock);
		r->pid = pid;
		r->err = err;
		r->done = true;
		pthread_cond_broadcast(&wake_callers);
	}
	return NULL;
}

/* Under lock. */
static int start_forker(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int ret;

	if (forker_pid == getpid())
		return 0;
	if (forker_pid) {
		/* A fork of the process: the forker's wait on wake_forker was
		 * copied without the forker, and would swallow a signal. */
		pthread_cond_init(&wake_forker, NULL);
		pthread_cond_init(&wake_callers, NULL);
		queue = NULL; /* the requests of the process we were forked from */
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the forker */
	ret = pthread_create(&t, &attr, forker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret == 0)
		forker_pid = getpid();
	return ret;
}

pid_t spawn_tied(void (*in_child)(void *arg), void *arg)
{
	struct spawn_req r = {.in_child = in_child, .arg = arg};
	int ret;

	pthread_mutex_lock(&lock);
	ret = start_forker();
	if (ret == 0) {
		r.next = queue;
		queue = &r;
		pthread_cond_signal(&wake_forker);
		while (!r.done)
			pthread_cond_wait(&wake_callers, &lock);
	}
	pthread_mutex_unlock(&lock);
	if (ret != 0) {
		errno = ret;
		return -1;
	}
	if (r.pid < 0)
		errno = r.err;
	return r.pid;
}
