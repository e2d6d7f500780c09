/* See log.h. The session's log and the export's own callback get the same
 * finished line, so a program that gives both furing_log_stderr (the tool)
 * prints every message alike, whoever was there to carry it. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void export_log(const struct export_log *l, const struct furing_session *s, enum furing_log_level level,
		const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!s && !l->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s)
		furing_session_log(s, level, "%s", msg);
	else
		l->fn(l->data, level, msg);
}
