/* The engine fuzzer's filesystem (fe_fs.c): every operation of struct
 * furing_ops, answering plausibly with every reply call, at once, after
 * simulated I/O on the worker's ring, from a worker event, later from the
 * worker, or from another thread, as the input chooses. Before each reply
 * call it tells the fake kernel (fe_expect) exactly what must arrive. */
#ifndef FURING_FUZZ_FE_FS_H
#define FURING_FUZZ_FE_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "furing/furing.h"

extern const struct furing_ops fe_fs_ops;

/* Once per process: the thread that answers "from elsewhere". */
void fe_fs_init(void);
/* Per input. */
void fe_fs_begin(uint32_t payload_size, bool setxattr_ext);
/* Requests the filesystem holds to answer later. */
bool fe_fs_deferred(void);
/* Answers one of them (picked by @which), on the worker or on the other thread. */
void fe_fs_answer_deferred(unsigned int which, bool foreign);
/* Sends one of the notifications (inval, delete, store, poll) to the kernel. */
void fe_fs_notify(struct furing_session *s);

#endif
