/* A private qemu-nbd: serves an image in any format QEMU reads (qcow2, vmdk,
 * vhdx, ...) on a Unix socket in a directory of its own, for the NBD backend
 * to connect to; stopped (and its directory removed) at exit. */
#ifndef FURING_EXPORT_QEMU_NBD_H
#define FURING_EXPORT_QEMU_NBD_H

#include <stdbool.h>
#include <stddef.h>

#include "export.h"

struct qemu_nbd;

/* Starts qemu-nbd on @image and returns once it accepts connections; NULL
 * with @err (one line: a missing qemu-nbd names the package) on failure.
 * @direct: no host page cache (--cache=none); @clients: connections it must
 * accept at once; @msgs: where later messages go (copied). Any thread, and
 * any number at once: each is stopped by its qemu_nbd_stop, or by exit(). */
struct qemu_nbd *qemu_nbd_start(const char *image, const char *format, bool writable, bool direct,
				unsigned int clients, const struct export_log *msgs, char *err, size_t errlen);
/* After a failed connection: if qemu-nbd exited (it may accept on its
 * socket before it has read the image), replaces @err with its reason and
 * returns true. Waits a moment for it. */
bool qemu_nbd_explain(struct qemu_nbd *q, const char *image, const char *format, char *err, size_t errlen);
/* nbd+unix:///?socket=... */
const char *qemu_nbd_uri(const struct qemu_nbd *q);
/* SIGTERM (qemu-nbd flushes the image and exits), SIGKILL after 10 s.
 * Returns 0, or -1 after logging (@msgs) why it did not stop cleanly. */
int qemu_nbd_stop(struct qemu_nbd *q);

#endif
