/* FUSE_INIT negotiation (see init.h and doc/protocol.md 2.1, 3.2).
 *
 * The reply never sets a flag the kernel did not offer: the flags we want are
 * ANDed with the offer, where the offer's upper 32 bits (flags2) only count
 * when the kernel set FUSE_INIT_EXT (older kernels send a 16-byte init_in and
 * the decoder zero-fills flags2, but a stray value must not leak through). */
#include "init.h"

#include <string.h>

#define DEFAULT_MAX_BACKGROUND 12
#define MIN_MAX_WRITE 4096u
#define DEFAULT_PAGE_SIZE 4096u
#define MAX_PAGES_CAP 65535u
#define MIN_MINOR 13 /* oldest protocol we serve (Linux 2.6.32) */

#define MAX_STACK_DEPTH 2 /* the kernel's FILESYSTEM_MAX_STACK_DEPTH */

/* Minimal size of the reply a kernel of protocol 7.@minor reads. */
static size_t init_out_len(uint32_t minor)
{
	if (minor < 5)
		return 8;  /* FUSE_COMPAT_INIT_OUT_SIZE */
	if (minor < 23)
		return 24; /* FUSE_COMPAT_22_INIT_OUT_SIZE */
	return sizeof(struct fuse_init_out);
}

uint64_t fu_init_offered(const struct fuse_init_in *in)
{
	uint64_t offered = in->flags;
	if (in->flags & FUSE_INIT_EXT)
		offered |= (uint64_t)in->flags2 << 32;
	return offered;
}

/* The 64-bit set the reply may set, before the offer masks it. */
static uint64_t wanted_flags(const struct fu_init_wish *wish)
{
	uint64_t wanted = (wish->want | FU_INIT_ENGINE_FLAGS) & ~FU_INIT_NEVER_FLAGS;

	wanted &= ~((uint64_t)FUSE2_OVER_IO_URING << 32);
	if (wish->over_io_uring)
		wanted |= (uint64_t)FUSE2_OVER_IO_URING << 32;
	return wanted;
}

/* The wish's threshold, or 3/4 of max_background when it has none or one
 * above max_background; never 0. */
static uint16_t congestion_of(uint16_t wish, uint16_t max_bg)
{
	uint16_t congestion = wish;

	if (congestion == 0 || congestion > max_bg)
		congestion = (uint16_t)((uint32_t)max_bg * 3 / 4);
	if (congestion == 0)
		congestion = 1;
	return congestion;
}

/* max_write in pages, when FUSE_MAX_PAGES is in the reply (else 0). */
static uint16_t max_pages_of(uint64_t reply, uint32_t max_write, uint32_t page_size)
{
	if (!(reply & FUSE_MAX_PAGES))
		return 0;
	const uint64_t page = page_size != 0 ? page_size : DEFAULT_PAGE_SIZE;
	uint64_t pages = ((uint64_t)max_write + page - 1) / page;
	if (pages > MAX_PAGES_CAP)
		pages = MAX_PAGES_CAP;
	return (uint16_t)pages;
}

/* The reply to a major-7 INIT whose flags are @reply. */
static void fill_reply(const struct fuse_init_in *in, const struct fu_init_wish *wish, uint64_t reply,
		       struct fuse_init_out *out)
{
	const uint32_t max_write = wish->max_write > MIN_MAX_WRITE ? wish->max_write : MIN_MAX_WRITE;
	const uint16_t max_bg = wish->max_background != 0 ? wish->max_background : DEFAULT_MAX_BACKGROUND;

	out->major = FUSE_KERNEL_VERSION;
	out->minor = FUSE_KERNEL_MINOR_VERSION;
	out->max_readahead = wish->max_readahead != 0 && wish->max_readahead < in->max_readahead
				     ? wish->max_readahead
				     : in->max_readahead;
	out->flags = (uint32_t)reply;
	out->flags2 = (uint32_t)(reply >> 32);
	out->max_background = max_bg;
	out->congestion_threshold = congestion_of(wish->congestion_threshold, max_bg);
	out->max_write = max_write;
	out->time_gran = wish->time_gran != 0 && wish->time_gran <= 1000000000u ? wish->time_gran : 1;
	out->max_pages = max_pages_of(reply, max_write, wish->page_size);
	if (reply & ((uint64_t)FUSE2_PASSTHROUGH << 32)) {
		uint32_t depth = wish->max_stack_depth != 0 ? wish->max_stack_depth : 1;
		out->max_stack_depth = depth > MAX_STACK_DEPTH ? MAX_STACK_DEPTH : depth;
	}
}

enum fu_init_result fu_init_negotiate(const struct fuse_init_in *in, const struct fu_init_wish *wish,
				      struct fuse_init_out *out, size_t *out_len,
				      struct fu_init_agreed *agreed)
{
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (out_len != NULL)
		*out_len = 0;
	if (agreed != NULL)
		memset(agreed, 0, sizeof(*agreed));
	if (in == NULL || wish == NULL || out == NULL || out_len == NULL || agreed == NULL)
		return FU_INIT_PROTO_ERR;

	agreed->major = in->major;
	agreed->minor = in->minor;

	if (in->major < FUSE_KERNEL_VERSION)
		return FU_INIT_PROTO_ERR;
	if (in->major > FUSE_KERNEL_VERSION) {
		/* Answer with our version only; the kernel sends INIT again
		 * with major 7 if it can speak it. */
		out->major = FUSE_KERNEL_VERSION;
		out->minor = FUSE_KERNEL_MINOR_VERSION;
		*out_len = sizeof(*out);
		agreed->retry_major = true;
		return FU_INIT_OK;
	}
	if (in->minor < MIN_MINOR)
		return FU_INIT_PROTO_ERR;

	const uint64_t offered = fu_init_offered(in);
	agreed->offered = offered;

	const uint64_t reply = offered & wanted_flags(wish);
	fill_reply(in, wish, reply, out);
	*out_len = init_out_len(in->minor);

	agreed->flags = out->flags;
	agreed->flags2 = out->flags2;
	agreed->max_write = out->max_write;
	agreed->max_pages = out->max_pages;
	agreed->flags64 = reply;
	agreed->max_readahead = out->max_readahead;
	agreed->over_io_uring = (out->flags2 & FUSE2_OVER_IO_URING) != 0;
	return FU_INIT_OK;
}
