/* libFuzzer target for the engine: requests through both transports' receive
 * paths (transport_dev.c's read completion, transport_ring.c's entry
 * completion), the dispatcher and the reply calls, into a filesystem that
 * implements every operation (fe_fs.c), with a stand-in for the kernel on
 * the other side of both transports and of the worker's io_uring
 * (fe_kernel.c, which also checks the invariants). No mount, no /dev/fuse:
 * the session and its one worker are built here around the engine's own
 * objects, with the one seam dev_channel_attach() (engine.h).
 *
 * Input (fe_input.h): a header, the script, the choices.
 *   byte 0: bits 0-1 payload size (8192, 8200, 12288, 16384), bit 2
 *           max_write 4096 instead of 8192, bit 3 FUSE_SETXATTR_EXT, bit 4
 *           debug lines, bit 5 some operations left NULL (a 48-bit mask
 *           follows the length), bit 6 NO_OPEN(DIR)_SUPPORT granted
 *   byte 1: bits 0-1 legacy slots - 1, bits 2-3 ring depth - 1, bit 4 two
 *           ring queues
 *   bytes 2-3: the script's length (little endian); the choices follow it
 *   the script: actions, each one byte (low 4 bits what, high 4 bits flags)
 *     0-3  legacy request: u16 length, then the bytes read() returns
 *          (flags: bit 0 keep in_header.len as given, else fixed up; bit 1
 *          aim an INTERRUPT at a request in flight / a NOTIFY_REPLY at a
 *          retrieve)
 *     4-7  ring request: the same, split as the kernel splits it (flags also:
 *          bit 2 a byte follows with op_in's length; bit 3 a byte follows:
 *          bit 0 payload_sz from 4 more bytes, bit 1 commit_id 0, bits 2-7
 *          which parked entry, else the next one round robin)
 *     8-9  complete a pending I/O of the filesystem (a byte picks which)
 *     10   answer a request the filesystem put aside (a byte: which, bit 7
 *          from another thread)
 *     11   the armed legacy read fails (a byte picks the errno)
 *     12   a parked ring entry fails (a byte: bits 0-2 the errno, 3-7 which)
 *     13   a retrieve notification (for NOTIFY_REPLY to answer)
 *     14   another notification
 *     15   with all flags set: forced stop; otherwise nothing
 *   the choices: read in order by whoever has to choose (fe_fs.c: how to
 *   answer and with what; fe_kernel.c: I/O results, which entry).
 * At the end everything still open is answered, the connection ends, and
 * every slot must be back and dead (fe_kernel_end). fuzz/make_corpus.py
 * writes seeds in this format (engine-*). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fe_fs.h"
#include "fe_input.h"
#include "fe_kernel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fe_input fe_in;

static struct fu_session *S;
static struct fu_worker W;
static struct ring_queue *queues[2];
static int fs_state; /* the filesystem's private pointer: only compared */
static unsigned int next_entry; /* ring requests go round robin over the parked entries */
static bool trace;   /* FE_TRACE=1 in the environment: the script on stderr, to read a reproducer */

/* Operations an input may leave NULL, to reach the engine's defaults. */
static const size_t nullable[] = {
	offsetof(struct furing_ops, lookup),      offsetof(struct furing_ops, forget),
	offsetof(struct furing_ops, forget_multi), offsetof(struct furing_ops, getattr),
	offsetof(struct furing_ops, setattr),     offsetof(struct furing_ops, readlink),
	offsetof(struct furing_ops, mknod),       offsetof(struct furing_ops, mkdir),
	offsetof(struct furing_ops, unlink),      offsetof(struct furing_ops, rmdir),
	offsetof(struct furing_ops, symlink),     offsetof(struct furing_ops, rename),
	offsetof(struct furing_ops, link),        offsetof(struct furing_ops, access),
	offsetof(struct furing_ops, statfs),      offsetof(struct furing_ops, statx),
	offsetof(struct furing_ops, open),        offsetof(struct furing_ops, create),
	offsetof(struct furing_ops, tmpfile),     offsetof(struct furing_ops, read),
	offsetof(struct furing_ops, write),       offsetof(struct furing_ops, flush),
	offsetof(struct furing_ops, release),     offsetof(struct furing_ops, fsync),
	offsetof(struct furing_ops, fallocate),   offsetof(struct furing_ops, lseek),
	offsetof(struct furing_ops, copy_file_range), offsetof(struct furing_ops, opendir),
	offsetof(struct furing_ops, readdir),     offsetof(struct furing_ops, readdirplus),
	offsetof(struct furing_ops, releasedir),  offsetof(struct furing_ops, fsyncdir),
	offsetof(struct furing_ops, setxattr),    offsetof(struct furing_ops, getxattr),
	offsetof(struct furing_ops, listxattr),   offsetof(struct furing_ops, removexattr),
	offsetof(struct furing_ops, getlk),       offsetof(struct furing_ops, setlk),
	offsetof(struct furing_ops, flock),       offsetof(struct furing_ops, interrupt),
	offsetof(struct furing_ops, poll),        offsetof(struct furing_ops, ioctl),
	offsetof(struct furing_ops, syncfs),      offsetof(struct furing_ops, retrieve_reply),
};

static void setup_once(void)
{
	struct furing_config cfg = {.threads = 1, .max_write = 8192, .payload_size = 8192, .log = fe_log};
	char err[256];

	S = (struct fu_session *)furing_session_new(&fe_fs_ops, sizeof(fe_fs_ops), &cfg, sizeof(cfg), &fs_state, err,
						   sizeof(err));
	FE_CHECK(S != NULL);
	S->running = true; /* notifications may be sent (to fe_kernel.c) */
	S->over_ring = true;
	S->nworkers = 1;
	S->workers = &W;
	W.s = S;
	W.dev_fd = -1;
	pthread_mutex_init(&W.foreign_lock, NULL);
	fe_kernel_init(S, &W);
	fe_fs_init();
	trace = getenv("FE_TRACE") != NULL;
}

/* What a fresh session would have: no interrupts, no failure, no counts. */
static void reset_state(void)
{
	uint64_t v;

	atomic_store(&S->fatal, false);
	atomic_store(&S->stop_requested, false);
	memset(S->intr_unique, 0, sizeof(S->intr_unique));
	atomic_store(&S->intr_count, 0);
	S->intr_next = 0;
	while (read(S->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	W.stop_now = false;
	atomic_store(&W.force_stop, false);
	W.ring_failed = false;
	W.foreign = NULL;
	memset(&W.stats, 0, sizeof(W.stats));
}

static void configure(size_t size)
{
	static const uint32_t payloads[4] = {8192, 8192 + 8, 12288, 16384};
	const uint8_t c0 = fe_script8(), c1 = fe_script8();
	const size_t script_len = fe_script16();
	const bool ext = c0 & 8;
	uint64_t mask = 0;

	if (c0 & 32) {
		mask = fe_script16();
		mask |= (uint64_t)fe_script16() << 16;
		mask |= (uint64_t)fe_script16() << 32;
	}
	fe_in.script_end = fe_in.script + (script_len < size - fe_in.script ? script_len : size - fe_in.script);
	fe_in.choice = fe_in.script_end;
	fe_in.choice_end = size;

	S->payload_size = payloads[c0 & 3];
	S->limits.max_write = (c0 & 4) ? 4096 : 8192;
	S->limits.setxattr_ext = ext;
	S->cfg.debug = c0 & 16;
	S->ops = fe_fs_ops;
	for (size_t i = 0; i < sizeof(nullable) / sizeof(nullable[0]); i++)
		if (mask >> i & 1)
			memset((char *)&S->ops + nullable[i], 0, sizeof(void (*)(void)));
	S->conn.granted = (c0 & 64) ? FURING_CAP_NO_OPEN_SUPPORT | FURING_CAP_NO_OPENDIR_SUPPORT : 0;
	if (ext)
		S->conn.granted |= FURING_CAP_SETXATTR_EXT;

	char err[256];
	const unsigned int slots = 1 + (c1 & 3), depth = 1 + ((c1 >> 2) & 3), nq = 1 + ((c1 >> 4) & 1);
	if (trace)
		fprintf(stderr, "config payload=%u max_write=%u ext=%d debug=%d granted=%#llx slots=%u depth=%u queues=%u\n",
			S->payload_size, S->limits.max_write, ext, S->cfg.debug, (unsigned long long)S->conn.granted, slots,
			depth, nq);
	S->depth = depth;
	S->nqueues = nq;
	FE_CHECK(dev_channel_attach(&W, fe_kernel_dev_fd(), slots, err, sizeof(err)) == 0);
	W.queues = queues;
	W.nqueues = 0;
	for (unsigned int q = 0; q < nq; q++) {
		FE_CHECK(ring_queue_create(&W, (uint16_t)q, q, depth, S->payload_size, &queues[q], err, sizeof(err)) == 0);
		W.nqueues++;
	}
	fe_fs_begin(S->payload_size, ext);
	const struct fe_kernel_cfg kc = {.payload_size = S->payload_size, .max_write = S->limits.max_write,
					 .setxattr_ext = ext};
	fe_kernel_begin(&kc);
}

static void step(void)
{
	static uint8_t bytes[FE_PAYLOAD_MAX + 8192];
	const uint8_t a = fe_script8();
	const unsigned int what = a & 15, fl = a >> 4;

	if (what < 8) {
		unsigned int flags = (fl & 1) ? 0 : FE_REQ_FIX_LEN, entry = next_entry++;
		uint8_t raw_op_len = 0;
		uint32_t raw_payload_sz = 0;
		if (fl & 2)
			flags |= FE_REQ_AIM;
		if (what >= 4 && (fl & 4)) {
			flags |= FE_REQ_RAW_OP_LEN;
			raw_op_len = fe_script8();
		}
		if (what >= 4 && (fl & 8)) {
			uint8_t x = fe_script8();
			if (x & 1) {
				flags |= FE_REQ_RAW_PAYLOAD;
				raw_payload_sz = (uint32_t)fe_script16() | (uint32_t)fe_script16() << 16;
			}
			if (x & 2)
				flags |= FE_REQ_NO_COMMIT_ID;
			entry = x >> 2;
		}
		size_t len = fe_script16();
		if (len > sizeof(bytes))
			len = sizeof(bytes);
		len = fe_script_bytes(bytes, len);
		if (trace)
			fprintf(stderr, "%s request: %zu bytes, opcode %u, flags %#x op_len %u payload_sz %u\n",
				what < 4 ? "legacy" : "ring", len, len >= 8 ? (unsigned)bytes[4] | (unsigned)bytes[5] << 8 : 0,
				flags, raw_op_len, raw_payload_sz);
		if (what < 4)
			fe_kernel_dev_request(bytes, len, flags);
		else
			fe_kernel_ring_request(bytes, len, flags, entry, raw_op_len, raw_payload_sz);
		return;
	}
	if (trace)
		fprintf(stderr, "action %u flags %#x\n", what, fl);
	switch (what) {
	case 8:
	case 9:
		fe_kernel_complete_io(fe_script8());
		return;
	case 10: {
		uint8_t x = fe_script8();
		fe_fs_answer_deferred(x & 0x7f, x & 0x80);
		return;
	}
	case 11:
		fe_kernel_dev_error(fe_script8());
		return;
	case 12:
		fe_kernel_ring_error(fe_script8());
		return;
	case 13:
		fe_kernel_retrieve();
		return;
	case 14:
		fe_fs_notify((struct furing_session *)S);
		return;
	default:
		if (fl == 15)
			fe_kernel_stop_now();
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		setup_once();
		ready = true;
	}
	/* The header is read as script; configure() then splits the rest. */
	fe_in = (struct fe_input){.data = data, .script = 0, .script_end = size, .choice = size, .choice_end = size};
	reset_state();
	next_entry = 0;
	configure(size);
	while (fe_script_left())
		step();
	fe_kernel_end();
	/* The counters line, into a buffer of a chosen size: it truncates. */
	char line[1024];
	const size_t room = 1 + fe_pick(sizeof(line));
	memset(line, 'x', sizeof(line));
	furing_session_stats_line((struct furing_session *)S, line, room);
	FE_CHECK(strnlen(line, room) < room);
	dev_channel_free(W.dev);
	W.dev = NULL;
	for (unsigned int q = 0; q < W.nqueues; q++)
		ring_queue_free(queues[q], false);
	W.nqueues = 0;
	return 0;
}
