/* What the handlers of the dispatch table share (dispatch.c,
 * dispatch_nodes.c, dispatch_files.c): their prototypes, made from the
 * opcode list so that a row without its handler fails to link, and the
 * helpers that build their arguments. */
#ifndef FURING_DISPATCH_H
#define FURING_DISPATCH_H

#include <string.h>

#include "engine.h"
#include "proto/opcodes.h"

/* fu_serve_<serve> of every row: the request is decoded, its context set,
 * and the operation it needs (if any) exists. */
#define FU_SERVE_DECLARE(op, header, tail, answered, serve, needs) void fu_serve_##serve(struct furing_req *r);
FU_OPCODES(FU_SERVE_DECLARE)
#undef FU_SERVE_DECLARE

static inline void fu_answer_err(struct furing_req *r, int err)
{
	fu_answer(r, err, NULL, 0);
}

/* The request's furing_file, which stays valid until the answer. */
static inline struct furing_file *fu_file_of(struct furing_req *r, uint64_t fh, uint32_t flags)
{
	struct furing_file *fi = &r->fi[0];

	memset(fi, 0, sizeof(*fi));
	fi->fh = fh;
	fi->flags = (int)flags;
	return fi;
}

static inline void fu_with_lock_owner(struct furing_file *fi, uint64_t owner)
{
	fi->lock_owner = owner;
	fi->req_flags |= FURING_FILE_LOCK_OWNER;
}

#endif
