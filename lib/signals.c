/* The usual daemon signals, only when the application asks for them
 * (furing_session_handle_signals): SIGINT, SIGTERM and SIGHUP stop the
 * session, SIGUSR1 logs the counters. The handlers only set a flag and write
 * the session's eventfd (both async-signal-safe); furing_session_wait does
 * the rest on its own thread. Workers block every signal, so the handlers
 * run on the application's threads. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "engine.h"

static const int handled[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
#define NHANDLED (sizeof(handled) / sizeof(handled[0]))

static struct fu_session *_Atomic signal_session;
static struct sigaction previous[NHANDLED];
static pthread_mutex_t signal_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
	struct fu_session *s = atomic_load(&signal_session);
	int saved = errno;

	if (s) {
		if (sig == SIGUSR1)
			atomic_store(&s->stats_requested, true);
		else
			atomic_store(&s->stop_requested, true);
		fu_session_wake(s);
	}
	errno = saved;
}

int furing_session_handle_signals(struct furing_session *pub)
{
	struct fu_session *s = (struct fu_session *)pub;
	struct sigaction sa;
	int ret = 0;

	pthread_mutex_lock(&signal_lock);
	if (atomic_load(&signal_session)) {
		pthread_mutex_unlock(&signal_lock);
		return atomic_load(&signal_session) == s ? 0 : -EBUSY;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	atomic_store(&signal_session, s);
	for (size_t i = 0; i < NHANDLED; i++) {
		if (sigaction(handled[i], &sa, &previous[i]) < 0) {
			ret = -errno;
			while (i-- > 0)
				sigaction(handled[i], &previous[i], NULL);
			atomic_store(&signal_session, NULL);
			break;
		}
	}
	if (ret == 0)
		s->handles_signals = true;
	pthread_mutex_unlock(&signal_lock);
	return ret;
}

void fu_signals_restore(struct fu_session *s)
{
	pthread_mutex_lock(&signal_lock);
	if (s->handles_signals && atomic_load(&signal_session) == s) {
		for (size_t i = 0; i < NHANDLED; i++)
			sigaction(handled[i], &previous[i], NULL);
		atomic_store(&signal_session, NULL);
		s->handles_signals = false;
	}
	pthread_mutex_unlock(&signal_lock);
}
