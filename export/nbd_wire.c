/* See nbd_wire.h. Every length read off the wire is checked against what
 * the command it answers can have before anything is trusted: the caller
 * receives data straight into a request's buffer at the offset we return. */
#include "nbd_wire.h"

#include <stdio.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

void nbd_wire_request(uint8_t out[NBD_WIRE_REQUEST_SIZE], uint16_t flags, uint16_t type, uint64_t cookie,
		      uint64_t offset, uint32_t length)
{
	put32(out, NBD_WIRE_REQUEST_MAGIC);
	put16(out + 4, flags);
	put16(out + 6, type);
	put64(out + 8, cookie);
	put64(out + 16, offset);
	put32(out + 24, length);
}

void nbd_wire_extent(const struct nbd_wire_msg *msg, uint32_t i, uint32_t *length, uint32_t *flags)
{
	*length = get32(msg->extent + 8 * (size_t)i);
	*flags = get32(msg->extent + 8 * (size_t)i + 4);
}

static const char *cmd_name(uint16_t type)
{
	switch (type) {
	case NBD_WIRE_READ: return "read";
	case NBD_WIRE_WRITE: return "write";
	case NBD_WIRE_FLUSH: return "flush";
	case NBD_WIRE_WRITE_ZEROES: return "write zeroes";
	case NBD_WIRE_BLOCK_STATUS: return "block status";
	default: return "command";
	}
}

#define BAD(...)                                                                                                      \
	do {                                                                                                          \
		snprintf(why, whylen, __VA_ARGS__);                                                                   \
		*status = NBD_WIRE_BAD;                                                                               \
		return 0;                                                                                             \
	} while (0)
#define MORE()                                                                                                        \
	do {                                                                                                          \
		*status = NBD_WIRE_MORE;                                                                              \
		return 0;                                                                                             \
	} while (0)

/* [off, off+n) inside the command's range: where it starts in the buffer. */
static bool in_request(const struct nbd_wire_cmd *cmd, uint64_t off, uint64_t n, uint32_t *at)
{
	if (off < cmd->offset || off - cmd->offset > cmd->length || n > cmd->length - (off - cmd->offset))
		return false;
	*at = (uint32_t)(off - cmd->offset);
	return true;
}

size_t nbd_wire_decode(const uint8_t *buf, size_t len, bool structured, size_t max_chunk, nbd_wire_lookup lookup,
		       void *ctx, struct nbd_wire_msg *msg, enum nbd_wire_status *status, char *why, size_t whylen)
{
	struct nbd_wire_cmd cmd;

	memset(msg, 0, sizeof(*msg));
	if (len < 4)
		MORE();
	uint32_t magic = get32(buf);
	if (magic == NBD_WIRE_SIMPLE_MAGIC) {
		if (len < NBD_WIRE_SIMPLE_SIZE)
			MORE();
		msg->cookie = get64(buf + 8);
		if (!lookup(ctx, msg->cookie, &cmd))
			BAD("a reply for no command in flight (cookie 0x%llx)", (unsigned long long)msg->cookie);
		msg->type = NBD_WIRE_CHUNK_SIMPLE;
		msg->done = true;
		msg->error = get32(buf + 4);
		if (cmd.type == NBD_WIRE_READ && msg->error == 0)
			msg->data = cmd.length; /* the whole request's data follows */
		*status = NBD_WIRE_MSG;
		return NBD_WIRE_SIMPLE_SIZE;
	}
	if (magic != NBD_WIRE_STRUCTURED_MAGIC)
		BAD("a reply with a bad magic (0x%08x)", magic);
	if (!structured)
		BAD("a structured reply, which was not negotiated");
	if (len < NBD_WIRE_STRUCTURED_SIZE)
		MORE();
	uint16_t flags = get16(buf + 4);
	msg->type = get16(buf + 6);
	msg->cookie = get64(buf + 8);
	uint32_t plen = get32(buf + 16);
	msg->done = flags & NBD_WIRE_REPLY_DONE;
	if (!lookup(ctx, msg->cookie, &cmd))
		BAD("a reply for no command in flight (cookie 0x%llx)", (unsigned long long)msg->cookie);
	const uint8_t *p = buf + NBD_WIRE_STRUCTURED_SIZE;

	if (msg->type == NBD_WIRE_CHUNK_OFFSET_DATA) {
		if (cmd.type != NBD_WIRE_READ)
			BAD("a data chunk for a %s", cmd_name(cmd.type));
		if (plen < 9)
			BAD("a data chunk of %u bytes", plen);
		if (len < NBD_WIRE_STRUCTURED_SIZE + 8)
			MORE();
		uint64_t off = get64(p);
		if (!in_request(&cmd, off, plen - 8, &msg->at))
			BAD("a data chunk beyond its read (%u bytes at %llu; the read: %u at %llu)", plen - 8,
			    (unsigned long long)off, cmd.length, (unsigned long long)cmd.offset);
		msg->data = plen - 8;
		*status = NBD_WIRE_MSG;
		return NBD_WIRE_STRUCTURED_SIZE + 8;
	}
	if (plen > max_chunk)
		BAD("a reply chunk of %u bytes (type %u), more than %zu", plen, msg->type, max_chunk);
	if (len < NBD_WIRE_STRUCTURED_SIZE + (size_t)plen)
		MORE();
	switch (msg->type) {
	case NBD_WIRE_CHUNK_NONE:
		if (plen != 0 || !msg->done)
			BAD("a NONE chunk of %u bytes%s", plen, msg->done ? "" : " without DONE");
		break;
	case NBD_WIRE_CHUNK_OFFSET_HOLE: {
		if (cmd.type != NBD_WIRE_READ || plen != 12)
			BAD("a hole chunk of %u bytes for a %s", plen, cmd_name(cmd.type));
		uint64_t off = get64(p);
		uint32_t n = get32(p + 8);
		if (n == 0 || !in_request(&cmd, off, n, &msg->at))
			BAD("a hole chunk beyond its read (%u bytes at %llu; the read: %u at %llu)", n,
			    (unsigned long long)off, cmd.length, (unsigned long long)cmd.offset);
		msg->data = n;
		break;
	}
	case NBD_WIRE_CHUNK_BLOCK_STATUS:
		if (cmd.type != NBD_WIRE_BLOCK_STATUS || plen < 12 || (plen - 4) % 8 != 0)
			BAD("a block status chunk of %u bytes for a %s", plen, cmd_name(cmd.type));
		msg->extent = p + 4; /* past the context id: we asked for one context */
		msg->extents = (plen - 4) / 8;
		break;
	default:
		if (!(msg->type & 0x8000))
			BAD("a reply chunk of unknown type %u", msg->type);
		/* ERROR, ERROR_OFFSET, and error types of the future: the
		 * protocol says to treat those as errors. */
		if (plen < 6)
			BAD("an error chunk of %u bytes", plen);
		msg->error = get32(p);
		uint32_t mlen = get16(p + 4);
		uint32_t want = 6 + mlen + (msg->type == NBD_WIRE_CHUNK_ERROR_OFFSET ? 8 : 0);
		if ((msg->type == NBD_WIRE_CHUNK_ERROR || msg->type == NBD_WIRE_CHUNK_ERROR_OFFSET) ? plen != want
												    : plen < want)
			BAD("an error chunk of %u bytes with a %u-byte message", plen, mlen);
		if (msg->error == 0)
			BAD("an error chunk without an error");
		break;
	}
	*status = NBD_WIRE_MSG;
	return NBD_WIRE_STRUCTURED_SIZE + plen;
}
