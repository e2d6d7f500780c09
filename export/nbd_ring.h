/* An NBD connection's data path on the worker's io_uring: once libnbd has
 * made the connection (URI, handshake, options), its socket's requests go
 * out with IORING_OP_SENDMSG and its replies come in with IORING_OP_RECV,
 * decoded by nbd_wire.c; libnbd is not called for the data.
 *
 * SENDS. One sendmsg in flight at a time (two on one stream socket could
 * interleave after a short send); the commands queued meanwhile go out
 * together in the next one, each header followed by its WRITE payload
 * straight from the request's buffer.
 *
 * RECEIVES. One recv in flight at a time, into the connection's receive
 * buffer: one completion brings as many replies as arrived, all decoded
 * before the next recv. A READ's data is copied out of that buffer; a large
 * one (a 1 MiB read) is received straight into the request's buffer, with
 * MSG_WAITALL, after its header.
 *
 * No fixed buffers: IORING_OP_RECV takes none, and a registered buffer on
 * the send side needs SEND_ZC, whose notification costs more than the copy
 * of a 4 KiB payload; the request's buffers are the engine's, not
 * registered in a table we could name.
 *
 * FAULTS. A malformed reply, a recv or send error, or the end of the stream
 * make the connection dead: ops->dead says why (once), the socket is shut,
 * and when the ring holds none of its operations any more every command in
 * flight completes with ENOTCONN and ops->closed runs (the socket may then
 * be closed). Never a crash: every length from the server is checked
 * (nbd_wire.c) before data lands anywhere. */
#ifndef FURING_EXPORT_NBD_RING_H
#define FURING_EXPORT_NBD_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <furing/furing.h>

struct nbd_ring;

struct nbd_ring_ops {
	/* A command finished: @error 0, the server's errno, or ENOTCONN (the
	 * connection died). Must not issue commands (queue, answer later). */
	void (*completed)(struct nbd_ring *r, struct furing_req *req, int error);
	/* The connection is unusable; the callee calls nbd_ring_kill. */
	void (*dead)(struct nbd_ring *r, const char *why);
	/* Killed and idle: no operation of the ring uses the socket any more. */
	void (*closed)(struct nbd_ring *r);
	/* After each completion of the ring's own (answer what finished). */
	void (*settle)(struct nbd_ring *r);
	/* A BLOCK_STATUS extent of the command of @req. */
	void (*extent)(struct furing_req *req, uint64_t offset, uint32_t length, uint32_t flags);
};

#define NBD_RING_TX_IOV 64

struct nbd_ring_cmd; /* nbd_ring.c */

struct nbd_ring {
	const struct nbd_ring_ops *ops;
	struct furing_worker *w;
	int fd;
	bool structured; /* structured replies negotiated */
	bool running;    /* started, not killed */

	struct nbd_ring_cmd **blocks; /* the command table, in blocks that never move */
	uint32_t nblocks;
	uint32_t free_head; /* index + 1 of a free command, 0: none */
	unsigned int inflight;

	uint32_t txq_head, txq_tail; /* commands to send, index + 1 */
	uint32_t tx_off;             /* bytes of the head command already sent */
	struct iovec iov[NBD_RING_TX_IOV];
	struct msghdr msg;
	struct furing_event tx_ev;
	bool tx_armed;

	uint8_t *rx;
	size_t rx_len, rx_cap;
	struct furing_event rx_ev;
	bool rx_armed, rx_direct;
	bool rx_more; /* the last recv may have left data on the socket */
	uint32_t data_cmd;  /* index + 1 of the command whose data arrives, 0: none */
	uint32_t data_at, data_left;
	bool data_done;     /* that chunk was its command's last */
};

/* Allocates the receive buffer; 0 or -ENOMEM. */
int nbd_ring_init(struct nbd_ring *r, const struct nbd_ring_ops *ops);
void nbd_ring_free(struct nbd_ring *r);
/* Takes @fd's data on @w's ring (worker thread): arms the first recv. 0, or
 * -errno (then nothing is armed). */
int nbd_ring_start(struct nbd_ring *r, struct furing_worker *w, int fd, bool structured);
/* One command (the worker's thread). @buf: a READ's destination or a
 * WRITE's payload, valid until completed runs. 0, or -ENOTCONN when the
 * ring is not running (nothing was queued). */
int nbd_ring_cmd(struct nbd_ring *r, struct furing_req *req, uint16_t type, uint16_t flags, uint64_t offset,
		 uint32_t length, void *buf);
/* Shuts the socket and ends the ring's use of it (ops->closed, maybe at once). */
void nbd_ring_kill(struct nbd_ring *r);
/* The worker stopped: nothing of the ring completes any more. */
void nbd_ring_stop(struct nbd_ring *r);
/* Nothing in flight, queued or half received: the stream is between
 * replies, so libnbd can take the socket back (the final flush). */
bool nbd_ring_idle(const struct nbd_ring *r);

#endif
