/* FUSE_INIT negotiation as a pure function: the kernel's offer and our wishes
 * in, the reply bytes and what was agreed out. */
#ifndef FURING_PROTO_INIT_H
#define FURING_PROTO_INIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuse_kernel.h"

struct fu_init_wish {
	uint32_t max_write;          /* bytes per WRITE we can take (>= 4096) */
	uint16_t max_background;     /* concurrent background requests */
	bool over_io_uring;          /* we will register every queue if offered */
	bool direct_io_allow_mmap;   /* FUSE_DIRECT_IO_ALLOW_MMAP if offered */
	uint32_t page_size;          /* for max_pages */
};

struct fu_init_agreed {
	uint32_t major, minor;   /* the kernel's, as it sent them */
	uint32_t flags, flags2;  /* what our reply sets */
	uint32_t max_write;      /* what the kernel will use */
	uint16_t max_pages;      /* 0 when FUSE_MAX_PAGES was not negotiated */
	uint32_t max_readahead;
	bool over_io_uring;      /* the ring will carry requests */
	bool retry_major;        /* kernel major > 7: we answered with ours and it will ask again */
};

enum fu_init_result {
	FU_INIT_OK = 0,
	FU_INIT_PROTO_ERR, /* major < 7 or a minor too old to serve: answer EPROTO */
};

/* Fills @out (*out_len bytes of it are the reply: older kernels expect a
 * shorter fuse_init_out) and @agreed. */
enum fu_init_result fu_init_negotiate(const struct fuse_init_in *in, const struct fu_init_wish *wish,
				      struct fuse_init_out *out, size_t *out_len,
				      struct fu_init_agreed *agreed);

#endif
