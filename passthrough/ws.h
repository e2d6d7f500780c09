/* The per-request workspace: state and buffers a request's backend calls
 * need until their completion (an open_how is read when the SQE is
 * submitted, a statx buffer written when it completes), kept in the
 * request's own answer buffer (pt_workspace) so that no request allocates.
 * The answer is only built there after the workspace has been read. */
#ifndef FURING_PASSTHROUGH_WS_H
#define FURING_PASSTHROUGH_WS_H

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "pt.h"

struct pt_ws {
	struct statx stx;
	struct open_how how;
	char path[PT_FD_PATH_MAX]; /* a node's /proc/self/fd path */
	/* pt_lookup_name's state (common.c) */
	pt_lookup_then lk_then;
	int lk_fd;
};

/* The workspace of @req, or NULL when its buffer is too small. */
struct pt_ws *pt_ws(struct furing_req *req);

/* Names the kernel sends are single path components; anything else would
 * let a request reach outside SOURCE. */
static inline bool pt_name_ok(const char *name)
{
	if (!name || !name[0] || strchr(name, '/'))
		return false;
	return !(name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])));
}

#endif
