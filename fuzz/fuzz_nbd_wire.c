/* libFuzzer target for nbd_wire_decode() (export/nbd_wire.c), driven as
 * export/nbd_ring.c drives it: a stream of replies decoded one after the
 * other, a read's data skipped on the wire as the ring would receive it.
 *
 * Input: one selector byte (bit 0: structured replies negotiated; bits 1-3:
 * the largest chunk the caller holds, table below), then the bytes from the
 * server. Four commands are in flight, cookies 1-4: a read of 4096 at 8192,
 * a write, a block status of 1 GiB, a read of 1 MiB at 0. The stream is
 * copied into an exactly-sized heap block (ASan sees any read past it), and
 * the decoder's promises are checked: what it consumed is within the input,
 * data and holes fall inside their read, extents inside their chunk.
 * A violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../export/nbd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                \
	do {                                                                                    \
		if (!(c))                                                                       \
			abort();                                                                \
	} while (0)

static const size_t max_chunks[8] = {0, 1, 12, 20, 100, 4096, 262124, SIZE_MAX};

static const struct nbd_wire_cmd cmds[4] = {
	{NBD_WIRE_READ, 8192, 4096},
	{NBD_WIRE_WRITE, 0, 512},
	{NBD_WIRE_BLOCK_STATUS, 0, 1u << 30},
	{NBD_WIRE_READ, 0, 1u << 20},
};

static bool lookup(void *ctx, uint64_t cookie, struct nbd_wire_cmd *cmd)
{
	if (cookie < 1 || cookie > 4)
		return false;
	*cmd = cmds[cookie - 1];
	return true;
}

static volatile uint32_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool structured = data[0] & 1;
	size_t max_chunk = max_chunks[(data[0] >> 1) & 7];
	size_t len = size - 1;
	uint8_t *buf = malloc(len ? len : 1);
	CHECK(buf);
	memcpy(buf, data + 1, len);

	size_t pos = 0;
	while (pos < len) {
		struct nbd_wire_msg m;
		enum nbd_wire_status st;
		char why[200];
		size_t used = nbd_wire_decode(buf + pos, len - pos, structured, max_chunk, lookup, NULL, &m, &st, why,
					      sizeof(why));
		if (st != NBD_WIRE_MSG) {
			CHECK(used == 0);
			CHECK(st == NBD_WIRE_MORE || (st == NBD_WIRE_BAD && why[0]));
			break;
		}
		CHECK(used > 0 && used <= len - pos);
		CHECK(m.cookie >= 1 && m.cookie <= 4);
		const struct nbd_wire_cmd *cmd = &cmds[m.cookie - 1];
		if (m.type == NBD_WIRE_CHUNK_OFFSET_DATA || m.type == NBD_WIRE_CHUNK_OFFSET_HOLE ||
		    (m.type == NBD_WIRE_CHUNK_SIMPLE && m.data)) {
			CHECK(cmd->type == NBD_WIRE_READ);
			CHECK((uint64_t)m.at + m.data <= cmd->length);
		}
		if (m.type == NBD_WIRE_CHUNK_BLOCK_STATUS) {
			CHECK(cmd->type == NBD_WIRE_BLOCK_STATUS);
			CHECK(m.extent >= buf + pos && m.extent + 8 * (size_t)m.extents <= buf + pos + used);
			for (uint32_t i = 0; i < m.extents; i++) {
				uint32_t l, f;
				nbd_wire_extent(&m, i, &l, &f);
				sink += l ^ f;
			}
		}
		pos += used;
		/* A read's data: the ring receives it into the request. */
		if (m.data && m.type != NBD_WIRE_CHUNK_OFFSET_HOLE)
			pos += m.data < len - pos ? m.data : len - pos;
	}
	free(buf);
	return 0;
}
