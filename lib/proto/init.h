/* FUSE_INIT negotiation as pure functions: the kernel's offer and the
 * filesystem's wishes in, the reply bytes and what was agreed out.
 *
 * Flags are handled as one 64-bit set: the kernel's `flags` word in the low
 * half and its `flags2` word in the high half (doc/protocol.md 2.1), which is
 * also how the public FURING_CAP_* constants are numbered. */
#ifndef FURING_PROTO_INIT_H
#define FURING_PROTO_INIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuse_kernel.h"

/* Flags the engine itself asks for whenever they are offered: they concern
 * the transport, not the filesystem. */
#define FU_INIT_ENGINE_FLAGS ((uint64_t)(FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT))
/* Flags that change the request format or the engine's duties in ways the
 * engine does not implement: never asked for, whatever the filesystem wants. */
#define FU_INIT_NEVER_FLAGS                                                                              \
	((uint64_t)(FUSE_FILE_OPS | FUSE_SPLICE_WRITE | FUSE_SPLICE_MOVE | FUSE_SPLICE_READ | FUSE_ABORT_ERROR | \
		    FUSE_MAP_ALIGNMENT | FUSE_SUBMOUNTS | FUSE_INIT_RESERVED) |                                 \
	 ((uint64_t)(FUSE2_HAS_INODE_DAX | FUSE2_ALLOW_IDMAP | FUSE2_REQUEST_TIMEOUT | FUSE2_HAS_RESEND) << 32))

struct fu_init_wish {
	uint64_t want;               /* 64-bit flag set the filesystem asks for */
	bool over_io_uring;          /* we will register every queue if offered */
	uint32_t max_write;          /* bytes per WRITE we can take (>= 4096) */
	uint32_t max_readahead;      /* 0: the kernel's */
	uint16_t max_background;     /* concurrent background requests; 0: the kernel's default 12 */
	uint16_t congestion_threshold; /* 0: 3/4 of max_background */
	uint32_t time_gran;          /* 0: 1 ns */
	uint32_t max_stack_depth;    /* for FUSE_PASSTHROUGH; 0 = 1 */
	uint32_t page_size;          /* for max_pages */
};

struct fu_init_agreed {
	uint32_t major, minor;   /* the kernel's, as it sent them */
	uint64_t offered;        /* what the kernel offered (flags2 only with INIT_EXT) */
	uint64_t flags64;        /* what our reply sets */
	uint32_t flags, flags2;  /* the same, as the two words */
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

/* The kernel's offer as one 64-bit set (flags2 counts only with INIT_EXT). */
uint64_t fu_init_offered(const struct fuse_init_in *in);

/* Fills @out (*out_len bytes of it are the reply: older kernels expect a
 * shorter fuse_init_out) and @agreed. The reply sets exactly
 * (want | engine flags | OVER_IO_URING if wished) & offered & ~never. */
enum fu_init_result fu_init_negotiate(const struct fuse_init_in *in, const struct fu_init_wish *wish,
				      struct fuse_init_out *out, size_t *out_len,
				      struct fu_init_agreed *agreed);

#endif
