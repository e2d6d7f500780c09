/* Starting one passthrough mount and ending it: SOURCE opened, the
 * mountpoint checked, the session started over it; then everything closed
 * again. What `furing passthrough` runs once and the daemon runs per mount.
 * SOURCE's filesystem must see the callers' modes unmasked: the process's
 * umask is 0 (one umask serves every thread). */
#ifndef FURING_TOOLS_PASSTHROUGH_RUN_H
#define FURING_TOOLS_PASSTHROUGH_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include <furing/furing.h>

#include "passthrough_args.h"

struct passthrough_run {
	struct pt_fs *fs;
	struct furing_session *s; /* started; the caller waits for it and destroys it */
	char *mnt_abs;            /* the mountpoint's absolute path */
	char serving[1024];       /* "serving SOURCE at MOUNTPOINT (cache=..., transport)" */
};

/* Opens SOURCE, checks the mountpoint (a directory, not inside SOURCE)
 * and starts the session (@own_signals: the usual signal handlers). 0, or
 * -1 with a one-line reason in @err and nothing left behind. */
int passthrough_run_start(struct passthrough_run *r, struct passthrough_args *a, bool own_signals, char *err,
			  size_t errlen);
/* After r->s ended and was destroyed: SOURCE's handles closed. */
void passthrough_run_finish(struct passthrough_run *r);

#endif
