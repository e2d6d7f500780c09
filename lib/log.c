/* Messages go through furing_config.log, and nowhere without one: a
 * library prints nothing unless the program asks (furing_log_stderr is the
 * ready-made printer). Formatting happens here so that a log callback
 * receives finished lines. */
#include <stdarg.h>
#include <stdio.h>

#include "engine.h"

void furing_log_stderr(void *data, enum furing_log_level level, const char *msg)
{
	/* One fputs per line: stdio locks the stream, so lines from several
	 * threads do not interleave. */
	char line[1100];
	snprintf(line, sizeof(line), "furing: %s\n", msg);
	fputs(line, stderr);
}

static void vlog(const struct fu_session *s, enum furing_log_level level, const char *fmt, va_list ap)
{
	char msg[1024];

	if (!s || !s->cfg.log)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	s->cfg.log(s->cfg.log_data, level, msg);
}

void fu_log(const struct fu_session *s, enum furing_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(s, level, fmt, ap);
	va_end(ap);
}

void furing_session_log(const struct furing_session *pub, enum furing_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog((const struct fu_session *)pub, level, fmt, ap);
	va_end(ap);
}
