/* The NBD backend: what each export call becomes on the wire.
 *
 *   read / write      NBD_CMD_READ / WRITE (FUA with --writethrough, or a
 *                     flush before the answer when the server has no FUA),
 *                     at most the server's maximum block size at a time
 *   fsync             NBD_CMD_FLUSH
 *   punch hole        NBD_CMD_WRITE_ZEROES, the server may deallocate. Not
 *                     TRIM: a trimmed range reads back as anything the
 *                     server likes (qemu-nbd ignores trims by default),
 *                     and a punched hole must read as zeros.
 *   zero range        NBD_CMD_WRITE_ZEROES with NO_HOLE (stays allocated)
 *   allocate (mode 0) EOPNOTSUPP: NBD cannot reserve space
 *   SEEK_DATA/HOLE    NBD_CMD_BLOCK_STATUS on base:allocation where the
 *                     server offers it; else the whole disk is data
 *   statfs            the disk's size, nothing free (it cannot grow)
 *
 * Worker i drives its own connections (nbd_conn.c). When the server allows
 * multi-conn, each worker has a data connection without structured replies
 * (cheaper reads) and, where the server offers base:allocation, a second
 * one for block status. Without multi-conn the protocol asks clients not to
 * spread commands over several connections (their caches need not agree):
 * then one connection, with structured replies for block status, and one
 * worker. */
#include "backend_nbd.h"

#include <errno.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk_times.h"
#include "nbd_conn.h"

#define BLOCK_SIZE 4096
/* One WRITE_ZEROES or BLOCK_STATUS covers at most this much: the protocol
 * counts in 32 bits. */
#define RANGE_CHUNK (1ull << 30)

struct nbd_backend {
	struct backend b;
	struct nbd_disk disk; /* what its connections share (the log's view of the server) */
	struct nbd_worker_conns *workers; /* each worker's data pointer */
	unsigned int nworkers;
	bool writable, writethrough;
	struct disk_times times; /* an NBD disk has none of its own */
	char describe[64];
};

static struct nbd_backend *NB(struct backend *b)
{
	return (struct nbd_backend *)b;
}

static struct nbd_conn *conn_of(struct furing_req *req)
{
	return ((struct nbd_worker_conns *)furing_worker_data(furing_req_worker(req)))->conn[NBD_SLOT_DATA];
}

/* Where block status goes: the worker's status connection, or its data
 * connection when that one negotiated it. */
static struct nbd_conn *status_conn_of(struct furing_req *req)
{
	struct nbd_worker_conns *wc = furing_worker_data(furing_req_worker(req));
	return wc->conn[NBD_SLOT_STATUS] ? wc->conn[NBD_SLOT_STATUS] : wc->conn[NBD_SLOT_DATA];
}

/* ---- data ---- */

static void nbd_io(struct backend *b, struct furing_req *req, bool write, void *buf, uint32_t len, uint64_t off,
		   furing_io_done done)
{
	struct nbd_conn *c = conn_of(req);
	const struct nbd_conn_caps *caps = nbd_conn_caps(c);

	if (len > caps->max_payload)
		len = caps->max_payload; /* a partial transfer: the export asks for the rest */
	bool ready = nbd_conn_begin(c, req, write ? NBD_OP_WRITE : NBD_OP_READ, (int32_t)len, done);
	if (ready && write) {
		bool fua = NB(b)->writethrough && caps->can_fua;
		if (NB(b)->writethrough && !caps->can_fua && caps->can_flush)
			nbd_cmd_of(req)->flush_after = 1;
		nbd_conn_write(c, req, buf, len, off, fua);
	} else if (ready) {
		nbd_conn_read(c, req, buf, len, off);
	}
	nbd_conn_end(c, req);
}

static void nbd_sync(struct backend *b, struct furing_req *req, bool datasync, furing_io_done done)
{
	struct nbd_conn *c = conn_of(req);

	if (!NB(b)->writable || !nbd_conn_caps(c)->can_flush) {
		done(req, 0); /* nothing of ours to flush, or a server that writes through */
		return;
	}
	if (nbd_conn_begin(c, req, NBD_OP_FLUSH, 0, done))
		nbd_conn_flush(c, req);
	nbd_conn_end(c, req);
}

static void nbd_fallocate(struct backend *b, struct furing_req *req, int mode, uint64_t off, uint64_t len,
			  furing_io_done done)
{
	struct nbd_conn *c = conn_of(req);
	const struct nbd_conn_caps *caps = nbd_conn_caps(c);

	if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) || !caps->can_zero) {
		done(req, -EOPNOTSUPP);
		return;
	}
	if (off >= b->size) { /* KEEP_SIZE past the end: nothing there */
		done(req, 0);
		return;
	}
	if (len > b->size - off)
		len = b->size - off;
	bool no_hole = mode & FALLOC_FL_ZERO_RANGE;
	bool fua = NB(b)->writethrough && caps->can_fua;
	if (len / RANGE_CHUNK >= NBD_CMD_MAX_PER_SET) {
		done(req, -EOPNOTSUPP);
		return;
	}
	bool ready = nbd_conn_begin(c, req, NBD_OP_ZERO, 0, done);
	for (uint64_t pos = off; ready && pos < off + len; pos += RANGE_CHUNK) {
		uint64_t n = off + len - pos < RANGE_CHUNK ? off + len - pos : RANGE_CHUNK;
		nbd_conn_zero(c, req, (uint32_t)n, pos, no_hole, fua);
	}
	nbd_conn_end(c, req);
}

/* ---- SEEK_DATA / SEEK_HOLE ---- */

/* At the start of the scratch: a seek answers the request itself, so the
 * export's part is free (backend.h). */
struct seek_state {
	uint64_t pos;   /* where the next block status query starts */
	uint64_t size;
	uint64_t found; /* the answer, once `have` */
	int32_t whence;
	uint8_t have;
	uint8_t moved; /* the last query advanced pos */
};
_Static_assert(sizeof(struct seek_state) <= BACKEND_SCRATCH_OFFSET, "the seek state leaves room for the command");

static void seek_query(struct furing_req *req);

/* One extent, in order (inside the connection's reply handling: only
 * looks). */
static void extent_seen(struct furing_req *req, uint64_t offset, uint32_t length, bool hole)
{
	struct seek_state *st = furing_req_scratch(req);

	if (st->have)
		return;
	if (hole == (st->whence == SEEK_HOLE)) {
		st->found = offset;
		st->have = 1;
		return;
	}
	if (offset + length > st->pos) {
		st->pos = offset + length;
		st->moved = 1;
	}
}

static void seek_step(struct furing_req *req, int res)
{
	struct seek_state *st = furing_req_scratch(req);

	if (res < 0)
		furing_reply_err(req, -res);
	else if (st->have)
		furing_reply_lseek(req, st->found < st->size ? st->found : st->size);
	else if (st->pos >= st->size || !st->moved) /* the end, or a server that says nothing more */
		st->whence == SEEK_DATA ? furing_reply_err(req, ENXIO) : furing_reply_lseek(req, st->size);
	else
		seek_query(req);
}

static void seek_query(struct furing_req *req)
{
	struct nbd_conn *c = status_conn_of(req);
	struct seek_state *st = furing_req_scratch(req);
	uint64_t count = st->size - st->pos < RANGE_CHUNK ? st->size - st->pos : RANGE_CHUNK;

	st->moved = 0;
	if (nbd_conn_begin(c, req, NBD_OP_BLOCK_STATUS, 0, seek_step))
		nbd_conn_block_status(c, req, (uint32_t)count, st->pos, extent_seen);
	nbd_conn_end(c, req);
}

static void nbd_seek(struct backend *b, struct furing_req *req, uint64_t off, int whence, uint64_t size)
{
	if (!nbd_conn_caps(status_conn_of(req))->can_block_status) { /* all data, as far as we can tell */
		furing_reply_lseek(req, whence == SEEK_DATA ? off : size);
		return;
	}
	struct seek_state *st = furing_req_scratch(req);
	*st = (struct seek_state){.pos = off, .size = size, .whence = whence};
	seek_query(req);
}

/* ---- metadata ---- */

static int nbd_stat(struct backend *b, struct stat *st)
{
	disk_stat(&NB(b)->times, b->size, BLOCK_SIZE, st);
	return 0;
}

static int nbd_statfs(struct backend *b, struct statvfs *st)
{
	disk_statfs(b->size, BLOCK_SIZE, st);
	return 0;
}

static int nbd_truncate(struct backend *b, uint64_t size)
{
	return EPERM; /* never called: the disk is not resizable */
}

static int nbd_set_times(struct backend *b, const struct timespec ts[2])
{
	disk_times_set(&NB(b)->times, ts);
	return 0;
}

/* ---- workers and the end ---- */

static void nbd_worker_stop(struct backend *b, struct furing_worker *w)
{
	struct nbd_worker_conns *wc = furing_worker_data(w);

	for (int s = 0; wc && s < NBD_SLOTS; s++)
		if (wc->conn[s])
			nbd_conn_stop(wc->conn[s]);
}

static int nbd_worker_start(struct backend *b, struct furing_worker *w)
{
	struct nbd_backend *nb = NB(b);
	unsigned int i = furing_worker_index(w);

	if (i >= nb->nworkers)
		return -EINVAL; /* the session has more workers than max_workers */
	furing_worker_set_data(w, &nb->workers[i]);
	for (int s = 0; s < NBD_SLOTS; s++) {
		int ret = nb->workers[i].conn[s] ? nbd_conn_start(nb->workers[i].conn[s], w) : 0;
		if (ret < 0) {
			/* The engine calls worker_stop only after a successful
			 * start: a connection must not keep this worker (its
			 * close would use it). */
			nbd_worker_stop(b, w);
			return ret;
		}
	}
	return 0;
}

static int nbd_close_backend(struct backend *b)
{
	struct nbd_backend *nb = NB(b);
	int ret = 0;

	for (unsigned int i = 0; nb->workers && i < nb->nworkers; i++)
		for (int s = 0; s < NBD_SLOTS; s++)
			if (nbd_conn_close(nb->workers[i].conn[s]) < 0)
				ret = -1;
	free(nb->workers);
	disk_times_destroy(&nb->times);
	free(nb);
	return ret;
}

/* Any connection down: nbd_conn.c fails the requests on it with EIO, and
 * logs "lost" at the first down and "back" when the last is up again. */
static bool nbd_unreachable(struct backend *b)
{
	return atomic_load(&NB(b)->disk.conns_down) > 0;
}

static const struct backend_ops nbd_ops = {
	.io = nbd_io,
	.sync = nbd_sync,
	.fallocate = nbd_fallocate,
	.seek = nbd_seek,
	.stat = nbd_stat,
	.statfs = nbd_statfs,
	.truncate = nbd_truncate,
	.set_times = nbd_set_times,
	.unreachable = nbd_unreachable,
	.worker_start = nbd_worker_start,
	.worker_stop = nbd_worker_stop,
	.close = nbd_close_backend,
};

/* Worker @i's connections on a multi-conn server; false when its data
 * connection fails (the worker is then not used). */
static bool open_worker(struct nbd_backend *nb, unsigned int i, unsigned int want, const char *uri,
			const struct export_opts *o, bool status, uint64_t size)
{
	char why[512];
	struct nbd_worker_conns *wc = &nb->workers[i];

	wc->conn[NBD_SLOT_DATA] = nbd_conn_open(&nb->disk, uri, i, NBD_SLOT_DATA, false, o->writable,
						o->nbd_timeout_s, why, sizeof(why));
	if (!wc->conn[NBD_SLOT_DATA] || nbd_conn_caps(wc->conn[NBD_SLOT_DATA])->size != size)
		goto fail;
	if (status && !wc->conn[NBD_SLOT_STATUS]) {
		wc->conn[NBD_SLOT_STATUS] = nbd_conn_open(&nb->disk, uri, want + i, NBD_SLOT_STATUS, true,
							  o->writable, o->nbd_timeout_s, why, sizeof(why));
		if (!wc->conn[NBD_SLOT_STATUS])
			goto fail;
	}
	return true;
fail:
	for (int s = 0; s < NBD_SLOTS; s++) {
		nbd_conn_close(wc->conn[s]);
		wc->conn[s] = NULL;
	}
	return false;
}

struct backend *nbd_backend_open(const struct export_opts *o, const char *uri, char *err, size_t errlen)
{
	char why[512];

	if (o->growable) {
		snprintf(err, errlen, "an NBD disk has a fixed size: it cannot be --growable");
		return NULL;
	}
	struct nbd_backend *nb = calloc(1, sizeof(*nb));
	unsigned int want = o->workers ? o->workers : 1;
	if (!nb || !(nb->workers = calloc(want, sizeof(*nb->workers)))) {
		free(nb);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	nb->b.ops = &nbd_ops;
	nb->writable = o->writable;
	nb->writethrough = o->writethrough;
	nb->disk.log = o->log;
	disk_times_init(&nb->times);

	/* The first connection asks for block status: it says what the server
	 * allows, and is kept for block status or as the only connection. */
	struct nbd_conn *first = nbd_conn_open(&nb->disk, uri, 0, NBD_SLOT_DATA, true, o->writable,
					       o->nbd_timeout_s, why, sizeof(why));
	if (!first) {
		snprintf(err, errlen, "cannot connect to %s: %s", uri, why);
		goto fail;
	}
	struct nbd_conn_caps caps = *nbd_conn_caps(first);
	nb->workers[0].conn[NBD_SLOT_DATA] = first;
	nb->nworkers = 1;
	if (o->writable && caps.read_only) {
		snprintf(err, errlen, "%s: the server offers this disk read-only: drop --writable", uri);
		goto fail;
	}
	if (caps.can_multi_conn) {
		nbd_conn_close(first);
		nb->workers[0].conn[NBD_SLOT_DATA] = NULL;
		nb->nworkers = 0;
		/* A connection the server refuses leaves fewer workers, not a
		 * failed start; none at all is a failed start. */
		while (nb->nworkers < want && open_worker(nb, nb->nworkers, want, uri, o, caps.can_block_status, caps.size))
			nb->nworkers++;
		if (nb->nworkers == 0) {
			snprintf(err, errlen, "cannot connect to %s a second time (it allows multi-conn)", uri);
			goto fail;
		}
	}
	nb->b.size = caps.size;
	nb->b.resizable = false;
	nb->b.max_workers = nb->nworkers;
	bool status = nb->workers[0].conn[NBD_SLOT_STATUS] != NULL;
	snprintf(nb->describe, sizeof(nb->describe), "%u NBD connection%s%s", nb->nworkers, nb->nworkers == 1 ? "" : "s",
		 status ? " + as many for block status" : "");
	nb->b.describe = nb->describe;
	return &nb->b;
fail:
	nbd_close_backend(&nb->b);
	return NULL;
}
