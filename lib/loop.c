/* See loop.h. Kept deliberately small: a turn is submit-and-wait, then a walk
 * over the CQ ring, then one advance. Callbacks queue new SQEs (replies,
 * backend I/O, re-armed reads), which the next turn submits in one batch. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

int fu_loop_init(struct fu_loop *l, unsigned int entries, unsigned int cq_entries, unsigned int flags,
		 bool wait_in_poll)
{
	struct io_uring_params p;

	memset(l, 0, sizeof(*l));
	memset(&p, 0, sizeof(p));
	p.flags = flags | IORING_SETUP_CQSIZE;
	p.cq_entries = cq_entries;
	int ret = io_uring_queue_init_params(entries, &l->ring, &p);
	if (ret < 0)
		return ret;
	l->ready = true;
	/* valgrind (3.19) does not treat a waiting io_uring_enter as blocking,
	 * so a worker waiting there holds valgrind's global lock and the
	 * process stops; poll(2) it knows blocks (furing_config.wait_with_poll). */
	l->wait_in_poll = wait_in_poll;
	return 0;
}

void fu_loop_exit(struct fu_loop *l)
{
	if (l->ready)
		io_uring_queue_exit(&l->ring);
	l->ready = false;
}

struct io_uring_sqe *fu_loop_sqe(struct fu_loop *l, struct furing_event *ev)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	while (!sqe) {
		/* The SQ is full: hand the batch to the kernel and try again. The
		 * CQ is sized for every SQE that can be outstanding, so this
		 * cannot overflow it. */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	if (l->ring.flags & IORING_SETUP_SQE128)
		memset(sqe, 0, 128);
	else
		memset(sqe, 0, sizeof(*sqe));
	io_uring_sqe_set_data(sqe, ev);
	l->inflight++;
	return sqe;
}

int fu_loop_flush(struct fu_loop *l)
{
	int ret = io_uring_submit(&l->ring);
	return ret < 0 ? ret : 0;
}

int fu_loop_turn(struct fu_loop *l, bool wait)
{
	struct io_uring_cqe *cqe;
	unsigned int head, seen = 0;

	int ret;
	if (!wait) {
		ret = io_uring_submit(&l->ring);
	} else if (l->wait_in_poll) {
		ret = io_uring_submit(&l->ring);
		if (ret >= 0 && !io_uring_cq_ready(&l->ring)) {
			struct pollfd p = {.fd = l->ring.ring_fd, .events = POLLIN};
			poll(&p, 1, -1);
		}
	} else {
		ret = io_uring_submit_and_wait(&l->ring, 1);
	}
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;

	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		struct furing_event *ev = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		seen++;
		l->inflight--;
		/* The callback may queue SQEs but never waits, so walking the
		 * CQ while it runs is safe; the advance comes after. */
		ev->fn(ev, res);
	}
	io_uring_cq_advance(&l->ring, seen);
	return (int)seen;
}
