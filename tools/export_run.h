/* Starting one export and ending it: the image opened, the mountpoint
 * file made ready, the session started over it; then, once the session
 * is over, everything closed again. What `furing export` runs once and the
 * daemon runs per export (each with its own session and workers). */
#ifndef FURING_TOOLS_EXPORT_RUN_H
#define FURING_TOOLS_EXPORT_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include <furing/furing.h>

#include "export_args.h"

struct export_run {
	struct export *e;
	struct furing_session *s; /* started; the caller waits for it and destroys it */
	char *mnt_abs;            /* the mountpoint's absolute path */
	bool created;             /* the mountpoint file was made here: removed at the end */
	bool kernel_passthrough;  /* reads (and writes) go through the kernel */
	char serving[1024];       /* "serving IMAGE (SIZE bytes, ...) at MOUNTPOINT" */
	char fsname[256];         /* an rbd: source's name in /proc/mounts, without its options */
};

/* Opens what @a (checked by export_args_check) names, prepares its
 * mountpoint and starts the session; @own_signals installs the usual
 * signal handlers (one session per process). 0, or -1 with a one-line
 * reason in @err and nothing left behind. */
int export_run_start(struct export_run *r, struct export_args *a, bool own_signals, char *err, size_t errlen);

/* After r->s ended and was destroyed: the export closed (acknowledged
 * writes durable), a mountpoint made by the start removed. A warning worth
 * telling (writes through kernel passthrough grew the image) goes to
 * @note, else it is "". 0, or -1 when closing the export failed (said on
 * stderr). */
int export_run_finish(struct export_run *r, const struct export_args *a, char *note, size_t notelen);

#endif
