/* The NBD transmission phase on the wire, without I/O: request headers out,
 * replies in (simple replies, and structured reply chunks where they were
 * negotiated; no extended headers: Debian 12's libnbd 1.14 negotiates none).
 * nbd_conn.c moves the bytes on the worker's io_uring; this file only says
 * what they mean, so that it can be tested (tests/unit/test_nbd_wire.c) and
 * fuzzed (fuzz/fuzz_nbd_wire.c) without a server.
 *
 * A reply names its command by the cookie (the protocol's "handle") the
 * request carried. The decoder asks its caller what that command was
 * (lookup), because a simple reply to a READ carries no length: the data
 * that follows is as long as the request. Anything a well-behaved server
 * cannot send (a bad magic, an unknown cookie, a chunk outside its request,
 * a length the command cannot have) is NBD_WIRE_BAD with one line saying
 * what: the connection cannot be trusted past it. */
#ifndef FURING_EXPORT_NBD_WIRE_H
#define FURING_EXPORT_NBD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBD_WIRE_REQUEST_MAGIC 0x25609513u
#define NBD_WIRE_SIMPLE_MAGIC 0x67446698u
#define NBD_WIRE_STRUCTURED_MAGIC 0x668e33efu

/* Commands (NBD_CMD_*) and their flags (NBD_CMD_FLAG_*). */
enum { NBD_WIRE_READ = 0, NBD_WIRE_WRITE = 1, NBD_WIRE_DISC = 2, NBD_WIRE_FLUSH = 3, NBD_WIRE_WRITE_ZEROES = 6,
       NBD_WIRE_BLOCK_STATUS = 7 };
#define NBD_WIRE_FLAG_FUA 0x1u
#define NBD_WIRE_FLAG_NO_HOLE 0x2u

/* Structured reply chunk types (NBD_REPLY_TYPE_*); the flag NBD_REPLY_FLAG_DONE. */
enum { NBD_WIRE_CHUNK_NONE = 0, NBD_WIRE_CHUNK_OFFSET_DATA = 1, NBD_WIRE_CHUNK_OFFSET_HOLE = 2,
       NBD_WIRE_CHUNK_BLOCK_STATUS = 5, NBD_WIRE_CHUNK_ERROR = 0x8001, NBD_WIRE_CHUNK_ERROR_OFFSET = 0x8002 };
#define NBD_WIRE_CHUNK_SIMPLE 0xffffu /* our name for a simple reply (not a wire value) */
#define NBD_WIRE_REPLY_DONE 0x1u
#define NBD_WIRE_STATE_HOLE 0x1u /* base:allocation: unallocated */

#define NBD_WIRE_REQUEST_SIZE 28
#define NBD_WIRE_SIMPLE_SIZE 16
#define NBD_WIRE_STRUCTURED_SIZE 20

/* Writes a request header: the payload (a WRITE's data) follows it. */
void nbd_wire_request(uint8_t out[NBD_WIRE_REQUEST_SIZE], uint16_t flags, uint16_t type, uint64_t cookie,
		      uint64_t offset, uint32_t length);

/* What the decoder needs to know about the command a cookie names. */
struct nbd_wire_cmd {
	uint16_t type; /* NBD_WIRE_READ ... */
	uint64_t offset;
	uint32_t length;
};
/* The command @cookie names, or false when none is in flight under it. */
typedef bool (*nbd_wire_lookup)(void *ctx, uint64_t cookie, struct nbd_wire_cmd *cmd);

/* One reply, or one chunk of a structured reply. */
struct nbd_wire_msg {
	uint64_t cookie;
	uint16_t type;  /* NBD_WIRE_CHUNK_*, NBD_WIRE_CHUNK_SIMPLE */
	bool done;      /* the command's last reply (a simple reply always is) */
	uint32_t error; /* the server's error (NBD values are Linux errnos), 0 if none */
	/* OFFSET_DATA, a successful simple READ reply: @data bytes follow on the
	 * wire (not consumed), for the command's buffer from byte @at.
	 * OFFSET_HOLE: @data bytes of zeros from @at, nothing follows. */
	uint32_t at, data;
	/* BLOCK_STATUS: @extents pairs of (length, flags), big-endian, in the
	 * input (valid until it changes). */
	const uint8_t *extent;
	uint32_t extents;
};

enum nbd_wire_status {
	NBD_WIRE_MORE, /* not a whole reply yet: receive more and call again */
	NBD_WIRE_MSG,  /* *msg filled in; the return value is what it used */
	NBD_WIRE_BAD,  /* a malformed reply: @why says what */
};

/* Decodes the reply at the start of @buf (@len bytes received). Consumes
 * the reply header and every payload byte except a read's data, which the
 * caller receives where it belongs. @structured: structured replies were
 * negotiated. @max_chunk: the largest chunk payload (other than data) the
 * caller can hold whole; a larger one is BAD. Returns bytes consumed
 * (NBD_WIRE_MSG), else 0. */
size_t nbd_wire_decode(const uint8_t *buf, size_t len, bool structured, size_t max_chunk, nbd_wire_lookup lookup,
		       void *ctx, struct nbd_wire_msg *msg, enum nbd_wire_status *status, char *why, size_t whylen);

/* The i-th extent of a BLOCK_STATUS message. */
void nbd_wire_extent(const struct nbd_wire_msg *msg, uint32_t i, uint32_t *length, uint32_t *flags);

#endif
