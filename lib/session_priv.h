/* What the three files of a session share, and nothing else sees:
 *
 *   session.c            the lifecycle: new (config defaults), start, wait,
 *                        stop, destroy; preparing and starting the workers
 *   session_transport.c  the transport: io_uring and FUSE-over-io_uring
 *                        checks, possible CPUs, queue depth and payload
 *                        sizing, the ring setup plan after INIT
 *   session_init.c       the FUSE_INIT exchange: reading INIT, asking the
 *                        filesystem, building and writing the answer
 *
 * furing_session_start runs them in this order:
 *
 *   fu_transport_choose -> mount -> fu_init_exchange -> fu_transport_plan ->
 *   fu_init_apply -> fu_worker_prepare (each worker) -> fu_init_answer ->
 *   start the workers
 */
#ifndef FURING_SESSION_PRIV_H
#define FURING_SESSION_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* snprintf into a caller's error buffer (which may be NULL). session.c. */
void fu_fmt_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- session_transport.c ---- */

/* Which transport start-up will try, decided before mounting. */
struct fu_transport_choice {
	const char *no_ring; /* why not FUSE-over-io_uring, or NULL: points into the buffers below */
	char why_loop[256];
	char why_ring[256];
};

/* Checks io_uring and FUSE-over-io_uring (doc/protocol.md 1.1), sets
 * s->blocking and s->nqueues. Fails only when the configuration demands
 * the ring and the system will not give it. */
int fu_transport_choose(struct fu_session *s, struct fu_transport_choice *tc, char *err, size_t errlen);
/* At furing_session_new: max_write (clamped to the kernel's limit), the
 * payload size of a request buffer and the queue depth. */
int fu_transport_size(struct fu_session *s, char *err, size_t errlen);
/* After fu_transport_size: the most bytes of request buffers the workers
 * map (each page touched only when a request uses it), whichever
 * transport start-up picks. */
uint64_t fu_transport_buffer_bytes(const struct fu_session *s);
/* The max_background the INIT answer offers by default. */
uint16_t fu_transport_background_limit(const struct fu_session *s);
/* The ring setup plan: once INIT is agreed and before any worker is
 * prepared. On failure the caller refuses INIT (EPROTO). */
int fu_transport_plan(struct fu_session *s, const char *no_ring_reason, char *err, size_t errlen);
/* Logs the layout start-up chose. */
void fu_transport_report(const struct fu_session *s);

/* ---- session_init.c ---- */

/* The INIT answer, agreed but not yet written. */
struct fu_init_pending {
	uint64_t unique;
	struct fuse_init_out out;
	size_t out_len;
};

/* Reads FUSE_INIT (again, if the kernel retries with major 7), asks the
 * filesystem's init() and negotiates into s->conn, s->init and @p. On
 * failure INIT has been refused (or the kernel is gone). */
int fu_init_exchange(struct fu_session *s, const char *no_ring_reason, struct fu_init_pending *p, char *err,
		     size_t errlen);
/* Records what was agreed in s->limits and s->conn. */
void fu_init_apply(struct fu_session *s, const struct fu_init_pending *p);
/* Writes the agreed answer. */
int fu_init_answer(struct fu_session *s, const struct fu_init_pending *p, char *err, size_t errlen);
/* Refuses INIT with @error (negative errno). */
void fu_init_refuse(struct fu_session *s, const struct fu_init_pending *p, int error);

#endif
