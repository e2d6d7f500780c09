/* The engine fuzzer's filesystem, inside: what an operation remembers
 * about its request (fe_fs.c) and the answers it can make (fe_answer.c). */
#ifndef FURING_FUZZ_FE_ANSWER_H
#define FURING_FUZZ_FE_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "furing/furing.h"

/* What the filesystem remembers about a request, in its scratch space. */
struct fe_ctx {
	struct furing_event ev;  /* POLL: a worker event that answers it */
	struct furing_req *req;
	const void *in;          /* WRITE data, IOCTL input, the xattr name */
	uint32_t op;             /* the request's opcode */
	uint32_t size;           /* READ*: size; GETXATTR/LISTXATTR: size; IOCTL: out_size */
	uint32_t in_len;
	uint8_t io_left;         /* I/O operations still to do before answering */
	bool datasync;
};
_Static_assert(sizeof(struct fe_ctx) <= FURING_REQ_SCRATCH_SIZE, "the context fits the scratch space");

static inline struct fe_ctx *fe_ctx_of(struct furing_req *req)
{
	return furing_req_scratch(req);
}

/* Per input: the payload size (what the answer buffer holds). */
void fe_answer_begin(uint32_t payload_size);
/* The operation's natural answer, announced and sent. */
void fe_answer(struct furing_req *req);
/* Single answers, announced and sent. */
void fe_say_err(struct furing_req *req, int err);
void fe_say_buf(struct furing_req *req, size_t len);
void fe_say_write(struct furing_req *req, uint32_t count);
void fe_say_statx(struct furing_req *req, const struct statx *stx);
void fe_say_poll(struct furing_req *req, uint32_t revents);
/* Values: an errno to answer with (some outside what the kernel takes), a
 * name (sometimes empty, up to 255 bytes). */
int fe_an_errno(void);
void fe_make_name(char *name, unsigned int i);
/* FE_PAYLOAD_MAX bytes of data that are not the request's. */
const uint8_t *fe_pattern(void);
void fe_fill(uint8_t *p, size_t n, unsigned int seed);

#endif
