/* An LD_PRELOAD shim that makes one resource fail, for the start-up
 * failure tests (tests/integration/test_library.py):
 *   FAILSHIM=thread:N  the Nth pthread_create of the process fails (EAGAIN)
 *   FAILSHIM=ring    io_uring_queue_init_params fails (ENOMEM) on any
 *                    thread but the main one: the workers' rings
 * Test-only: never built into the library or installed. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct io_uring;
struct io_uring_params;

static bool failing(const char *what)
{
	const char *v = getenv("FAILSHIM");
	return v && !strncmp(v, what, strlen(what));
}

/* N of "thread:N". */
static int fail_at(void)
{
	const char *v = strchr(getenv("FAILSHIM"), ':');
	return v ? atoi(v + 1) : 1;
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	static atomic_int calls;

	if (!real)
		real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(RTLD_NEXT,
													  "pthread_create");
	if (failing("thread") && atomic_fetch_add(&calls, 1) + 1 == fail_at())
		return EAGAIN;
	return real(t, attr, fn, arg);
}

int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p);
int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p)
{
	static int (*real)(unsigned, struct io_uring *, struct io_uring_params *);

	if (!real)
		real = (int (*)(unsigned, struct io_uring *, struct io_uring_params *))dlsym(RTLD_NEXT,
											    "io_uring_queue_init_params");
	if (failing("ring") && syscall(SYS_gettid) != getpid())
		return -ENOMEM;
	return real(entries, ring, p);
}
