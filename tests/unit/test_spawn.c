/* export/spawn.c: a child tied to the process, not to the thread that asked.
 * PR_SET_PDEATHSIG alone would kill a child whose forking thread exits
 * (prctl(2)); these tests start `sleep` from threads that end first. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../export/spawn.h"

static void exec_sleep(void *arg)
{
	execl("/bin/sleep", "sleep", "30", (char *)NULL);
	_exit(127);
}

static void *spawn_on_thread(void *out)
{
	*(pid_t *)out = spawn_tied(exec_sleep, NULL);
	return NULL;
}

/* Started from a thread of its own, which is gone once this returns. */
static pid_t spawn_from_dead_thread(void)
{
	pthread_t t;
	pid_t pid = -1;

	assert_int_equal(pthread_create(&t, NULL, spawn_on_thread, &pid), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(pid > 0);
	return pid;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The child's end: its wait status, or -1 if it still runs after @ms. */
static int wait_for_exit(pid_t pid, long ms)
{
	int status;

	for (long waited = 0; waited <= ms; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		assert_int_equal(r, 0);
		sleep_ms(10);
	}
	return -1;
}

static void test_outlives_the_thread_that_asked(void **state)
{
	pid_t a = spawn_from_dead_thread();
	pid_t b = spawn_from_dead_thread(); /* the forker is reused */

	assert_int_equal(wait_for_exit(a, 300), -1);
	assert_int_equal(wait_for_exit(b, 0), -1);
	/* ... and it hears SIGTERM: the forker's blocked signals are not its. */
	kill(a, SIGTERM);
	kill(b, SIGTERM);
	int st = wait_for_exit(a, 5000);
	assert_true(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	st = wait_for_exit(b, 5000);
	assert_true(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
}

/* A process that spawns from a short-lived thread and exits: the child
 * gets SIGTERM then. We are the subreaper, so the orphan comes to us. */
static void test_dies_with_the_process(void **state)
{
	int fds[2];

	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(pipe(fds), 0);
	pid_t helper = fork();
	assert_true(helper >= 0);
	if (helper == 0) {
		/* A fork of a process whose forker may exist: it starts its own. */
		pid_t pid = spawn_from_dead_thread();
		ssize_t n = write(fds[1], &pid, sizeof(pid));
		_exit(n == sizeof(pid) ? 0 : 1);
	}
	close(fds[1]);
	pid_t child = -1;
	assert_int_equal(read(fds[0], &child, sizeof(child)), sizeof(child));
	close(fds[0]);
	int st;
	assert_int_equal(waitpid(helper, &st, 0), helper);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = wait_for_exit(child, 5000);
	assert_true(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
}

static void fail_in_child(void *arg)
{
	_exit(3);
}

static void test_child_runs_the_function(void **state)
{
	pid_t pid = spawn_tied(fail_in_child, NULL);

	assert_true(pid > 0);
	int st = wait_for_exit(pid, 5000);
	assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outlives_the_thread_that_asked),
		cmocka_unit_test(test_dies_with_the_process),
		cmocka_unit_test(test_child_runs_the_function),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
