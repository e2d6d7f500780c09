/* Messages go through furing_config.log; without one, to stderr as
 * "furing: <message>". Formatting happens here so that a log callback
 * receives finished lines. */
#include <stdarg.h>
#include <stdio.h>

#include "engine.h"

static void log_stderr(void *data, enum furing_log_level level, const char *msg)
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

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (s && s->cfg.log)
		s->cfg.log(s->cfg.log_data, level, msg);
	else
		log_stderr(NULL, level, msg);
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
