/* One NBD connection, driven by one worker (no thread of its own). libnbd
 * makes it (URI, handshake, TLS, options); its data then moves on the
 * worker's io_uring (nbd_ring.c: sendmsg and recv, replies decoded by
 * nbd_wire.c), except on a TLS connection and without io_uring, which keep
 * libnbd's asynchronous API (the socket polled on the ring) or its
 * blocking one.
 *
 * A request's NBD work is a "command set": nbd_conn_begin, then when it
 * returned true one or more nbd_conn_read/write/flush/zero/block_status,
 * then nbd_conn_end. When the last command of the set has completed,
 * @done(req, res) runs on the worker with @res as given to begin, or -EIO
 * (-ENOSPC) when a command failed. Completions are queued and @done runs
 * after the ring's (or libnbd's) own work returned, from nbd_conn_end or
 * from the socket's event, so that @done may issue more.
 *
 * FAULTS. A connection that dies (the server closed it, went away, sent a
 * malformed reply, or left a command unanswered for the timeout, after
 * which we shut the socket) fails
 * every command in flight with EIO, logs one line, answers new requests EIO
 * at once, and reconnects in the background every second; once the server
 * is back with the same disk, it serves again (one more line). Without
 * io_uring (the engine's blocking fallback) the same happens synchronously
 * in the request's own call. */
#ifndef FURING_EXPORT_NBD_CONN_H
#define FURING_EXPORT_NBD_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libnbd.h>

#include "backend.h"
#include "export.h"

struct nbd_conn;

/* What the server offers, as seen when the connection was made. */
struct nbd_conn_caps {
	uint64_t size;
	bool read_only, can_flush, can_fua, can_zero, can_multi_conn, can_block_status;
	uint32_t max_payload; /* largest read/write (the server's maximum block size, or libnbd's cap) */
};

/* A worker's connections, its data pointer (furing_worker_set_data):
 * [NBD_SLOT_DATA] carries reads, writes, flushes and zeroes; the optional
 * [NBD_SLOT_STATUS] only block status (SEEK_DATA/SEEK_HOLE). Two, because
 * block status needs structured replies, and those make the server answer
 * every read in pieces libnbd receives one syscall each: a data connection
 * without them reads 1.5x faster here (bench/README.md). */
enum nbd_slot { NBD_SLOT_DATA, NBD_SLOT_STATUS, NBD_SLOTS };
struct nbd_worker_conns {
	struct nbd_conn *conn[NBD_SLOTS];
};

/* What the connections of one export share. The log says what happened to
 * the export, not to each connection: one line when the server is lost (the
 * first connection down), one when it is back (the last one up), one for the
 * first request it failed. Each export has its own (the NBD backend's): in
 * one process serving several exports, one export's lost server must
 * neither silence the other's messages nor count in its "back". */
struct nbd_disk {
	_Atomic unsigned int conns_down; /* its connections now down */
	atomic_bool refusal_logged;      /* the server failed a request, and that was said */
	struct export_log log;           /* for messages while no session runs (export.h) */
};

/* Connects to @uri (blocking, at most @timeout_s; 0 means never time out
 * requests, and connects wait EXPORT_NBD_TIMEOUT_DEFAULT). @index names the
 * connection in messages; @slot is its place in its worker's
 * nbd_worker_conns. @block_status: negotiate structured replies and
 * base:allocation (else reads are cheaper and block status unavailable).
 * @disk: the export's, which must outlive the connection.
 * NULL with @err (one line) on failure. */
struct nbd_conn *nbd_conn_open(struct nbd_disk *disk, const char *uri, unsigned int index, enum nbd_slot slot,
			       bool block_status, bool writable, unsigned int timeout_s, char *err, size_t errlen);
const struct nbd_conn_caps *nbd_conn_caps(const struct nbd_conn *c);

/* On its worker, before serving: arms the socket's poll and the 1 s tick. */
int nbd_conn_start(struct nbd_conn *c, struct furing_worker *w);
/* The worker stopped: its events will never complete. */
void nbd_conn_stop(struct nbd_conn *c);
/* After serving, from any thread: flushes (so acknowledged writes are
 * durable), disconnects, frees. 0, or -1 after logging why the flush failed. */
int nbd_conn_close(struct nbd_conn *c);

/* The backend's per-request state (in the backend's part of the scratch). */
struct nbd_cmd {
	struct furing_req *next; /* in the connection's queue of finished sets */
	furing_io_done done;
	int32_t res;      /* what done gets on success */
	int32_t err;      /* first failure (positive errno), 0 if none */
	uint16_t pending; /* commands still in flight, plus one while the set is being issued */
	uint16_t issued;  /* commands handed to the ring or libnbd */
	uint16_t completed; /* of those, completions that ran (one retired without is a failure) */
	uint8_t op : 4;   /* enum nbd_op, for messages */
	uint8_t slot : 2; /* enum nbd_slot: the connection of the worker it went to */
	uint8_t flush_after : 1; /* on success, send a flush and answer when it completes */
};
_Static_assert(sizeof(struct nbd_cmd) <= BACKEND_SCRATCH_SIZE, "the command fits the backend's scratch");

static inline struct nbd_cmd *nbd_cmd_of(struct furing_req *req)
{
	return (struct nbd_cmd *)backend_scratch(req);
}

enum nbd_op { NBD_OP_READ, NBD_OP_WRITE, NBD_OP_FLUSH, NBD_OP_ZERO, NBD_OP_BLOCK_STATUS };

/* False when the connection is down (the set then fails with EIO at
 * nbd_conn_end, and nothing may be issued). */
bool nbd_conn_begin(struct nbd_conn *c, struct furing_req *req, enum nbd_op op, int32_t res, furing_io_done done);
/* The commands (at most NBD_CMD_MAX_PER_SET in a set). Buffers stay valid
 * until @done. */
#define NBD_CMD_MAX_PER_SET 60000
void nbd_conn_read(struct nbd_conn *c, struct furing_req *req, void *buf, uint32_t len, uint64_t off);
void nbd_conn_write(struct nbd_conn *c, struct furing_req *req, const void *buf, uint32_t len, uint64_t off,
		    bool fua);
void nbd_conn_flush(struct nbd_conn *c, struct furing_req *req);
void nbd_conn_zero(struct nbd_conn *c, struct furing_req *req, uint32_t len, uint64_t off, bool no_hole, bool fua);
/* base:allocation from @off: @fn sees each extent in order, before @done. */
typedef void (*nbd_conn_extent_fn)(struct furing_req *req, uint64_t offset, uint32_t length, bool hole);
void nbd_conn_block_status(struct nbd_conn *c, struct furing_req *req, uint32_t len, uint64_t off,
			   nbd_conn_extent_fn fn);
/* The set is complete: answers it now if it finished. */
void nbd_conn_end(struct nbd_conn *c, struct furing_req *req);

#endif
