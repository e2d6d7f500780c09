/* The one way out for the export's messages (nbd_conn.c, qemu_nbd.c). */
#ifndef FURING_EXPORT_LOG_H
#define FURING_EXPORT_LOG_H

#include <furing/furing.h>

#include "export.h"

/* One line (printf format, no newline): through the session's log when
 * @s is the session serving the export, else through @l (export.h says
 * when that is), else nowhere. Any thread. */
void export_log(const struct export_log *l, const struct furing_session *s, enum furing_log_level level,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
