/* The engine fuzzer's stand-in for the kernel (fe_kernel.c, with the checks
 * in fe_check.c and fe_shape.c): it owns the other end of both transports of
 * one worker and of its io_uring.
 *
 * The worker's io_uring is real but created IORING_SETUP_R_DISABLED, so the
 * kernel refuses any submission (io_uring_enter fails EBADFD): nothing the
 * engine queues ever runs. Instead the SQEs are taken off the SQ ring before
 * they would be submitted, and their completions are written into the CQ
 * ring by hand and dispatched by the engine's own fu_loop_turn(). The
 * transports are the engine's own (transport_dev.c, transport_ring.c): a
 * legacy read SQE says where a request may be written, a ring REGISTER which
 * buffers an entry has, and a COMMIT_AND_FETCH carries an answer, exactly as
 * for the kernel. Legacy answers are written to a pipe that stands in for
 * the cloned /dev/fuse fd.
 *
 * What it checks (abort() on violation, which libFuzzer reports):
 *   - every request is answered exactly once before its slot comes back to
 *     the kernel, or not at all for the opcodes that get no answer (on the
 *     ring those are committed with -EIO, as the entry must go back);
 *   - every answer has a well-formed out header (error in (-512, 0], an
 *     error answer is the header alone, unique / commit_id right, len equal
 *     to what was written), the out-args the kernel expects for its opcode
 *     (fe_shape.c), and the bytes the filesystem answered with (the stub in
 *     fe_fs.c records them before each reply call);
 *   - buffers the kernel owns (parked reads and ring entries) are poisoned
 *     for ASan, so the engine touching them is reported;
 *   - after the last request every SQE has had its completion, and once the
 *     connection ends every slot and entry is dead. */
#ifndef FURING_FUZZ_FE_KERNEL_H
#define FURING_FUZZ_FE_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "engine.h"

#define FE_CHECK(c)                                                                                \
	do {                                                                                       \
		if (!(c))                                                                          \
			fe_fail(__FILE__, __LINE__, #c);                                            \
	} while (0)

_Noreturn void fe_fail(const char *file, int line, const char *what);

/* Largest payload the harness configures (bytes per ring entry / slot). */
#define FE_PAYLOAD_MAX 16384
/* The fd number the stub filesystem does its simulated I/O on: never open,
 * never used, since nothing is submitted. */
#define FE_IO_FD 1000

/* One request handed to the engine. */
struct fe_rec {
	bool used;
	bool ring;
	uint64_t unique;      /* dev: in_header.unique; ring: commit_id */
	uint64_t slot_ud;     /* the read / entry it came through (its SQE user_data) */
	uint32_t opcode;      /* from the in_header as delivered */
	uint32_t uid, gid, pid;
	uint32_t size_arg;    /* READ*: size; GETXATTR/LISTXATTR: size; IOCTL: out_size */
	bool have_hdr;        /* the op header was complete, so size_arg means something */
	bool expect_answer;
	bool answered;
	/* Where the request's names and data lie, and where answers may be built. */
	const uint8_t *region;
	size_t region_len;
	const uint8_t *ans_lo, *ans_hi;
	bool buf_no_tail;     /* nothing after the op header: furing_req_buf is page-aligned */
	/* The request's (first) name, as the debug line must show it. */
	const char *name_at;
	char name[41];
	/* The stub filesystem: called, and what it answered with. */
	bool called;
	bool exp_set;
	int exp_err;          /* positive errno the engine must send, or 0 */
	size_t exp_len;
	uint8_t exp[FE_PAYLOAD_MAX + 64];
};

struct fe_kernel_cfg {
	uint32_t payload_size;
	uint32_t max_write;
	bool setxattr_ext;
};

/* Once per process: the worker's ring, the answer pipe. */
void fe_kernel_init(struct fu_session *s, struct fu_worker *w);
/* Per input: the transports exist (w->dev, w->queues); arm them. */
void fe_kernel_begin(const struct fe_kernel_cfg *cfg);
/* Per input, at the end: answer what is left, end the connection, check
 * that nothing is left over, free the transports. */
void fe_kernel_end(void);

/* The actions of the script. Each runs the engine until it is idle again. */
/* A legacy request (@n bytes as read() returns them). @flags: FE_REQ_*. */
void fe_kernel_dev_request(const uint8_t *bytes, size_t n, unsigned int flags);
/* A ring request: the same bytes, split as the kernel splits them, to the
 * @which'th parked entry. */
void fe_kernel_ring_request(const uint8_t *bytes, size_t n, unsigned int flags, unsigned int which,
			    uint8_t raw_op_len, uint32_t raw_payload_sz);
#define FE_REQ_FIX_LEN (1u << 0)      /* in_header.len = the bytes delivered */
#define FE_REQ_AIM (1u << 1)          /* INTERRUPT: at a request in flight; NOTIFY_REPLY: a retrieve's unique */
#define FE_REQ_RAW_OP_LEN (1u << 2)   /* ring: op_in takes raw_op_len bytes, not the opcode's header */
#define FE_REQ_RAW_PAYLOAD (1u << 3)  /* ring: payload_sz = raw_payload_sz, whatever was written */
#define FE_REQ_NO_COMMIT_ID (1u << 4) /* ring: commit_id 0 (a kernel bug the engine must survive) */
/* Completes one pending I/O of the filesystem (picked by @which). */
void fe_kernel_complete_io(unsigned int which);
unsigned int fe_kernel_pending_io(void);
/* The armed legacy read / a parked ring entry (@which >> 3) completes with
 * an error (picked by @which). */
void fe_kernel_dev_error(unsigned int which);
void fe_kernel_ring_error(unsigned int which);
/* A forced stop (what the worker does when furing_session_wait forces it out). */
void fe_kernel_stop_now(void);
/* Runs the engine's completions and the worker's foreign answers until idle. */
void fe_kernel_settle(void);
/* Registers a retrieve so that a NOTIFY_REPLY can be aimed at it. */
void fe_kernel_retrieve(void);

/* The channel fd for this input's dev_channel_attach (a dup of the socket
 * that collects the legacy answers). */
int fe_kernel_dev_fd(void);
/* The engine's log callback: counts warnings and errors. */
void fe_log(void *data, enum furing_log_level level, const char *msg);

/* For the stub filesystem. */
struct fe_rec *fe_rec_of(const struct furing_req *req);
/* The unique of some request in flight, or 0. */
uint64_t fe_unique_in_flight(unsigned int which);
/* The engine will log one more warning (the filesystem answered twice). */
void fe_expect_warning(void);
/* Checks the request's handle and buffer at the start of an operation. */
struct fe_rec *fe_enter(struct furing_req *req);
/* A name or data argument lies in the request and apart from the answer buffer. */
void fe_check_name(struct furing_req *req, const char *name);
void fe_check_data(struct furing_req *req, const void *p, size_t len);
/* The answer the engine must now send: @err as passed to furing_reply_err
 * (0: success with @iov). */
void fe_expect(struct furing_req *req, int err, const struct iovec *iov, int cnt);
/* A notification is about to be written (so the kernel reads them). */
void fe_expect_notification(void);
/* The retrieve cookie a NOTIFY_REPLY must bring back. */
bool fe_retrieve_cookie_ok(void *cookie);
/* Warnings and errors the engine logged so far. */
unsigned long fe_warnings(void);

/* fe_check.c, for fe_kernel.c: the records of requests in flight. */
void fe_check_init(struct fu_session *s, struct fu_worker *w);
void fe_check_begin(const struct fe_kernel_cfg *cfg);
struct fe_rec *fe_rec_new(void);
/* The slot the request came through is back with the kernel: it must be over. */
void fe_rec_retire(struct fe_rec *r);
struct fe_rec *fe_rec_find(uint64_t unique, bool ring);
/* A legacy request still waits for its answer. */
bool fe_dev_answers_due(void);
/* An answer arrived: checks it against the opcode and what the filesystem said. */
void fe_answer_seen(struct fe_rec *r, int error, const uint8_t *p, size_t len);
/* The end of an input: everything answered, the log as expected. */
void fe_check_end(bool stopped, bool fatal_injected);

/* fe_shape.c: the out-args the kernel accepts for the request's opcode. */
void fe_check_shape(const struct fe_rec *r, int error, const uint8_t *p, size_t len);
/* The op header size the kernel puts in op_in (and after the in_header on
 * /dev/fuse); 0 for opcodes without one or unknown to the kernel. */
size_t fe_op_header_size(uint32_t opcode, bool setxattr_ext);
/* The opcodes the kernel never expects an answer to. */
bool fe_no_reply(uint32_t opcode);

#endif
